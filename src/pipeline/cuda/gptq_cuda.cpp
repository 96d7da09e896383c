// GPTQ over a whole model on the GPU (see cuda_methods.h for the stages).
#include "pipeline/cuda/cuda_common.h"
#include "pipeline/cuda/cuda_methods.h"

#include "pipeline/checkpoints.h"
#include "runtime/cuda/gptq.h"

#include <fmt/format.h>

#include <cstdio>
#include <optional>

namespace quantllm {

using namespace quantllm::cuda;

namespace {

// The layers of each linear input, in the order GPTQ quantizes them.
std::array<std::vector<Linear>, 4> layers_by_input(const ModelConfig& c) {
  std::array<std::vector<Linear>, 4> by;
  for (const auto& group : sequential_groups(c, true))
    for (Linear l : group) by[size_t(linear_input_of(l))].push_back(l);
  return by;
}

struct Driver {
  const Model& model;
  const ModelConfig& c;
  const GroupMethodOptions& opt;
  const Context& ctx;
  BlockForward& F;
  GPTQOptions g;
  QuantizedModel& qm;
  PhaseClock& clock;

  // Quantizes `layers` (sharing one input) from the accumulated Hessian; the device block then holds
  // their dequantized weights, so later stages see the quantized layers.
  void quantize(int block, DeviceBlock& dw, DeviceHessian& acc, const std::vector<Linear>& layers, BlockResult& saved,
                bool keep) {
    clock.mark("forward + Hessians");
    const PreparedHessian P = prepare_hessian(ctx, acc, g, c.linear_tensor(block, layers.front()) + ".weight");
    clock.mark("Cholesky");
    for (Linear lin : layers) {
      const std::string name = c.linear_tensor(block, lin);
      DeviceLinear& l = dw[lin];
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
  std::optional<ActivationStore> A;  // attention outputs, held from stage 2 to stage 3 of each block
  BlockForward F(ctx, c, T, math);
  DeviceArray<float> h(crow * d, "block input"), mid(crow * c.ffn, "ffn activations"), xs;
  clock.mark("embed + upload");

  const GPTQOptions g = gptq_options(opt);
  Driver drv{model, c, opt, ctx, F, g, qm, clock};
  const auto by_input = layers_by_input(c);
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
  auto advance = [&](DeviceBlock& dw) {
    for_chunks([&](int64_t r0, int64_t rows, int64_t ns) {
      float* x = X.chunk(r0, rows);
      F.forward(dw, x, ns);
      X.commit(r0, rows);
    });
  };

  for (int i = 0; i < n_blocks; ++i) {
    BlockWeights w = loader.take(i, i >= ckpt.done());
    clock.mark("load weights");
    if (i < ckpt.done()) {
      BlockPrefetcher::unpin(w);  // replaced below: no longer page-locked
      BlockResult r = ckpt.load(i);
      restore_quantized_layers(c, i, r, w, qm);
      DeviceBlock dw = upload_block(ctx, c, w);
      advance(dw);
      clock.mark("forward + Hessians");
      if (progress) progress(i + 1, n_blocks, fmt::format("block {}/{}: restored", i + 1, n_blocks));
      continue;
    }
    DeviceBlock dw = upload_block(ctx, c, w);
    ctx.sync();
    BlockPrefetcher::unpin(w);
    w = BlockWeights{};  // the host copy is not needed any more
    clock.mark("upload weights");
    BlockResult saved;
    const bool keep = ckpt.enabled();
    auto note = [&](LinearInput in) {
      if (progress)
        progress(i, n_blocks, fmt::format("block {}/{}: gptq {}", i + 1, n_blocks, linear_name(by_input[size_t(in)].front())));
    };
    if (opt.true_sequential) {
      {  // 1. q/k/v from the attention input
        DeviceHessian acc(ctx, c.linear_in(Linear::Q));
        for_chunks([&](int64_t r0, int64_t rows, int64_t) {
          F.attn_input(dw, X.chunk(r0, rows), rows, h.data());
          acc.add(ctx, h.data(), rows, math);
        });
        drv.quantize(i, dw, acc, by_input[size_t(LinearInput::AttnIn)], saved, keep);
        note(LinearInput::AttnIn);
      }
      {  // 2. o from the attention of the quantized q/k/v, kept for stage 3
        A.emplace(ctx, n_win * T, c.q_dim(), plan.on_device, crow, "attention outputs");
        DeviceHessian acc(ctx, c.linear_in(Linear::O));
        for_chunks([&](int64_t r0, int64_t rows, int64_t ns) {
          F.attn_input(dw, X.chunk(r0, rows), rows, h.data());
          float* att = A->chunk(r0, rows, false);
          F.attention_mix(dw, h.data(), ns, att);
          acc.add(ctx, att, rows, math);
          A->commit(r0, rows);
        });
        drv.quantize(i, dw, acc, by_input[size_t(LinearInput::AttnOut)], saved, keep);
        note(LinearInput::AttnOut);
      }
      {  // 3. the residual through the quantized o (kept in place); gate/up from the ffn input
        DeviceHessian acc(ctx, c.linear_in(Linear::Up));
        for_chunks([&](int64_t r0, int64_t rows, int64_t) {
          float* x = X.chunk(r0, rows);
          F.attn_residual(dw, x, A->chunk(r0, rows), rows);
          X.commit(r0, rows);
          F.ffn_input(dw, x, rows, h.data());
          acc.add(ctx, h.data(), rows, math);
        });
        A.reset();  // not needed again in this block: its memory goes to the Hessians of the larger inputs
        drv.quantize(i, dw, acc, by_input[size_t(LinearInput::FfnIn)], saved, keep);
        note(LinearInput::FfnIn);
      }
      {  // 4. down from the quantized gate/up
        DeviceHessian acc(ctx, c.linear_in(Linear::Down));
        for_chunks([&](int64_t r0, int64_t rows, int64_t) {
          F.ffn_input(dw, X.chunk(r0, rows), rows, h.data());
          F.ffn_mix(dw, h.data(), rows, mid.data());
          acc.add(ctx, mid.data(), rows, math);
        });
        drv.quantize(i, dw, acc, by_input[size_t(LinearInput::FfnMid)], saved, keep);
        note(LinearInput::FfnMid);
      }
      // 5. the block's output through the quantized down
      for_chunks([&](int64_t r0, int64_t rows, int64_t) {
        float* x = X.chunk(r0, rows);
        F.ffn_input(dw, x, rows, h.data());
        F.ffn_mix(dw, h.data(), rows, mid.data());
        F.ffn_residual(dw, x, mid.data(), rows);
        X.commit(r0, rows);
      });
    } else {
      // Every layer from the inputs of the unquantized block, then the block's output with all quantized.
      std::array<std::optional<DeviceHessian>, 4> acc;
      for (int in = 0; in < 4; ++in)
        if (!by_input[size_t(in)].empty()) acc[size_t(in)].emplace(ctx, c.linear_in(by_input[size_t(in)].front()));
      xs.reserve(crow * d, "block input copy");
      for_chunks([&](int64_t r0, int64_t rows, int64_t ns) {
        QL_CUDA(cudaMemcpyAsync(xs.data(), X.chunk(r0, rows), size_t(rows * d) * sizeof(float), cudaMemcpyDeviceToDevice,
                                ctx.stream()));
        F.forward(dw, xs.data(), ns, [&](LinearInput which, const float* x, int64_t n) {
          if (acc[size_t(which)]) acc[size_t(which)]->add(ctx, x, n, math);
          return true;
        });
      });
      for (int in = 0; in < 4; ++in)
        if (acc[size_t(in)]) drv.quantize(i, dw, *acc[size_t(in)], by_input[size_t(in)], saved, keep);
      advance(dw);
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
