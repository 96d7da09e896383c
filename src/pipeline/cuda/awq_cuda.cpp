// AWQ over a whole model on the GPU: pipeline/awq.cpp's run_awq with the calibration pass, the scale
// search's candidate evaluations, the clipping search and the quantization on the device. The
// per-channel statistics (x̄ from the device, w̄ and the candidate scales s(α) from the host weights)
// and the folding use the CPU's functions, so the choices are the CPU's up to summation order.
#include "pipeline/cuda/cuda_common.h"
#include "pipeline/cuda/cuda_methods.h"

#include "pipeline/awq.h"
#include "pipeline/checkpoints.h"
#include "quant/awq_search.h"
#include "runtime/cuda/awq.h"
#include "runtime/cuda/gptq.h"
#include "runtime/cuda/kernels.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <limits>

namespace quantllm {

using namespace quantllm::cuda;

namespace {

constexpr int kScaleGrid = 20;        // AutoAWQ n_grid (as pipeline/awq.cpp)
constexpr int64_t kMaxPartials = 4096;

double device_sum(const Context& ctx, DeviceArray<double>& part, int64_t n_partials) {
  double s = 0.0;
  for (double v : to_host(ctx, part.data(), n_partials)) s += v;
  return s;
}

// Σ (a − b)² (b null: Σ a²) over n elements, deterministic.
double sum_sq(const Context& ctx, const float* a, const float* b, int64_t n) {
  DeviceArray<double> part(kMaxPartials, "partial sums");
  return device_sum(ctx, part, k::sq_diff_partials(a, b, n, part.data(), kMaxPartials, ctx.stream()));
}

}  // namespace

void run_awq_cuda(const Model& model, const GroupMethodOptions& opt, const CalibWindows& windows, bool scale_only,
                  QuantizedModel* qm, std::map<std::string, Tensor>* scaled, const BlockProgress& progress) {
  const ModelConfig& c = model.config;
  const WeightSource& src = *model.weights;
  QuantParams p = opt.quant;
  if (!scale_only) p.rule = RangeRule::kAwq;
  QuantParams ps = p;  // inside the searches: fp32 scales, plain ranges
  ps.scale_rounding = ScaleRounding::kAfterCodes;
  ps.mse = false;
  const QuantSpec qs_search = quant_spec(ps);

  Context ctx;
  reset_device_peak();
  const Math math = opt.gpu_tf32 ? Math::TF32 : Math::FP32;
  const int64_t T = windows.seqlen, n_win = windows.n, d = c.hidden;
  const int64_t n_search = std::clamp<int64_t>(opt.awq_search_tokens / T, 1, n_win), ns_rows = n_search * T;
  const MemoryPlan plan = plan_memory(ctx, c, n_win, T, opt, false);
  print_gpu_plan(ctx, plan, opt);
  PhaseClock clock(ctx);
  const auto groups = awq_scaling_groups(c);
  const int n_blocks = int(c.n_layers);
  BlockCheckpoints ckpt(model, opt, scale_only ? "awq-scale" : "awq", &windows);

  const int64_t cw = plan.chunk_windows, crow = cw * T;
  ActivationStore X(ctx, n_win * T, d, plan.on_device, crow, "calibration activations");
  embed_on_device(ctx, model, windows, X, crow);
  DeviceArray<double> col_work(k::abs_col_sum_work(crow, std::max(c.ffn, std::max(c.hidden, c.q_dim()))), "statistics");
  BlockForward F(ctx, c, T, math);
  DeviceArray<float> xs(crow * d, "block input copy");
  std::array<DeviceArray<float>, 4> sample;   // inputs of the first n_search windows: [ns_rows, in]
  std::array<DeviceArray<double>, 4> abs_sum;  // Σ|x| per channel over all tokens
  for (int in = 0; in < 4; ++in) {
    sample[size_t(in)] = DeviceArray<float>(ns_rows * linear_input_width(c, LinearInput(in)), "AWQ search sample");
    abs_sum[size_t(in)] = DeviceArray<double>(linear_input_width(c, LinearInput(in)), "AWQ statistics");
  }
  DeviceArray<float> ref(ns_rows * d, "AWQ reference"), y(ns_rows * d, "AWQ candidate output");
  DeviceArray<float> att(ns_rows * c.q_dim(), "AWQ attention"), mid(ns_rows * c.ffn, "AWQ ffn");
  DeviceArray<float> norm_buf;
  DeviceArray<double> wsum(std::max(c.ffn, std::max(c.hidden, c.q_dim())), "AWQ statistics");
  BlockPrefetcher loader(model, true);
  AsyncCheckpoints saver(ckpt);
  clock.mark("embed + upload");

  auto for_chunks = [&](auto&& fn) {
    for (int64_t s0 = 0; s0 < n_win; s0 += cw) {
      const int64_t ns = std::min(cw, n_win - s0);
      fn(s0 * T, ns * T, ns, s0);
    }
  };
  auto advance = [&](DeviceBlock& dw) {
    for_chunks([&](int64_t r0, int64_t rows, int64_t ns, int64_t) {
      float* x = X.chunk(r0, rows);
      F.forward(dw, x, ns);
      X.commit(r0, rows);
    });
  };
  // The output a scaling group's search inspects, for the sample x [ns_rows, in] → y [ns_rows, hidden].
  auto inspect = [&](const DeviceBlock& dw, const AwqScalingGroup& g, const float* x, float* out) {
    switch (g.prev) {
      case AwqPrevOp::AttnNorm:
        F.attention_mix(dw, x, n_search, att.data());
        F.linear(dw[Linear::O], att.data(), ns_rows, out);
        return;
      case AwqPrevOp::FfnNorm:
        F.ffn_mix(dw, x, ns_rows, mid.data());
        F.linear(dw[Linear::Down], mid.data(), ns_rows, out);
        return;
      case AwqPrevOp::V: F.linear(dw[Linear::O], x, ns_rows, out); return;
      case AwqPrevOp::Up: F.linear(dw[Linear::Down], x, ns_rows, out); return;
    }
  };

  for (int i = 0; i < n_blocks; ++i) {
    const auto t_block = std::chrono::steady_clock::now();
    BlockWeights w = loader.take(i, i >= ckpt.done());
    clock.mark("load weights");
    if (i < ckpt.done()) {
      BlockPrefetcher::unpin(w);  // replaced below: no longer page-locked
      BlockResult r = ckpt.load(i);
      const BlockWeights wq = restore_awq_block(c, i, r, w, p, scale_only ? nullptr : qm, scale_only ? scaled : nullptr);
      DeviceBlock dq = upload_block(ctx, c, wq);
      advance(dq);
      clock.mark("forward");
      if (progress) progress(i + 1, n_blocks, fmt::format("block {}/{}: restored", i + 1, n_blocks));
      continue;
    }
    BlockResult saved;
    DeviceBlock dw = upload_block(ctx, c, w);
    ctx.sync();
    BlockPrefetcher::unpin(w);
    // From here the matrices live on the device; on the host only their row counts remain ([out, 0]:
    // awq_fold_prev checks them and folds the biases).
    for (int l = 0; l < kNumLinear; ++l) {
      Tensor& t = w.linear[size_t(l)].w;
      if (!t.empty()) t = Tensor(Shape{t.dim(0), 0});
    }

    // 1. x̄ over every token, and the search sample (inputs of the first n_search windows).
    for (int in = 0; in < 4; ++in)
      QL_CUDA(cudaMemsetAsync(abs_sum[size_t(in)].data(), 0, size_t(abs_sum[size_t(in)].size()) * sizeof(double),
                              ctx.stream()));
    for_chunks([&](int64_t r0, int64_t rows, int64_t ns, int64_t s0) {
      QL_CUDA(cudaMemcpyAsync(xs.data(), X.chunk(r0, rows), size_t(rows * d) * sizeof(float), cudaMemcpyDeviceToDevice,
                              ctx.stream()));
      F.forward(dw, xs.data(), ns, [&](LinearInput which, const float* x, int64_t n) {
        const int64_t in = linear_input_width(c, which);
        k::abs_col_sum(x, n, in, abs_sum[size_t(which)].data(), col_work.data(), ctx.stream());
        if (s0 < n_search) {
          const int64_t keep = std::min(n_search - s0, ns) * T;
          QL_CUDA(cudaMemcpyAsync(sample[size_t(which)].data() + s0 * T * in, x, size_t(keep * in) * sizeof(float),
                                  cudaMemcpyDeviceToDevice, ctx.stream()));
        }
        return which != LinearInput::FfnMid;
      });
    });
    clock.mark("forward");
    std::string detail = fmt::format("block {}/{}: awq", i + 1, n_blocks);

    // 2. Scale search and folding, group by group.
    std::vector<bool> scaled_linear(kNumLinear, false);
    for (const AwqScalingGroup& g : groups) {
      const std::string name = c.block_prefix(i) + g.label;
      const int64_t in_w = linear_input_width(c, g.input);
      float* x = sample[size_t(g.input)].data();
      // w̄ (quant/awq_search.h awq_weight_mean) on the device: column sums of the group-normalized magnitudes.
      std::vector<float> w_mean(static_cast<size_t>(in_w));
      {
        int64_t rows = 0;
        QL_CUDA(cudaMemsetAsync(wsum.data(), 0, size_t(in_w) * sizeof(double), ctx.stream()));
        for (Linear l : g.layers) {
          const DeviceLinear& dl = dw[l];
          norm_buf.reserve(dl.out * dl.in, "AWQ weight statistics");
          k::awq_weight_norm(dl.w.data(), dl.out, dl.in, effective_group_size(p, dl.in), norm_buf.data(), ctx.stream());
          col_work.reserve(k::abs_col_sum_work(dl.out, dl.in), "statistics");
          k::abs_col_sum(norm_buf.data(), dl.out, dl.in, wsum.data(), col_work.data(), ctx.stream());
          rows += dl.out;
        }
        const std::vector<double> sums = to_host(ctx, wsum.data(), in_w);
        for (int64_t j = 0; j < in_w; ++j) w_mean[size_t(j)] = float(sums[size_t(j)] / double(rows));
      }
      const std::vector<double> sums = to_host(ctx, abs_sum[size_t(g.input)].data(), in_w);
      std::vector<float> x_mean(static_cast<size_t>(in_w));
      for (int64_t j = 0; j < in_w; ++j) x_mean[size_t(j)] = float(sums[size_t(j)] / double(n_win * T));
      inspect(dw, g, x, ref.data());
      const double n_out = double(ns_rows) * double(d);
      std::array<DeviceArray<float>, kNumLinear> cand;
      for (Linear l : g.layers) cand[size_t(l)] = DeviceArray<float>(dw[l].out * dw[l].in, "AWQ candidate");
      DeviceArray<float> s_dev(in_w, "AWQ scales");
      const AwqScaleResult best = awq_search_scale(
          x_mean, w_mean,
          [&](std::span<const float> s) {
            ctx.upload(s_dev.data(), s.data(), s.size() * sizeof(float));
            for (Linear l : g.layers) {
              const int64_t gs = effective_group_size(ps, dw[l].in);
              k::awq_pseudo_quantize_scaled(dw[l].w.data(), s_dev.data(), dw[l].out, dw[l].in, gs, qs_search,
                                            cand[size_t(l)].data(), ctx.stream());
              std::swap(dw[l].w, cand[size_t(l)]);
            }
            inspect(dw, g, x, y.data());
            for (Linear l : g.layers) std::swap(dw[l].w, cand[size_t(l)]);
            return sum_sq(ctx, y.data(), ref.data(), ns_rows * d) / n_out;
          },
          name, kScaleGrid);
      const std::vector<std::string> prev = prev_op_tensors(c, i, g);
      const DType dt = stored_dtype(src, g.prev == AwqPrevOp::V || g.prev == AwqPrevOp::Up ? prev.back() : prev.front());
      // Folding: the preceding op's norm / biases on the host (their dtype rounding decides the realized
      // scales; pipeline/awq.h awq_fold_prev), the matrices on the device.
      const std::vector<float> realized = awq_fold_prev(c, w, g, best.scales, dt);
      const DeviceArray<float> r_dev = to_device(ctx, realized, "AWQ scales");
      if (g.prev == AwqPrevOp::AttnNorm || g.prev == AwqPrevOp::FfnNorm) {
        const NormWeights& n = g.prev == AwqPrevOp::AttnNorm ? w.attn_norm : w.ffn_norm;
        DeviceNorm& dn = g.prev == AwqPrevOp::AttnNorm ? dw.attn_norm : dw.ffn_norm;
        upload_tensor(ctx, n.w, dn.w);
        upload_tensor(ctx, n.b, dn.b);
      } else {  // the preceding linear's rows ÷ s (the requested scales, as awq_fold_scales divides)
        const Linear pl = g.prev == AwqPrevOp::V ? Linear::V : Linear::Up;
        const DeviceArray<float> s_req = to_device(ctx, best.scales, "AWQ scales");
        k::scale_rows(dw[pl].w.data(), s_req.data(), dw[pl].out, dw[pl].in, ctx.stream());
        upload_tensor(ctx, w[pl].b, dw[pl].b);
      }
      for (Linear l : g.layers) k::scale_cols(dw[l].w.data(), r_dev.data(), dw[l].out, dw[l].in, false, ctx.stream());
      // The group's inputs are x / s from now on.
      k::scale_cols(x, r_dev.data(), ns_rows, in_w, true, ctx.stream());
      for (Linear l : g.layers) scaled_linear[size_t(l)] = true;
      if (g.prev == AwqPrevOp::V) scaled_linear[size_t(Linear::V)] = true;
      if (g.prev == AwqPrevOp::Up) scaled_linear[size_t(Linear::Up)] = true;
      for (const auto& n : prev) {
        const bool is_weight = n.ends_with(".weight") && (g.prev == AwqPrevOp::V || g.prev == AwqPrevOp::Up);
        if (is_weight) continue;
        const Tensor& t = block_tensor(c, w, i, n);
        if (!scale_only) qm->replaced[n] = t;
        else (*scaled)[n] = t;
        saved.tensors[n] = t;
      }
      detail += fmt::format(" {} a={:.2f}", g.label, best.ratio);
    }
    clock.mark("scale search");

    // 3. Clipping (not q/k) and quantization; the quantized block replaces dw's weights.
    for (int l = 0; l < kNumLinear; ++l) {
      const Linear lin = Linear(l);
      if (!c.has_linear(lin)) continue;
      const std::string name = c.linear_tensor(i, lin);
      DeviceLinear& dl = dw[lin];
      DeviceArray<float> deq(dl.out * dl.in, "dequantized weights");
      if (scale_only) {
        rtn_quantize_device(ctx, dl.w.data(), dl.out, dl.in, p, name + ".weight", deq.data());
        if (scaled_linear[size_t(l)])
          saved.tensors[name + ".weight"] = (*scaled)[name + ".weight"] =
              Tensor({dl.out, dl.in}, to_host(ctx, dl.w.data(), dl.out * dl.in));
        dl.w = std::move(deq);
        continue;
      }
      const auto t0 = std::chrono::steady_clock::now();
      const float* x = sample[size_t(linear_input_of(lin))].data();
      DeviceArray<float> clipped(dl.out * dl.in, "AWQ clipped weights");
      QL_CUDA(cudaMemcpyAsync(clipped.data(), dl.w.data(), size_t(dl.out * dl.in) * sizeof(float),
                              cudaMemcpyDeviceToDevice, ctx.stream()));
      if (lin != Linear::Q && lin != Linear::K) {
        const DeviceArray<float> max_val = awq_search_clip_device(ctx, dl.w.data(), dl.out, dl.in, x, ns_rows, ps);
        k::awq_apply_clip(clipped.data(), max_val.data(), dl.out, dl.in, effective_group_size(ps, dl.in), ctx.stream());
      }
      GroupQuantized q = rtn_quantize_device(ctx, clipped.data(), dl.out, dl.in, p, name + ".weight", deq.data());
      // tr((W−Q) H (W−Q)ᵀ) / tr(W H Wᵀ) over the sample: Σ (x·(W−Q)ᵀ)² / Σ (x·Wᵀ)².
      DeviceArray<float> diff(dl.out * dl.in, "AWQ error"), out_y(ns_rows * dl.out, "AWQ error");
      k::sub(dl.w.data(), deq.data(), diff.data(), dl.out * dl.in, ctx.stream());
      ctx.gemm(false, true, ns_rows, dl.out, dl.in, 1.0f, x, dl.in, diff.data(), dl.in, 0.0f, out_y.data(), dl.out, math);
      const double num = sum_sq(ctx, out_y.data(), nullptr, ns_rows * dl.out);
      ctx.gemm(false, true, ns_rows, dl.out, dl.in, 1.0f, x, dl.in, dl.w.data(), dl.in, 0.0f, out_y.data(), dl.out, math);
      const double den = sum_sq(ctx, out_y.data(), nullptr, ns_rows * dl.out);
      dl.w = std::move(deq);
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      qm->stats[name] = saved.stats[name] = LayerStats{.relative_error = den > 0 ? num / den : 0.0, .seconds = secs};
      if (ckpt.enabled()) saved.layers[name] = q;
      qm->layers[name] = std::move(q);
    }
    clock.mark("clip + quantize");
    advance(dw);
    clock.mark("forward");
    saver.save(i, std::move(saved));
    clock.mark("checkpoint");
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_block).count();
    if (progress) progress(i + 1, n_blocks, fmt::format("{} ({:.1f}s)", detail, secs));
  }
  saver.finish();
  clock.mark("checkpoint");
  std::fprintf(stderr, "quantllm: GPU time: %s; peak GPU memory %.2f GiB\n", clock.report().c_str(),
               double(device_peak_bytes()) / (1024.0 * 1024.0 * 1024.0));
}

}  // namespace quantllm
