// GPTQ's kernels (declared in kernels.h): Hessian permutation and damping, the Cholesky factor's
// post-processing, group parameters, the column loop of one lazy batch, and (de)quantization.
//
// The column loop (gptq_block) gives each output row one warp: the row's ≤ 128 columns of the batch
// sit in registers (4 per lane), the batch's rows of H⁻¹'s factor in shared memory (one copy per
// CTA, 8 rows a CTA). Column p's value is broadcast from its lane, quantized, and its scaled error
// pushed onto the later columns of the batch by every lane at once: one launch per batch of 128
// columns instead of one per column. Rows are independent given H⁻¹, so this is exactly the CPU's
// run_chunk (quant/gptq.cpp) with the rows spread over warps.
#include "runtime/cuda/device_util.cuh"

namespace quantllm::cuda::k {

namespace {

constexpr int kThreads = 256;
constexpr int kRowsPerCta = 8;  // warps per CTA in gptq_block
constexpr int kSlots = 4;       // columns per lane: batches of up to 128 columns

__global__ void permute_hessian_kernel(const double* h, const int32_t* perm, const uint8_t* dead, int64_t n, double f,
                                       double add, double* dst) {
  const int64_t total = n * n;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t a = i / n, b = i % n;
    const int64_t pa = perm[a], pb = perm[b];
    double v = f * h[pa * n + pb];
    if (a == b) {
      if (dead[pa]) v = 1.0;
      v += add;
    }
    dst[i] = v;
  }
}

__global__ void reversed_lower_to_upper_kernel(const double* linv, int64_t n, float* hinv, int32_t* bad) {
  const int64_t total = n * n;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t a = i / n, b = i % n;
    // Column-major element (row n−1−a, column n−1−b) of the lower factor's inverse.
    const double v = b < a ? 0.0 : linv[(n - 1 - b) * n + (n - 1 - a)];
    if (!isfinite(v)) *bad = 1;
    hinv[i] = float(v);
  }
}

__global__ void identity_slab_kernel(double* slab, int64_t rows, int64_t cols) {
  const int64_t total = rows * cols;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x)
    slab[i] = (i / rows == i % rows) ? 1.0 : 0.0;
}

// Thread i: slab column c = i / rows, row r = i % rows, i.e. linv's entry (j0 + r, j0 + c).
__global__ void scatter_inverse_slab_kernel(const double* slab, int64_t n, int64_t j0, int64_t cols, float* hinv,
                                            int32_t* bad) {
  const int64_t rows = n - j0, total = rows * cols;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i / rows, r = i % rows;
    if (r < c) continue;  // above the diagonal: zero, and hinv's lower part is written by the caller
    const double v = slab[i];
    if (!isfinite(v)) *bad = 1;
    hinv[(n - 1 - (j0 + r)) * n + (n - 1 - (j0 + c))] = float(v);
  }
}

__global__ void permute_columns_kernel(const float* w, const int32_t* perm, const uint8_t* dead, int64_t out, int64_t in,
                                       float* dst) {
  const int64_t total = out * in;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / in, p = i % in;
    const int64_t c = perm[p];
    dst[i] = dead[c] ? 0.0f : w[r * in + c];
  }
}

// One warp per (row, group): the group's values are read straight from w.
__global__ void group_params_kernel(const float* w, int64_t out, int64_t in, int64_t gs, QuantSpec q, float* scale,
                                    int32_t* zero) {
  const int64_t ng = in / gs;
  const int64_t task = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  if (task >= out * ng) return;
  const int64_t r = task / ng, g = task % ng;
  const float* x = w + r * in + g * gs;
  const GP p = warp_find_params(q, [&](auto&& f) {
    for (int64_t j = lane; j < gs; j += 32) f(x[j]);
  });
  if (lane == 0) {
    scale[g * out + r] = p.scale;
    zero[g * out + r] = p.zero;
  }
}

