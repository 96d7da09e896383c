// GPTQ over a whole model on the GPU (see cuda_methods.h for the stages).
#include "pipeline/cuda/cuda_common.h"
#include "pipeline/cuda/cuda_methods.h"

#include "pipeline/checkpoints.h"
#include "runtime/block.h"
#include "runtime/cuda/gptq.h"

#include <fmt/format.h>

#include <cstdio>
#include <functional>
#include <optional>

namespace quantllm {

using namespace quantllm::cuda;

namespace {

struct Driver {
  const Model& model;
  const ModelConfig& c;
  const GroupMethodOptions& opt;
  const Context& ctx;
  Ops& F;
  GPTQOptions g;
  QuantizedModel& qm;
  PhaseClock& clock;

  // Quantizes `slots` (sharing one input) from the accumulated Hessian; the device block then holds
  // their dequantized weights, so later stages see the quantized layers.
  void quantize(const BlockSpec& spec, DeviceBlock& dw, DeviceHessian& acc, const std::vector<int>& slots,
                BlockResult& saved, bool keep) {
    clock.mark("forward + Hessians");
    const PreparedHessian P = prepare_hessian(ctx, acc, g, spec.linear_tensor(slots.front()) + ".weight");
    clock.mark("Cholesky");
    for (int slot : slots) {
      const std::string name = spec.linear_tensor(slot);
      DeviceLinear& l = dw.linear[size_t(slot)];
      DeviceArray<float> deq(l.out * l.in, "dequantized weights");
      DeviceGptqResult r = gptq_quantize_device(ctx, l.w.data(), l.out, P, g, name + ".weight", deq.data(), F.math());
      l.w = std::move(deq);
      qm.stats[name] = saved.stats[name] = LayerStats{r.stats.objective, r.rtn_objective, r.stats.damp_percent_used,
                                                      r.stats.seconds, r.stats.dead_inputs};
      report_gptq_layer(name, r.stats, P.in, opt.damp_percent);
      if (keep) saved.layers[name] = r.q;
      qm.layers[name] = std::move(r.q);
    }
    clock.mark("GPTQ");
  }
};

// Calls fn(point, x, rows) for every point run_block reaches.
class LambdaObserver final : public PointObserver {
 public:
  explicit LambdaObserver(std::function<bool(int, Act)> fn) : fn_(std::move(fn)) {}
  bool observe(int point, Act x) override { return fn_(point, x); }

