// Element-wise and reduction kernels of the decoder block on the GPU (declared in kernels.h). Each
// mirrors a loop of the CPU ops (runtime/cpu/ops.cpp); see kernels.h for the arithmetic contract.
#include "runtime/cuda/device_util.cuh"

#include <cmath>

namespace quantllm::cuda::k {

namespace {

constexpr int kThreads = 256;

__global__ void rms_norm_kernel(const float* x, const float* w, float* y, int64_t d, double eps, float offset) {
  const float* xr = x + int64_t(blockIdx.x) * d;
  float* yr = y + int64_t(blockIdx.x) * d;
  double ss = 0.0;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) ss += double(xr[j]) * double(xr[j]);
  ss = block_sum(ss);
  const float inv = float(1.0 / sqrt(ss / double(d) + eps));
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) yr[j] = (offset + w[j]) * (xr[j] * inv);
}

__global__ void layer_norm_kernel(const float* x, const float* w, const float* b, float* y, int64_t d, double eps) {
  const float* xr = x + int64_t(blockIdx.x) * d;
  float* yr = y + int64_t(blockIdx.x) * d;
  double s = 0.0;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) s += double(xr[j]);
  const double mean = block_sum(s) / double(d);
  double v = 0.0;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) v += (double(xr[j]) - mean) * (double(xr[j]) - mean);
  const double var = block_sum(v) / double(d);
  const float inv = float(1.0 / sqrt(var + eps));
  const float m = float(mean);
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) yr[j] = (xr[j] - m) * inv * w[j] + b[j];
}

__global__ void add_bias_kernel(float* y, const float* b, int64_t rows, int64_t n) {
  const int64_t total = rows * n;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x)
    y[i] += b[i % n];
}

__global__ void add_kernel(float* x, const float* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] += y[i];
}

__global__ void rope_kernel(float* x, const float* cs, const float* sn, int64_t rows, int64_t ld, int64_t seq_len,
                            int64_t n_heads, int64_t hd, int64_t rot) {
  const int64_t half = rot / 2, total = rows * n_heads * half;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t f = i % half, h = (i / half) % n_heads, r = i / (half * n_heads);
    const int64_t t = r % seq_len;
    float* v = x + r * ld + h * hd;
    const float c = cs[t * half + f], s = sn[t * half + f];
    const float a = v[f], b = v[f + half];
    v[f] = a * c - b * s;
    v[f + half] = b * c + a * s;
  }
}

__global__ void causal_softmax_kernel(float* scores, int64_t T, int64_t window, float cap) {
  const int64_t row = blockIdx.x;  // mat * T + query position
  const int64_t pos = row % T;
  float* r = scores + row * T;
  const int64_t lo = window > 0 ? (pos - window + 1 > 0 ? pos - window + 1 : 0) : 0;
  if (cap > 0) {  // soft-capping (Gemma 2), as the CPU's softcap_scores
    for (int64_t p = lo + threadIdx.x; p <= pos; p += blockDim.x) r[p] = cap * tanhf(r[p] / cap);
    __syncthreads();
  }
  float mx = -INFINITY;
  for (int64_t p = lo + threadIdx.x; p <= pos; p += blockDim.x) mx = fmaxf(mx, r[p]);
  mx = block_max(mx);
  double sum = 0.0;
  for (int64_t p = lo + threadIdx.x; p <= pos; p += blockDim.x) sum += double(expf(r[p] - mx));
  sum = block_sum(sum);
  const float inv = float(1.0 / sum);
  for (int64_t p = threadIdx.x; p < T; p += blockDim.x) r[p] = (p >= lo && p <= pos) ? expf(r[p] - mx) * inv : 0.0f;
}

__global__ void silu_mul_kernel(float* up, const float* gate, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    up[i] *= g / (1.0f + expf(-g));
  }
}
__global__ void gelu_tanh_mul_kernel(float* up, const float* gate, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    up[i] *= 0.5f * g * (1.0f + tanhf(0.7978845608028654f * (g + 0.044715f * g * g * g)));
  }
}
__global__ void softcap_kernel(float* x, int64_t n, float cap) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] = cap * tanhf(x[i] / cap);
}
__global__ void gather_rows_kernel(const float* x, const int32_t* rows, int64_t n, int64_t cols, float* out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n * cols; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = x[int64_t(rows[i / cols]) * cols + i % cols];
}
__global__ void scatter_add_rows_kernel(const float* y, const int32_t* rows, const float* w, int64_t n, int64_t cols,
                                        float* out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n * cols; i += int64_t(gridDim.x) * blockDim.x)
    out[int64_t(rows[i / cols]) * cols + i % cols] += w[i / cols] * y[i];
}
__global__ void relu_kernel(float* x, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] = fmaxf(x[i], 0.0f);
}
__global__ void gelu_kernel(float* x, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float u = x[i];
    x[i] = 0.5f * u * (1.0f + erff(u * 0.70710678118654752f));
  }
}