__global__ void __launch_bounds__(kRowsPerCta * 32) gptq_block_kernel(GptqBlock a) {
  extern __shared__ float hs[];  // [nb, nb]: H⁻¹ factor rows/cols of this batch
  const int64_t nb = a.nb, i1 = a.i1, in = a.in;
  for (int64_t idx = threadIdx.x; idx < nb * nb; idx += blockDim.x)
    hs[idx] = a.hinv[(i1 + idx / nb) * in + i1 + idx % nb];
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const int64_t r = int64_t(blockIdx.x) * kRowsPerCta + (threadIdx.x >> 5);
  if (r >= a.out) return;  // whole warps leave together; no barrier follows
  float* wr = a.w + r * in;
  float v[kSlots];
#pragma unroll
  for (int s = 0; s < kSlots; ++s) {
    const int64_t j = lane + 32 * s;
    v[s] = j < nb ? wr[i1 + j] : 0.0f;
  }
  // A group that began in an earlier batch (groups wider than a batch): its parameters as written then.
  GP cur{1.0f, 0};
  if (a.grouped_dynamic && i1 % a.gs != 0) {
    const int64_t gi = i1 / a.gs;
    cur = GP{a.scale[gi * a.out + r], a.zero[gi * a.out + r]};
  }
  double loss = 0.0;
  for (int64_t p = 0; p < nb; ++p) {
    const int64_t col = i1 + p;  // processing position
    if (a.grouped_dynamic && col % a.gs == 0) {
      // The group [col, col + gs): its columns inside the batch are in registers (with this batch's
      // feedback so far); columns past the batch (only when the group starts the batch) in global memory,
      // already carrying every earlier batch's feedback.
      const int64_t g_end = col + a.gs;
      const GP g = warp_find_params(a.q, [&](auto&& f) {
#pragma unroll
        for (int s = 0; s < kSlots; ++s) {
          const int64_t j = lane + 32 * s;
          if (j >= p && j < nb && i1 + j < g_end) f(v[s]);
        }
        for (int64_t c = i1 + nb + lane; c < g_end; c += 32) f(wr[c]);
      });
      cur = g;
      if (lane == 0) {
        const int64_t gi = col / a.gs;
        a.scale[gi * a.out + r] = g.scale;
        a.zero[gi * a.out + r] = g.zero;
      }
    }
    GP gp = cur;
    if (!a.grouped_dynamic) {
      const int64_t gi = int64_t(a.perm[col]) / a.gs;
      gp = GP{a.fixed_scale[gi * a.out + r], a.fixed_zero[gi * a.out + r]};
    }
    // Column p's current value, from the lane that holds it.
    float mine = 0.0f;
#pragma unroll
    for (int s = 0; s < kSlots; ++s)
      if (s == int(p >> 5)) mine = v[s];
    const float wv = __shfl_sync(0xffffffffu, mine, int(p & 31));
    const int32_t code = quantize_dev(wv, gp, a.q.maxq);
    const float qv = dequantize_dev(code, gp);
    const float d = hs[p * nb + p];
    const float e = (wv - qv) / d;
    loss += double((wv - qv) * (wv - qv) / (d * d)) / 2.0;
    if (lane == 0) {
      a.codes[r * in + a.perm[col]] = uint8_t(code);
      a.err[r * nb + p] = e;
    }
    const float* hrow = hs + p * nb;
#pragma unroll
    for (int s = 0; s < kSlots; ++s) {
      const int64_t j = lane + 32 * s;
      if (j > p && j < nb) v[s] -= e * hrow[j];
    }
  }
  if (lane == 0) a.loss[r] += loss;
}

__global__ void finalize_scales_kernel(float* scale, int64_t n, int32_t* bad) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float f = finalize_scale_dev(scale[i]);
    if (!isfinite(f)) *bad = 1;
    scale[i] = f;
  }
}

__global__ void dequantize_kernel(const uint8_t* codes, const float* scale, const int32_t* zero, const int32_t* g_idx,
                                  int64_t out, int64_t in, float* w) {
  const int64_t total = out * in;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / in, c = i % in, g = g_idx[c];
    w[i] = dequantize_dev(codes[i], GP{scale[g * out + r], zero[g * out + r]});
  }
}

// One warp per (row, group): find the parameters, then quantize the group's values.
__global__ void rtn_kernel(const float* w, int64_t out, int64_t in, int64_t gs, QuantSpec q, bool finalize,
                           uint8_t* codes, float* scale, int32_t* zero, float* deq) {
  const int64_t ng = in / gs;
  const int64_t task = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  if (task >= out * ng) return;
  const int64_t r = task / ng, g = task % ng;
  const float* x = w + r * in + g * gs;
  const GP p = warp_find_params(q, [&](auto&& f) {
    for (int64_t j = lane; j < gs; j += 32) f(x[j]);
  });
  // Codes from the scale as found; the stored (and dequantizing) scale fp16-rounded when finalizing.
  const GP stored{finalize ? finalize_scale_dev(p.scale) : p.scale, p.zero};
  for (int64_t j = lane; j < gs; j += 32) {
    const int32_t code = quantize_dev(x[j], p, q.maxq);
    if (codes) codes[r * in + g * gs + j] = uint8_t(code);
    if (deq) deq[r * in + g * gs + j] = dequantize_dev(code, stored);
  }
  if (lane == 0) {
    if (scale) scale[g * out + r] = stored.scale;
    if (zero) zero[g * out + r] = p.zero;
  }
}

