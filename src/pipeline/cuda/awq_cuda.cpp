// AWQ over a whole model on the GPU: pipeline/awq.cpp's run_awq with the calibration pass, the scale
// search's candidate evaluations, the clipping search and the quantization on the device. The
// per-channel statistics (x̄ from the device, w̄ and the candidate scales s(α) from the host weights)
// and the folding use the CPU's functions, so the choices are the CPU's up to summation order.
#include "pipeline/cuda/cuda_common.h"
#include "pipeline/cuda/cuda_methods.h"

#include "pipeline/awq.h"
#include "pipeline/checkpoints.h"
#include "quant/awq_search.h"
#include "runtime/block.h"
#include "runtime/cuda/awq.h"
#include "runtime/cuda/gptq.h"
#include "runtime/cuda/kernels.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <functional>
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

// Calls fn(point, x) for every point run_block reaches.
class LambdaObserver final : public PointObserver {
 public:
  explicit LambdaObserver(std::function<bool(int, Act)> fn) : fn_(std::move(fn)) {}
  bool observe(int point, Act x) override { return fn_(point, x); }

 private:
  std::function<bool(int, Act)> fn_;
};

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
  const int n_blocks = int(c.n_layers);
  BlockCheckpoints ckpt(model, opt, scale_only ? "awq-scale" : "awq", &windows);

  const int64_t cw = plan.chunk_windows, crow = cw * T;
  ActivationStore X(ctx, n_win * T, d, plan.on_device, crow, "calibration activations");
  embed_on_device(ctx, model, windows, X, crow);
  const BlockSpec& spec0 = c.block(0);
  const size_t n_points = spec0.points.size();
  const int64_t max_w = spec0.max_point_width();
  DeviceArray<double> col_work(k::abs_col_sum_work(crow, max_w), "statistics");
  Ops F(ctx, c, T, math);
  DeviceArray<float> xs(crow * d, "block input copy");
  std::vector<DeviceArray<float>> sample(n_points);   // inputs of the first n_search windows: [ns_rows, width]
  std::vector<DeviceArray<double>> abs_sum(n_points);  // Σ|x| per channel over all tokens
  for (size_t p = 0; p < n_points; ++p) {
    sample[p] = DeviceArray<float>(ns_rows * spec0.points[p].width, "AWQ search sample");
    abs_sum[p] = DeviceArray<double>(spec0.points[p].width, "AWQ statistics");
  }
  DeviceArray<float> ref(ns_rows * d, "AWQ reference"), y(ns_rows * d, "AWQ candidate output");
  DeviceArray<float> norm_buf;
  DeviceArray<double> wsum(max_w, "AWQ statistics");
  BlockPrefetcher loader(model, true);
  AsyncCheckpoints saver(ckpt);
  clock.mark("embed + upload");

  auto for_chunks = [&](auto&& fn) {
    for (int64_t s0 = 0; s0 < n_win; s0 += cw) {
      const int64_t ns = std::min(cw, n_win - s0);
      fn(s0 * T, ns * T, ns, s0);
    }
  };
  auto advance = [&](const BlockSpec& spec) {
    for_chunks([&](int64_t r0, int64_t rows, int64_t ns, int64_t) {
      float* x = X.chunk(r0, rows);
      run_block(F, spec, Act{x, rows, d}, Step{ns, T, 0, nullptr, spec.layer});
      X.commit(r0, rows);
    });
  };
  // The output a scaling group's search inspects, for the sample x [ns_rows, in] → y [ns_rows, hidden].
  auto inspect = [&](const BlockSpec& spec, const AwqScalingGroup& g, const float* x, float* out) {
    const Step step{n_search, T, 0, nullptr, spec.layer};
    const int64_t in = spec.points[size_t(g.point)].width;
    if (g.inspect_sublayer) {
      sublayer_output(F, spec, g.sublayer, Act{const_cast<float*>(x), ns_rows, in}, Act{out, ns_rows, d}, step);
      return;
    }
    const int slots[] = {g.layers.front()};
    const Act outs[] = {Act{out, ns_rows, d}};
    F.linears(slots, Act{const_cast<float*>(x), ns_rows, in}, outs);
  };

  for (int i = 0; i < n_blocks; ++i) {
    const BlockSpec& spec = c.block(i);
    const auto t_block = std::chrono::steady_clock::now();
    BlockWeights w = loader.take(i, i >= ckpt.done());
    clock.mark("load weights");
    if (i < ckpt.done()) {
      BlockPrefetcher::unpin(w);  // replaced below: no longer page-locked
      BlockResult r = ckpt.load(i);
      const BlockWeights wq = restore_awq_block(c, i, r, w, p, scale_only ? nullptr : qm, scale_only ? scaled : nullptr);
      DeviceBlock dq = upload_block(ctx, wq);
      F.bind(spec, dq);
      advance(spec);
      clock.mark("forward");
      if (progress) progress(i + 1, n_blocks, fmt::format("block {}/{}: restored", i + 1, n_blocks));
      continue;
    }
    BlockResult saved;
    DeviceBlock dw = upload_block(ctx, w);
    F.bind(spec, dw);
    ctx.sync();
    BlockPrefetcher::unpin(w);
    // From here the matrices live on the device; on the host only their row counts remain ([out, 0]:
    // awq_fold_prev checks them and folds the biases).
    for (auto& l : w.linear)
      if (!l.w.empty()) l.w = Tensor(Shape{l.w.dim(0), 0});

    // 1. x̄ over every token, and the search sample (inputs of the first n_search windows).
    for (size_t pt = 0; pt < n_points; ++pt)
      QL_CUDA(cudaMemsetAsync(abs_sum[pt].data(), 0, size_t(abs_sum[pt].size()) * sizeof(double), ctx.stream()));
    for_chunks([&](int64_t r0, int64_t rows, int64_t ns, int64_t s0) {
      QL_CUDA(cudaMemcpyAsync(xs.data(), X.chunk(r0, rows), size_t(rows * d) * sizeof(float), cudaMemcpyDeviceToDevice,
                              ctx.stream()));
      LambdaObserver obs([&](int point, Act x) {
        const int64_t in = x.cols;
        k::abs_col_sum(x.p, x.rows, in, abs_sum[size_t(point)].data(), col_work.data(), ctx.stream());
        if (s0 < n_search) {
          const int64_t keep = std::min(n_search - s0, ns) * T;
          QL_CUDA(cudaMemcpyAsync(sample[size_t(point)].data() + s0 * T * in, x.p, size_t(keep * in) * sizeof(float),
                                  cudaMemcpyDeviceToDevice, ctx.stream()));
        }
        return point + 1 < int(n_points);
      });
      run_block(F, spec, Act{xs.data(), rows, d}, Step{ns, T, 0, nullptr, i}, &obs);
    });
    clock.mark("forward");
    std::string detail = fmt::format("block {}/{}: awq", i + 1, n_blocks);

    // 2. Scale search and folding, group by group.
    std::vector<bool> scaled_linear(spec.linears.size(), false);
    for (const AwqScalingGroup& g : awq_scaling_groups(spec)) {
      const std::string name = spec.prefix + g.label;
      const int64_t in_w = spec.points[size_t(g.point)].width;
      float* x = sample[size_t(g.point)].data();
      // w̄ (quant/awq_search.h awq_weight_mean) on the device: column sums of the group-normalized magnitudes.
      std::vector<float> w_mean(static_cast<size_t>(in_w));
      {
        int64_t rows = 0;
        QL_CUDA(cudaMemsetAsync(wsum.data(), 0, size_t(in_w) * sizeof(double), ctx.stream()));
        for (int l : g.layers) {
          const DeviceLinear& dl = dw.linear[size_t(l)];
          norm_buf.reserve(dl.out * dl.in, "AWQ weight statistics");
          k::awq_weight_norm(dl.w.data(), dl.out, dl.in, effective_group_size(p, dl.in), norm_buf.data(), ctx.stream());
          col_work.reserve(k::abs_col_sum_work(dl.out, dl.in), "statistics");
          k::abs_col_sum(norm_buf.data(), dl.out, dl.in, wsum.data(), col_work.data(), ctx.stream());
          rows += dl.out;
        }
        const std::vector<double> sums = to_host(ctx, wsum.data(), in_w);
        for (int64_t j = 0; j < in_w; ++j) w_mean[size_t(j)] = float(sums[size_t(j)] / double(rows));
      }
      const std::vector<double> sums = to_host(ctx, abs_sum[size_t(g.point)].data(), in_w);
      std::vector<float> x_mean(static_cast<size_t>(in_w));
      for (int64_t j = 0; j < in_w; ++j) x_mean[size_t(j)] = float(sums[size_t(j)] / double(n_win * T));
      inspect(spec, g, x, ref.data());
      const double n_out = double(ns_rows) * double(d);
      std::vector<DeviceArray<float>> cand(spec.linears.size());
      for (int l : g.layers) cand[size_t(l)] = DeviceArray<float>(dw.linear[size_t(l)].out * dw.linear[size_t(l)].in, "AWQ candidate");
      DeviceArray<float> s_dev(in_w, "AWQ scales");
      const AwqScaleResult best = awq_search_scale(
          x_mean, w_mean,
          [&](std::span<const float> sc) {
            ctx.upload(s_dev.data(), sc.data(), sc.size() * sizeof(float));
            for (int l : g.layers) {
              DeviceLinear& dl = dw.linear[size_t(l)];
              const int64_t gs = effective_group_size(ps, dl.in);
              k::awq_pseudo_quantize_scaled(dl.w.data(), s_dev.data(), dl.out, dl.in, gs, qs_search,
                                            cand[size_t(l)].data(), ctx.stream());
              std::swap(dl.w, cand[size_t(l)]);
            }
            inspect(spec, g, x, y.data());
            for (int l : g.layers) std::swap(dw.linear[size_t(l)].w, cand[size_t(l)]);
            return sum_sq(ctx, y.data(), ref.data(), ns_rows * d) / n_out;
          },
          name, kScaleGrid);
      const std::vector<std::string> prev = prev_op_tensors(spec, g);
      const DType dt = stored_dtype(src, g.folds_into_linear() ? prev.back() : prev.front());
      // Folding: the preceding op's norm / biases on the host (their dtype rounding decides the realized
      // scales; pipeline/awq.h awq_fold_prev), the matrices on the device.
      const std::vector<float> realized = awq_fold_prev(spec, w, g, best.scales, dt);
      const DeviceArray<float> r_dev = to_device(ctx, realized, "AWQ scales");
      if (!g.folds_into_linear()) {
        const NormWeights& n = w.norm[size_t(g.source_slot)];
        DeviceNorm& dn = dw.norm[size_t(g.source_slot)];
        upload_tensor(ctx, n.w, dn.w);
        upload_tensor(ctx, n.b, dn.b);
      } else {  // the preceding linear's rows ÷ s (the requested scales, as awq_fold_scales divides)
        DeviceLinear& pl = dw.linear[size_t(g.source_slot)];
        const DeviceArray<float> s_req = to_device(ctx, best.scales, "AWQ scales");
        k::scale_rows(pl.w.data(), s_req.data(), pl.out, pl.in, ctx.stream());
        upload_tensor(ctx, w.linear[size_t(g.source_slot)].b, pl.b);
      }
      for (int l : g.layers) {
        DeviceLinear& dl = dw.linear[size_t(l)];
        k::scale_cols(dl.w.data(), r_dev.data(), dl.out, dl.in, false, ctx.stream());
      }
      // The group's inputs are x / s from now on.
      k::scale_cols(x, r_dev.data(), ns_rows, in_w, true, ctx.stream());
      for (int l : g.layers) scaled_linear[size_t(l)] = true;
      if (g.folds_into_linear()) scaled_linear[size_t(g.source_slot)] = true;
      for (const auto& n : prev) {
        const bool is_weight = n.ends_with(".weight") && g.folds_into_linear();
        if (is_weight) continue;
        const Tensor& t = block_tensor(spec, w, n);
        if (!scale_only) qm->replaced[n] = t;
        else (*scaled)[n] = t;
        saved.tensors[n] = t;
      }
      detail += fmt::format(" {} a={:.2f}", g.label, best.ratio);
    }
    clock.mark("scale search");

    // 3. Clipping (not q/k) and quantization; the quantized block replaces dw's weights.
    for (size_t l = 0; l < spec.linears.size(); ++l) {
      const LinearSlot& slot = spec.linears[l];
      const std::string name = spec.linear_tensor(int(l));
      DeviceLinear& dl = dw.linear[l];
      DeviceArray<float> deq(dl.out * dl.in, "dequantized weights");
      if (scale_only) {
        rtn_quantize_device(ctx, dl.w.data(), dl.out, dl.in, p, name + ".weight", deq.data());
        if (scaled_linear[l])
          saved.tensors[name + ".weight"] = (*scaled)[name + ".weight"] =
              Tensor({dl.out, dl.in}, to_host(ctx, dl.w.data(), dl.out * dl.in));
        dl.w = std::move(deq);
        continue;
      }
      const auto t0 = std::chrono::steady_clock::now();
      const float* x = sample[size_t(slot.input)].data();
      DeviceArray<float> clipped(dl.out * dl.in, "AWQ clipped weights");
      QL_CUDA(cudaMemcpyAsync(clipped.data(), dl.w.data(), size_t(dl.out * dl.in) * sizeof(float),
                              cudaMemcpyDeviceToDevice, ctx.stream()));
      if (slot.role != Role::Q && slot.role != Role::K) {
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
    advance(spec);
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
