// AWQ's kernels (declared in kernels.h): the scale search's pseudo-quantization of scaled weights
// and the clipping search's candidates, errors and selection, as quant/awq_search.cpp computes them.
#include "runtime/cuda/device_util.cuh"

namespace quantllm::cuda::k {

namespace {

constexpr int kThreads = 256;

unsigned warps_grid(int64_t warps) { return grid_for(warps * 32, kThreads, int64_t(1) << 31); }

// One warp per (row, group): Q(w·s)/s.
__global__ void pseudo_quantize_scaled_kernel(const float* w, const float* sc, int64_t out, int64_t in, int64_t gs,
                                              QuantSpec q, float* dst) {
  const int64_t ng = in / gs;
  const int64_t task = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  if (task >= out * ng) return;
  const int64_t r = task / ng, g = task % ng, c0 = g * gs;
  const float* x = w + r * in + c0;
  const float* s = sc + c0;
  const GP p = warp_find_params(q, [&](auto&& f) {
    for (int64_t j = lane; j < gs; j += 32) f(x[j] * s[j]);
  });
  for (int64_t j = lane; j < gs; j += 32) {
    const float xs = x[j] * s[j];
    dst[r * in + c0 + j] = dequantize_dev(quantize_dev(xs, p, q.maxq), p) / s[j];
  }
}

__global__ void clip_candidate_kernel(const float* w, int64_t out, int64_t in, int64_t gs, QuantSpec q, int k,
                                      int n_grid, float* delta, float* max_val) {
  const int64_t ng = in / gs;
  const int64_t task = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  if (task >= out * ng) return;
  const int64_t r = task / ng, g = task % ng, c0 = g * gs;
  const float* x = w + r * in + c0;
  float amax = 0.0f;
  for (int64_t j = lane; j < gs; j += 32) amax = fmaxf(amax, fabsf(x[j]));
  amax = warp_max(amax);
  const float mv = amax * float(1.0 - double(k - 1) / n_grid);
  auto clamped = [&](float v) { return v < -mv ? -mv : (v > mv ? mv : v); };
  const GP p = warp_find_params(q, [&](auto&& f) {
    for (int64_t j = lane; j < gs; j += 32) f(clamped(x[j]));
  });
  for (int64_t j = lane; j < gs; j += 32)
    delta[r * in + c0 + j] = dequantize_dev(quantize_dev(clamped(x[j]), p, q.maxq), p) - x[j];
  if (lane == 0) max_val[r * ng + g] = mv;
}

// One thread per (group in batch, row): Σ over the T tokens of y², in token order.
__global__ void clip_error_kernel(const float* y, int64_t ng_batch, int64_t T, int64_t out, int64_t g0, double* err) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= ng_batch * out) return;
  const int64_t gb = i / out, r = i % out;
  const float* yg = y + gb * T * out + r;
  double e = 0.0;
  for (int64_t t = 0; t < T; ++t) {
    const double d = double(yg[t * out]);
    e += d * d;
  }
  err[(g0 + gb) * out + r] = e / double(T);
}

__global__ void clip_select_kernel(const double* err, const float* max_val, int64_t out, int64_t ng, double* min_err,
                                   float* best) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;  // r * ng + g
  if (i >= out * ng) return;
  const int64_t r = i / ng, g = i % ng;
  const double e = err[g * out + r];
  if (e < min_err[i]) {
    min_err[i] = e;
    best[i] = max_val[i];
  }
}

__global__ void apply_clip_kernel(float* w, const float* max_val, int64_t out, int64_t in, int64_t gs) {
  const int64_t total = out * in, ng = in / gs;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / in, c = i % in;
    const float mv = max_val[r * ng + c / gs];
    const float v = w[i];
    w[i] = v < -mv ? -mv : (v > mv ? mv : v);
  }
}

// One warp per (row, group).
__global__ void weight_norm_kernel(const float* w, int64_t out, int64_t in, int64_t gs, float* dst) {
  const int64_t ng = in / gs;
  const int64_t task = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  if (task >= out * ng) return;
  const int64_t base = (task / ng) * in + (task % ng) * gs;
  float amax = 0.0f;
  for (int64_t j = lane; j < gs; j += 32) amax = fmaxf(amax, fabsf(w[base + j]));
  amax = warp_max(amax);
  for (int64_t j = lane; j < gs; j += 32) dst[base + j] = fabsf(w[base + j]) / (amax + 1e-6f);
}

__global__ void scale_rows_kernel(float* w, const float* sc, int64_t rows, int64_t cols) {
  const int64_t total = rows * cols;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x)
    w[i] /= sc[i / cols];
}

}  // namespace

void awq_weight_norm(const float* w, int64_t out, int64_t in, int64_t gs, float* dst, cudaStream_t s) {
  QL_CU_ASSERT(gs > 0 && in % gs == 0);
  weight_norm_kernel<<<warps_grid(out * (in / gs)), kThreads, 0, s>>>(w, out, in, gs, dst);
  QL_CUDA_LAUNCHED();
}
void scale_rows(float* w, const float* sc, int64_t rows, int64_t cols, cudaStream_t s) {
  scale_rows_kernel<<<grid_for(rows * cols, kThreads), kThreads, 0, s>>>(w, sc, rows, cols);
  QL_CUDA_LAUNCHED();
}

void awq_pseudo_quantize_scaled(const float* w, const float* sc, int64_t out, int64_t in, int64_t gs,
                                const QuantSpec& q, float* dst, cudaStream_t s) {
  QL_CU_ASSERT(gs > 0 && in % gs == 0);
  pseudo_quantize_scaled_kernel<<<warps_grid(out * (in / gs)), kThreads, 0, s>>>(w, sc, out, in, gs, q, dst);
  QL_CUDA_LAUNCHED();
}
void awq_clip_candidate(const float* w, int64_t out, int64_t in, int64_t gs, const QuantSpec& q, int k, int n_grid,
                        float* delta, float* max_val, cudaStream_t s) {
  QL_CU_ASSERT(gs > 0 && in % gs == 0 && k >= 1);
  clip_candidate_kernel<<<warps_grid(out * (in / gs)), kThreads, 0, s>>>(w, out, in, gs, q, k, n_grid, delta, max_val);
  QL_CUDA_LAUNCHED();
}
void awq_clip_error(const float* y, int64_t ng_batch, int64_t T, int64_t out, int64_t g0, double* err, cudaStream_t s) {
  clip_error_kernel<<<grid_for(ng_batch * out, kThreads), kThreads, 0, s>>>(y, ng_batch, T, out, g0, err);
  QL_CUDA_LAUNCHED();
}
void awq_clip_select(const double* err, const float* max_val, int64_t out, int64_t ng, double* min_err, float* best,
                     cudaStream_t s) {
  clip_select_kernel<<<grid_for(out * ng, kThreads), kThreads, 0, s>>>(err, max_val, out, ng, min_err, best);
  QL_CUDA_LAUNCHED();
}
void awq_apply_clip(float* w, const float* max_val, int64_t out, int64_t in, int64_t gs, cudaStream_t s) {
  apply_clip_kernel<<<grid_for(out * in, kThreads), kThreads, 0, s>>>(w, max_val, out, in, gs);
  QL_CUDA_LAUNCHED();
}

}  // namespace quantllm::cuda::k
