// AWQ's clipping search on the GPU (see awq.h).
#include "runtime/cuda/awq.h"

#include "runtime/cuda/gptq.h"
#include "runtime/cuda/kernels.h"

#include <algorithm>

namespace quantllm::cuda {

DeviceArray<float> awq_search_clip_device(const Context& ctx, const float* w, int64_t out, int64_t in, const float* x,
                                          int64_t n_tokens, const QuantParams& p_in, int n_grid, double max_shrink,
                                          int64_t n_sample_tokens) {
  QuantParams p = p_in;
  p.rule = RangeRule::kAwq;
  p.scale_rounding = ScaleRounding::kAfterCodes;
  p.mse = false;
  const QuantSpec qs = quant_spec(p);
  const int64_t gs = effective_group_size(p, in), ng = group_count(p, in);
  const int n_shrink = int(max_shrink * n_grid);
  // Sampled tokens x[::step]: [Ts, in].
  const int64_t step = std::max<int64_t>(1, n_tokens / n_sample_tokens), Ts = (n_tokens + step - 1) / step;
  DeviceArray<float> xs(Ts * in, "clip sample");
  QL_CUDA(cudaMemcpy2DAsync(xs.data(), size_t(in) * sizeof(float), x, size_t(step * in) * sizeof(float),
                            size_t(in) * sizeof(float), size_t(Ts), cudaMemcpyDeviceToDevice, ctx.stream()));
  DeviceArray<float> best(out * ng, "clip"), max_val(out * ng, "clip"), delta(out * in, "clip candidate");
  DeviceArray<double> err(ng * out, "clip errors");
  const std::vector<double> init(size_t(out * ng), 1e9);  // AutoAWQ's initial bound
  DeviceArray<double> min_err = to_device(ctx, init, "clip errors");
  // y: [gb, Ts, out] per batch of groups, at most ~256 MiB.
  const int64_t gb = std::clamp<int64_t>((int64_t(256) << 20) / std::max<int64_t>(1, Ts * out * 4), 1, ng);
  DeviceArray<float> y(gb * Ts * out, "clip outputs");
  for (int kk = 1; kk <= n_shrink; ++kk) {
    k::awq_clip_candidate(w, out, in, gs, qs, kk, n_grid, delta.data(), max_val.data(), ctx.stream());
    if (kk == 1)  // the unshrunk absmax unless a candidate beats the bound
      QL_CUDA(cudaMemcpyAsync(best.data(), max_val.data(), size_t(out * ng) * sizeof(float), cudaMemcpyDeviceToDevice,
                              ctx.stream()));
    for (int64_t g0 = 0; g0 < ng; g0 += gb) {
      const int64_t nbg = std::min(gb, ng - g0);
      // y[g] [Ts, out] = xs[:, group g] · delta[:, group g]ᵀ: xs·(Q − W)ᵀ, the output error of the candidate.
      ctx.gemm_strided_batched(false, true, Ts, out, gs, 1.0f, xs.data() + g0 * gs, in, gs, delta.data() + g0 * gs, in,
                               gs, 0.0f, y.data(), out, Ts * out, nbg, Math::FP32);
      k::awq_clip_error(y.data(), nbg, Ts, out, g0, err.data(), ctx.stream());
    }
    k::awq_clip_select(err.data(), max_val.data(), out, ng, min_err.data(), best.data(), ctx.stream());
  }
  return best;
}

}  // namespace quantllm::cuda