unsigned warps_grid(int64_t warps) { return grid_for(warps * 32, kThreads, int64_t(1) << 31); }

}  // namespace

void permute_hessian(const double* h, const int32_t* perm, const uint8_t* dead, int64_t n, double f, double add,
                     double* dst, cudaStream_t s) {
  permute_hessian_kernel<<<grid_for(n * n, kThreads), kThreads, 0, s>>>(h, perm, dead, n, f, add, dst);
  QL_CUDA_LAUNCHED();
}
void reversed_lower_to_upper_f32(const double* linv, int64_t n, float* hinv, int32_t* bad, cudaStream_t s) {
  reversed_lower_to_upper_kernel<<<grid_for(n * n, kThreads), kThreads, 0, s>>>(linv, n, hinv, bad);
  QL_CUDA_LAUNCHED();
}
void identity_slab(double* slab, int64_t rows, int64_t cols, cudaStream_t s) {
  identity_slab_kernel<<<grid_for(rows * cols, kThreads), kThreads, 0, s>>>(slab, rows, cols);
  QL_CUDA_LAUNCHED();
}
void scatter_inverse_slab(const double* slab, int64_t n, int64_t j0, int64_t cols, float* hinv, int32_t* bad,
                          cudaStream_t s) {
  scatter_inverse_slab_kernel<<<grid_for((n - j0) * cols, kThreads), kThreads, 0, s>>>(slab, n, j0, cols, hinv, bad);
  QL_CUDA_LAUNCHED();
}
void permute_columns(const float* w, const int32_t* perm, const uint8_t* dead, int64_t out, int64_t in, float* dst,
                     cudaStream_t s) {
  permute_columns_kernel<<<grid_for(out * in, kThreads), kThreads, 0, s>>>(w, perm, dead, out, in, dst);
  QL_CUDA_LAUNCHED();
}
void group_params(const float* w, int64_t out, int64_t in, int64_t gs, const QuantSpec& q, float* scale, int32_t* zero,
                  cudaStream_t s) {
  QL_CU_ASSERT(gs > 0 && in % gs == 0);
  group_params_kernel<<<warps_grid(out * (in / gs)), kThreads, 0, s>>>(w, out, in, gs, q, scale, zero);
  QL_CUDA_LAUNCHED();
}
void gptq_block(const GptqBlock& a, cudaStream_t s) {
  QL_CU_ASSERT(a.nb >= 1 && a.nb <= 32 * kSlots && a.i1 + a.nb <= a.in);
  const size_t smem = size_t(a.nb * a.nb) * sizeof(float);
  static bool configured = false;  // raise the dynamic shared-memory limit once (64 KiB for 128 columns)
  if (!configured) {
    QL_CUDA(cudaFuncSetAttribute(gptq_block_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 int(32 * kSlots * 32 * kSlots * sizeof(float))));
    configured = true;
  }
  const unsigned grid = unsigned((a.out + kRowsPerCta - 1) / kRowsPerCta);
  gptq_block_kernel<<<grid, kRowsPerCta * 32, smem, s>>>(a);
  QL_CUDA_LAUNCHED();
}
void finalize_scales(float* scale, int64_t n, int32_t* bad, cudaStream_t s) {
  finalize_scales_kernel<<<grid_for(n, kThreads), kThreads, 0, s>>>(scale, n, bad);
  QL_CUDA_LAUNCHED();
}
void dequantize(const uint8_t* codes, const float* scale, const int32_t* zero, const int32_t* g_idx, int64_t out,
                int64_t in, float* w, cudaStream_t s) {
  dequantize_kernel<<<grid_for(out * in, kThreads), kThreads, 0, s>>>(codes, scale, zero, g_idx, out, in, w);
  QL_CUDA_LAUNCHED();
}
void rtn(const float* w, int64_t out, int64_t in, int64_t gs, const QuantSpec& q, bool finalize, uint8_t* codes,
         float* scale, int32_t* zero, float* deq, cudaStream_t s) {
  QL_CU_ASSERT(gs > 0 && in % gs == 0);
  rtn_kernel<<<warps_grid(out * (in / gs)), kThreads, 0, s>>>(w, out, in, gs, q, finalize, codes, scale, zero, deq);
  QL_CUDA_LAUNCHED();
}

}  // namespace quantllm::cuda::k
