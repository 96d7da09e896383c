// Device-side helpers shared by the .cu files: launch geometry, warp and block reductions, and the
// group-parameter rules of quant/group_quant.cpp transcribed for the GPU (same operations in the same
// order; IEEE division; half-to-even rounding as std::nearbyint; the .cu files build without FMA
// contraction, so the parameters and codes equal the CPU's for the same input values).
#pragma once

#include "runtime/cuda/check.h"
#include "runtime/cuda/kernels.h"

#include <cuda_fp16.h>

#include <cfloat>
#include <cstdint>

namespace quantllm::cuda {

inline unsigned grid_for(int64_t n, int threads, int64_t cap = 1 << 20) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > cap) b = cap;
  return unsigned(b);
}

__device__ __forceinline__ float warp_min(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fminf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum over a block of at most 1024 threads (blockDim.x a multiple of 32); every thread gets the total.
__device__ __forceinline__ double block_sum(double v) {
  __shared__ double part[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();  // part[] may still be read by a previous call
  if (lane == 0) part[warp] = v;
  __syncthreads();
  double t = 0.0;
  for (int i = 0; i < nw; ++i) t += part[i];
  return t;
}
__device__ __forceinline__ float block_max(float v) {
  __shared__ float part[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) part[warp] = v;
  __syncthreads();
  float t = -INFINITY;
  for (int i = 0; i < nw; ++i) t = fmaxf(t, part[i]);
  return t;
}

struct GP {
  float scale;
  int32_t zero;
};

// finalize_scale: fp16 round-to-nearest-even; 0 becomes the smallest subnormal (2^-24).
__device__ __forceinline__ float finalize_scale_dev(float s) {
  float h = __half2float(__float2half_rn(s));
  if (h == 0.0f) h = 5.9604644775390625e-08f;
  return h;
}

__device__ __forceinline__ GP params_from_range(float xmin, float xmax, const QuantSpec& q) {
  GP g;
  if (!q.awq_rule) {
    g.scale = __fdiv_rn(xmax - xmin, float(q.maxq));
    g.zero = q.sym ? (q.maxq + 1) / 2 : int32_t(rintf(__fdiv_rn(-xmin, g.scale)));
  } else if (!q.sym) {
    g.scale = __fdiv_rn(fmaxf(xmax - xmin, 1e-5f), float(q.maxq));
    float z = -rintf(__fdiv_rn(xmin, g.scale));
    z = z < 0.0f ? 0.0f : (z > float(q.maxq) ? float(q.maxq) : z);
    g.zero = int32_t(z);
  } else {
    g.scale = __fdiv_rn(fmaxf(xmax, 1e-5f), float((q.maxq + 1) / 2 - 1));
    g.zero = (q.maxq + 1) / 2;
  }
  if (q.round_scale_first) g.scale = finalize_scale_dev(g.scale);
  return g;
}

// The range rule of find_group_params, from the group's min and max.
__device__ __forceinline__ void range_rule(float lo, float hi, const QuantSpec& q, float& xmin, float& xmax) {
  if (!q.awq_rule) {
    xmin = fminf(lo, 0.0f);
    xmax = fmaxf(hi, 0.0f);
    if (q.sym) {
      xmax = fmaxf(fabsf(xmin), xmax);
      if (xmin < 0.0f) xmin = -xmax;
    }
    if (xmin == 0.0f && xmax == 0.0f) {
      xmin = -1.0f;
      xmax = 1.0f;
    }
  } else {
    xmin = lo;
    xmax = hi;
    if (q.sym) xmax = fmaxf(fabsf(xmin), fabsf(xmax));
  }
}

__device__ __forceinline__ int32_t quantize_dev(float x, const GP& g, int maxq) {
  float v = rintf(__fdiv_rn(x, g.scale)) + float(g.zero);
  v = v < 0.0f ? 0.0f : (v > float(maxq) ? float(maxq) : v);
  return int32_t(v);
}
__device__ __forceinline__ float dequantize_dev(int32_t code, const GP& g) { return g.scale * float(code - g.zero); }

// |d|^2.4 as the MSE search scores it.
__device__ __forceinline__ double shrink_term(float x, const GP& g, int maxq) {
  const float d = dequantize_dev(quantize_dev(x, g, maxq), g) - x;
  return double(powf(fabsf(d), 2.4f));
}

// Parameters of one group whose values a warp holds: each lane passes its values through `visit`
// (a callable taking a functor f(float)), which is called once for the min/max and once per MSE step.
template <typename Visit>
__device__ GP warp_find_params(const QuantSpec& q, Visit visit) {
  float lo = INFINITY, hi = -INFINITY;
  visit([&](float x) {
    lo = fminf(lo, x);
    hi = fmaxf(hi, x);
  });
  lo = warp_min(lo);
  hi = warp_max(hi);
  float xmin, xmax;
  range_rule(lo, hi, q, xmin, xmax);
  GP best = params_from_range(xmin, xmax, q);
  if (!q.mse) return best;
  double best_err = INFINITY;
  for (int i = 0; i < 80; ++i) {  // maxshrink 0.8 over a grid of 100, as find_group_params
    const float shrink = float(1.0 - double(i) / 100.0);
    const GP cand = params_from_range(shrink * xmin, shrink * xmax, q);
    double e = 0.0;
    visit([&](float x) { e += shrink_term(x, cand, q.maxq); });
    e = warp_sum(e);
    if (e < best_err) {
      best_err = e;
      best = cand;
    }
  }
  return best;
}

}  // namespace quantllm::cuda