__global__ void token_nll_kernel(const float* logits, const int32_t* target, int64_t vocab, double* nll) {
  const float* l = logits + int64_t(blockIdx.x) * vocab;
  float mxf = -INFINITY;
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) mxf = fmaxf(mxf, l[j]);
  const double mx = double(block_max(mxf));
  double sum = 0.0;
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) sum += exp(double(l[j]) - mx);
  sum = block_sum(sum);
  if (threadIdx.x == 0) nll[blockIdx.x] = log(sum) + mx - double(l[target[blockIdx.x]]);
}

__global__ void accumulate_f64_kernel(double* acc, const float* x, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    acc[i] += double(x[i]);
}

__global__ void accumulate_f64_lower_tiles_kernel(double* acc, const float* x, int64_t n, int64_t tile) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n * n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / n, c = i - r * n;
    if (c / tile <= r / tile) acc[i] += double(x[i]);
  }
}

__global__ void mirror_lower_tiles_kernel(double* a, int64_t n, int64_t tile) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n * n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / n, c = i - r * n;
    if (c / tile > r / tile) a[i] = a[c * n + r];
  }
}

constexpr int64_t kColSlice = 64;  // rows per slice of abs_col_sum
// grid (column blocks, slices): work[slice, j] = Σ over the slice's rows of |x[r, j]| (square: x[r, j]²)
__global__ void col_slices_kernel(const float* x, int64_t rows, int64_t cols, bool square, double* work) {
  const int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (j >= cols) return;
  const int64_t r0 = int64_t(blockIdx.y) * kColSlice, r1 = min(rows, r0 + kColSlice);
  double s = 0.0;
  for (int64_t r = r0; r < r1; ++r) {
    const double v = double(x[r * cols + j]);
    s += square ? v * v : fabs(v);
  }
  work[int64_t(blockIdx.y) * cols + j] = s;
}
__global__ void abs_col_total_kernel(const double* work, int64_t slices, int64_t cols, double* col) {
  const int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (j >= cols) return;
  double s = 0.0;
  for (int64_t k = 0; k < slices; ++k) s += work[k * cols + j];
  col[j] += s;
}

__global__ void embed_rows_kernel(const float* table, const int32_t* tokens, int64_t rows, int64_t e,
                                  const float* positions, int64_t T, int64_t offset, float* x) {
  const int64_t total = rows * e;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / e, j = i % e;
    float v = table[int64_t(tokens[r]) * e + j];
    if (positions) v += positions[(offset + r % T) * e + j];
    x[i] = v;
  }
}

constexpr int kPartialThreads = 256;
__global__ void sq_diff_kernel(const float* a, const float* b, int64_t n, double* partial) {
  double s = 0.0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const double d = b ? double(a[i]) - double(b[i]) : double(a[i]);
    s += d * d;
  }
  s = block_sum(s);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}
__global__ void dot_kernel(const float* a, const float* b, int64_t n, double* partial) {
  double s = 0.0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    s += double(a[i]) * double(b[i]);
  s = block_sum(s);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void scale_cols_kernel(float* x, const float* sc, int64_t rows, int64_t cols, bool divide) {
  const int64_t total = rows * cols;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const float s = sc[i % cols];
    x[i] = divide ? x[i] / s : x[i] * s;
  }
}
__global__ void sub_kernel(const float* a, const float* b, float* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = a[i] - b[i];
}
__global__ void f32_to_bf16_kernel(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    uint32_t u = __float_as_uint(x[i]);
    if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN stays NaN (quiet)
      y[i] = uint16_t((u >> 16) | 0x40u);
      continue;
    }
    u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
    y[i] = uint16_t(u >> 16);
  }
}
__global__ void f64_to_f32_kernel(const double* x, float* y, int64_t n, double f) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = float(f * x[i]);
}

__global__ void add_positions_kernel(float* x, const float* positions, int64_t rows, int64_t d, int64_t T, int64_t offset) {
  const int64_t total = rows * d;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x)
    x[i] += positions[(offset + (i / d) % T) * d + i % d];
}

}  // namespace