 private:
  std::function<bool(int, Act)> fn_;
};

}  // namespace

QuantizedModel quantize_gptq_cuda(const Model& model, const GroupMethodOptions& opt, const CalibWindows& windows,
                                  const BlockProgress& progress) {
  const ModelConfig& c = model.config;
  QuantizedModel qm = new_quantized_model(model, opt);

  Context ctx;
  reset_device_peak();
  const Math math = opt.gpu_tf32 ? Math::TF32 : Math::FP32;
  const int64_t T = windows.seqlen, n_win = windows.n, d = c.hidden;
  const MemoryPlan plan = plan_memory(ctx, c, n_win, T, opt, opt.true_sequential);
  print_gpu_plan(ctx, plan, opt);
  PhaseClock clock(ctx);

  BlockCheckpoints ckpt(model, opt, "gptq", &windows);
  const int64_t cw = plan.chunk_windows, crow = cw * T;
  ActivationStore X(ctx, n_win * T, d, plan.on_device, crow, "calibration activations");
  embed_on_device(ctx, model, windows, X, crow);
  std::optional<ActivationStore> A;  // a sub-layer's mid (the attention output), kept until its residual is added
  Ops F(ctx, c, T, math);
  DeviceArray<float> h(crow * d, "block input"), mid(crow * c.block(0).max_point_width(), "ffn activations"), xs;
  clock.mark("embed + upload");

  const GPTQOptions g = gptq_options(opt);
  Driver drv{model, c, opt, ctx, F, g, qm, clock};
  const int n_blocks = int(c.n_layers);
  BlockPrefetcher loader(model, true);
  AsyncCheckpoints saver(ckpt);

  auto for_chunks = [&](auto&& fn) {
    for (int64_t s0 = 0; s0 < n_win; s0 += cw) {
      const int64_t ns = std::min(cw, n_win - s0);
      fn(s0 * T, ns * T, ns);
    }
  };
  // Block `i` with the weights dw run over every window in place (its final pass).
  auto advance = [&](const BlockSpec& spec) {
    for_chunks([&](int64_t r0, int64_t rows, int64_t ns) {
      float* x = X.chunk(r0, rows);
      run_block(F, spec, Act{x, rows, d}, Step{ns, T, 0, nullptr, spec.layer});
      X.commit(r0, rows);
    });
  };

  for (int i = 0; i < n_blocks; ++i) {
    const BlockSpec& spec = c.block(i);
    BlockWeights w = loader.take(i, i >= ckpt.done());
    clock.mark("load weights");
    if (i < ckpt.done()) {
      BlockPrefetcher::unpin(w);  // replaced below: no longer page-locked
      BlockResult r = ckpt.load(i);
      restore_quantized_layers(c, i, r, w, qm);
      DeviceBlock dw = upload_block(ctx, w);
      F.bind(spec, dw);
      advance(spec);
      clock.mark("forward + Hessians");
      if (progress) progress(i + 1, n_blocks, fmt::format("block {}/{}: restored", i + 1, n_blocks));
      continue;
    }
    DeviceBlock dw = upload_block(ctx, w);
    F.bind(spec, dw);
    ctx.sync();
    BlockPrefetcher::unpin(w);
    w = BlockWeights{};  // the host copy is not needed any more
    clock.mark("upload weights");
    BlockResult saved;
    const bool keep = ckpt.enabled();
    auto note = [&](int point) {
      if (progress)
        progress(i, n_blocks, fmt::format("block {}/{}: gptq {}", i + 1, n_blocks,
                                          role_name(spec.linears[size_t(spec.readers(point).front())].role)));
    };
    if (opt.true_sequential) {
      // Sub-layer by sub-layer, each stage once over all windows: the input point's Hessian (with the
      // previous sub-layer's residual added on the way) → its in-linears; the mid point's Hessian → its
      // out-linear. An attention sub-layer's mid is kept until its residual is added; a feed-forward's
      // (wider, cheap to recompute) is recomputed.
      int pending = -1;  // the sub-layer whose residual is still to be added to X
      auto add_residual = [&](int s, float* x, int64_t r0, int64_t rows, int64_t ns) {
        const Act xa{x, rows, d};
        if (A) {
          const Act m{A->chunk(r0, rows), rows, A->width()};
          sublayer_residual(F, spec, s, xa, m);
          return;
        }
        const Sublayer& sl = spec.sublayers[size_t(s)];
        const Act ha{h.data(), rows, d}, ma{mid.data(), rows, spec.points[size_t(sl.mid)].width};
        sublayer_input(F, spec, s, xa, ha);
        sublayer_mix(F, spec, s, ha, ma, Step{ns, T, 0, nullptr, i});
        sublayer_residual(F, spec, s, xa, ma);
      };
      for (size_t s = 0; s < spec.sublayers.size(); ++s) {
        const Sublayer& sl = spec.sublayers[size_t(s)];
        {  // the input point
          DeviceHessian acc(ctx, spec.points[size_t(sl.in)].width);
          for_chunks([&](int64_t r0, int64_t rows, int64_t ns) {
            float* x = X.chunk(r0, rows);
            if (pending >= 0) {
              add_residual(pending, x, r0, rows, ns);
              X.commit(r0, rows);
            }
            sublayer_input(F, spec, int(s), Act{x, rows, d}, Act{h.data(), rows, d});
            acc.add(ctx, h.data(), rows, math);
          });
          pending = -1;
          A.reset();  // not needed again in this block: its memory goes to the Hessians of the larger inputs
          drv.quantize(spec, dw, acc, spec.readers(sl.in), saved, keep);
          note(sl.in);
        }
        {  // the mid point, from the quantized in-linears
          const int64_t mw = spec.points[size_t(sl.mid)].width;
          if (sl.kind == SublayerKind::Attention) A.emplace(ctx, n_win * T, mw, plan.on_device, crow, "attention outputs");
          DeviceHessian acc(ctx, mw);
          for_chunks([&](int64_t r0, int64_t rows, int64_t ns) {
            sublayer_input(F, spec, int(s), Act{X.chunk(r0, rows), rows, d}, Act{h.data(), rows, d});
            float* m = A ? A->chunk(r0, rows, false) : mid.data();
            sublayer_mix(F, spec, int(s), Act{h.data(), rows, d}, Act{m, rows, mw}, Step{ns, T, 0, nullptr, i});
            acc.add(ctx, m, rows, math);
            if (A) A->commit(r0, rows);
          });
          drv.quantize(spec, dw, acc, spec.readers(sl.mid), saved, keep);
          note(sl.mid);
          pending = int(s);
        }
      }
      // The block's output through its last quantized layer.
      for_chunks([&](int64_t r0, int64_t rows, int64_t ns) {
        float* x = X.chunk(r0, rows);
        add_residual(pending, x, r0, rows, ns);
        X.commit(r0, rows);
      });
      A.reset();
    } else {
      // Every layer from the inputs of the unquantized block, then the block's output with all quantized.
      std::vector<std::optional<DeviceHessian>> acc(spec.points.size());
      for (size_t p = 0; p < spec.points.size(); ++p)
        if (!spec.readers(int(p)).empty()) acc[p].emplace(ctx, spec.points[p].width);
      xs.reserve(crow * d, "block input copy");
      for_chunks([&](int64_t r0, int64_t rows, int64_t ns) {
        QL_CUDA(cudaMemcpyAsync(xs.data(), X.chunk(r0, rows), size_t(rows * d) * sizeof(float), cudaMemcpyDeviceToDevice,
                                ctx.stream()));
        LambdaObserver obs([&](int point, Act x) {
          if (acc[size_t(point)]) acc[size_t(point)]->add(ctx, x.p, x.rows, math);
          return true;
        });
        run_block(F, spec, Act{xs.data(), rows, d}, Step{ns, T, 0, nullptr, i}, &obs);
      });
      for (size_t p = 0; p < spec.points.size(); ++p)
        if (acc[p]) drv.quantize(spec, dw, *acc[p], spec.readers(int(p)), saved, keep);
      advance(spec);
    }
    clock.mark("forward + Hessians");
    saver.save(i, std::move(saved));
    clock.mark("checkpoint");
    if (progress) progress(i + 1, n_blocks, fmt::format("block {}/{} done", i + 1, n_blocks));
  }
  saver.finish();
  clock.mark("checkpoint");
  std::fprintf(stderr, "quantllm: GPU time: %s; peak GPU memory %.2f GiB\n", clock.report().c_str(),
               double(device_peak_bytes()) / (1024.0 * 1024.0 * 1024.0));
  return qm;
}

}  // namespace quantllm