void add_positions(float* x, const float* positions, int64_t rows, int64_t d, int64_t T, int64_t offset, cudaStream_t s) {
  add_positions_kernel<<<grid_for(rows * d, kThreads), kThreads, 0, s>>>(x, positions, rows, d, T, offset);
  QL_CUDA_LAUNCHED();
}

void rms_norm(const float* x, const float* w, float* y, int64_t rows, int64_t d, double eps, float offset,
              cudaStream_t s) {
  if (rows == 0) return;
  rms_norm_kernel<<<unsigned(rows), kThreads, 0, s>>>(x, w, y, d, eps, offset);
  QL_CUDA_LAUNCHED();
}
void layer_norm(const float* x, const float* w, const float* b, float* y, int64_t rows, int64_t d, double eps,
                cudaStream_t s) {
  if (rows == 0) return;
  layer_norm_kernel<<<unsigned(rows), kThreads, 0, s>>>(x, w, b, y, d, eps);
  QL_CUDA_LAUNCHED();
}
void add_bias(float* y, const float* b, int64_t rows, int64_t n, cudaStream_t s) {
  add_bias_kernel<<<grid_for(rows * n, kThreads), kThreads, 0, s>>>(y, b, rows, n);
  QL_CUDA_LAUNCHED();
}
void add_inplace(float* x, const float* y, int64_t n, cudaStream_t s) {
  add_kernel<<<grid_for(n, kThreads), kThreads, 0, s>>>(x, y, n);
  QL_CUDA_LAUNCHED();
}
void rope(float* x, const float* cos_t, const float* sin_t, int64_t rows, int64_t ld, int64_t seq_len, int64_t n_heads,
          int64_t head_dim, int64_t rot, cudaStream_t s) {
  rope_kernel<<<grid_for(rows * n_heads * (rot / 2), kThreads), kThreads, 0, s>>>(x, cos_t, sin_t, rows, ld, seq_len,
                                                                                n_heads, head_dim, rot);
  QL_CUDA_LAUNCHED();
}
void causal_softmax(float* scores, int64_t n_mats, int64_t T, int64_t window, float cap, cudaStream_t s) {
  if (n_mats * T == 0) return;
  QL_CU_ASSERT(n_mats * T <= INT32_MAX);
  causal_softmax_kernel<<<unsigned(n_mats * T), T >= 1024 ? 512 : 128, 0, s>>>(scores, T, window, cap);
  QL_CUDA_LAUNCHED();
}
void silu_mul(float* up, const float* gate, int64_t n, cudaStream_t s) {
  silu_mul_kernel<<<grid_for(n, kThreads), kThreads, 0, s>>>(up, gate, n);
  QL_CUDA_LAUNCHED();
}
void gelu_tanh_mul(float* up, const float* gate, int64_t n, cudaStream_t s) {
  gelu_tanh_mul_kernel<<<grid_for(n, kThreads), kThreads, 0, s>>>(up, gate, n);
  QL_CUDA_LAUNCHED();
}
void softcap(float* x, int64_t n, float cap, cudaStream_t s) {
  softcap_kernel<<<grid_for(n, kThreads), kThreads, 0, s>>>(x, n, cap);
  QL_CUDA_LAUNCHED();
}
void gather_rows(const float* x, const int32_t* rows, int64_t n, int64_t cols, float* out, cudaStream_t s) {
  gather_rows_kernel<<<grid_for(n * cols, kThreads), kThreads, 0, s>>>(x, rows, n, cols, out);
  QL_CUDA_LAUNCHED();
}
void scatter_add_rows(const float* y, const int32_t* rows, const float* w, int64_t n, int64_t cols, float* out,
                      cudaStream_t s) {
  scatter_add_rows_kernel<<<grid_for(n * cols, kThreads), kThreads, 0, s>>>(y, rows, w, n, cols, out);
  QL_CUDA_LAUNCHED();
}
void relu(float* x, int64_t n, cudaStream_t s) {
  relu_kernel<<<grid_for(n, kThreads), kThreads, 0, s>>>(x, n);
  QL_CUDA_LAUNCHED();
}
void gelu(float* x, int64_t n, cudaStream_t s) {
  gelu_kernel<<<grid_for(n, kThreads), kThreads, 0, s>>>(x, n);
  QL_CUDA_LAUNCHED();
}
void token_nll(const float* logits, const int32_t* target, int64_t rows, int64_t vocab, double* nll, cudaStream_t s) {
  if (rows == 0) return;
  token_nll_kernel<<<unsigned(rows), kThreads, 0, s>>>(logits, target, vocab, nll);
  QL_CUDA_LAUNCHED();
}
void accumulate_f64(double* acc, const float* x, int64_t n, cudaStream_t s) {
  accumulate_f64_kernel<<<grid_for(n, kThreads), kThreads, 0, s>>>(acc, x, n);
  QL_CUDA_LAUNCHED();
}
void accumulate_f64_lower_tiles(double* acc, const float* x, int64_t n, int64_t tile, cudaStream_t s) {
  accumulate_f64_lower_tiles_kernel<<<grid_for(n * n, kThreads), kThreads, 0, s>>>(acc, x, n, tile);
  QL_CUDA_LAUNCHED();
}
void mirror_lower_tiles(double* a, int64_t n, int64_t tile, cudaStream_t s) {
  mirror_lower_tiles_kernel<<<grid_for(n * n, kThreads), kThreads, 0, s>>>(a, n, tile);
  QL_CUDA_LAUNCHED();
}
int64_t abs_col_sum_work(int64_t rows, int64_t cols) { return ((rows + kColSlice - 1) / kColSlice) * cols; }
namespace {
void col_sum(const float* x, int64_t rows, int64_t cols, bool square, double* col, double* work, cudaStream_t s) {
  if (rows == 0) return;
  const int64_t slices = (rows + kColSlice - 1) / kColSlice;
  QL_CU_ASSERT(slices <= 65535);
  col_slices_kernel<<<dim3(grid_for(cols, 128), unsigned(slices)), 128, 0, s>>>(x, rows, cols, square, work);
  QL_CUDA_LAUNCHED();
  abs_col_total_kernel<<<grid_for(cols, 128), 128, 0, s>>>(work, slices, cols, col);
  QL_CUDA_LAUNCHED();
}
}  // namespace
void abs_col_sum(const float* x, int64_t rows, int64_t cols, double* col, double* work, cudaStream_t s) {
  col_sum(x, rows, cols, false, col, work, s);
}
void sq_col_sum(const float* x, int64_t rows, int64_t cols, double* col, double* work, cudaStream_t s) {
  col_sum(x, rows, cols, true, col, work, s);
}
void embed_rows(const float* table, const int32_t* tokens, int64_t rows, int64_t e, const float* positions,
                int64_t T, int64_t offset, float* x, cudaStream_t s) {
  embed_rows_kernel<<<grid_for(rows * e, kThreads), kThreads, 0, s>>>(table, tokens, rows, e, positions, T, offset, x);
  QL_CUDA_LAUNCHED();
}
int64_t sq_diff_partials(const float* a, const float* b, int64_t n, double* partial, int64_t max_partials,
                         cudaStream_t s) {
  const unsigned g = grid_for(n, kPartialThreads, max_partials);
  sq_diff_kernel<<<g, kPartialThreads, 0, s>>>(a, b, n, partial);
  QL_CUDA_LAUNCHED();
  return g;
}
int64_t dot_partials(const float* a, const float* b, int64_t n, double* partial, int64_t max_partials, cudaStream_t s) {
  const unsigned g = grid_for(n, kPartialThreads, max_partials);
  dot_kernel<<<g, kPartialThreads, 0, s>>>(a, b, n, partial);
  QL_CUDA_LAUNCHED();
  return g;
}
void scale_cols(float* x, const float* sc, int64_t rows, int64_t cols, bool divide, cudaStream_t s) {
  scale_cols_kernel<<<grid_for(rows * cols, kThreads), kThreads, 0, s>>>(x, sc, rows, cols, divide);
  QL_CUDA_LAUNCHED();
}
void sub(const float* a, const float* b, float* out, int64_t n, cudaStream_t s) {
  sub_kernel<<<grid_for(n, kThreads), kThreads, 0, s>>>(a, b, out, n);
  QL_CUDA_LAUNCHED();
}
void f32_to_bf16(const float* x, uint16_t* y, int64_t n, cudaStream_t s) {
  f32_to_bf16_kernel<<<grid_for(n, kThreads), kThreads, 0, s>>>(x, y, n);
  QL_CUDA_LAUNCHED();
}
void f64_to_f32(const double* x, float* y, int64_t n, double factor, cudaStream_t s) {
  f64_to_f32_kernel<<<grid_for(n, kThreads), kThreads, 0, s>>>(x, y, n, factor);
  QL_CUDA_LAUNCHED();
}

}  // namespace quantllm::cuda::k
