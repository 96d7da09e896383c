// Launchers of the CUDA backend's own kernels (the matrix products go to cuBLAS, context.h). Plain
// declarations, so host code compiled by g++ can call them; the kernels live in kernels.cu,
// gptq_kernels.cu and awq_kernels.cu.
//
// Arithmetic mirrors the CPU code line by line (same operation order, IEEE division, no contraction
// into FMA: the .cu files build with --fmad=false), so the element-wise parts agree with the CPU
// bit for bit and only the matrix products' summation order differs. Shapes are row-major.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace quantllm::cuda {

// The parts of QuantParams the kernels need (quant/group_quant.h).
struct QuantSpec {
  int bits = 4;
  int maxq = 15;
  bool sym = false;
  bool mse = false;
  bool awq_rule = false;          // RangeRule::kAwq
  bool round_scale_first = false; // ScaleRounding::kBeforeCodes
};

namespace k {

// --- the decoder block ---
// y[r] = (offset + w) ⊙ x[r] / rms(x[r]) (sum of squares in double); x, y: [rows, d]
void rms_norm(const float* x, const float* w, float* y, int64_t rows, int64_t d, double eps, float offset,
              cudaStream_t s);
// y[r] = (x[r] − mean) / sqrt(var + eps) ⊙ w + b (mean and variance in double)
void layer_norm(const float* x, const float* w, const float* b, float* y, int64_t rows, int64_t d, double eps,
                cudaStream_t s);
// y[r, :] += b for every row; y: [rows, n], b: [n]
void add_bias(float* y, const float* b, int64_t rows, int64_t n, cudaStream_t s);
// x += y, n elements
void add_inplace(float* x, const float* y, int64_t n, cudaStream_t s);
// MoE: out[i] = x[rows[i]]; out[rows[i]] += w[i] · y[i] (rows distinct); rows of `cols` floats
void gather_rows(const float* x, const int32_t* rows, int64_t n, int64_t cols, float* out, cudaStream_t s);
void scatter_add_rows(const float* y, const int32_t* rows, const float* w, int64_t n, int64_t cols, float* out,
                      cudaStream_t s);
// Rotate-half RoPE on x: [rows, ld] holding n_heads heads of head_dim from column 0, over the first
// rot dims of each head (Phi's partial rotary; else rot = head_dim); row r is at position r % seq_len;
// cos/sin tables: [seq_len, rot / 2].
void rope(float* x, const float* cos_t, const float* sin_t, int64_t rows, int64_t ld, int64_t seq_len, int64_t n_heads,
          int64_t head_dim, int64_t rot, cudaStream_t s);
// Causal softmax in place on scores [n_mats, T, T] (query rows, key columns): keys past the query
// position (and, with a sliding window, before pos − window + 1) get probability 0; cap > 0 soft-caps the
// scores first (cap · tanh(s / cap)).
void causal_softmax(float* scores, int64_t n_mats, int64_t T, int64_t window, float cap, cudaStream_t s);
// up ← silu(gate) ⊙ up, up ← gelu_tanh(gate) ⊙ up; relu and exact-erf gelu in place
void silu_mul(float* up, const float* gate, int64_t n, cudaStream_t s);
void gelu_tanh_mul(float* up, const float* gate, int64_t n, cudaStream_t s);
void relu(float* x, int64_t n, cudaStream_t s);
void softcap(float* x, int64_t n, float cap, cudaStream_t s);  // x ← cap · tanh(x / cap) (Gemma 2's logits)
void gelu(float* x, int64_t n, cudaStream_t s);

// nll[t] = −log softmax(logits[t])[target[t]] in double (runtime/model_runner.cpp token_nll); logits: [rows, vocab]
void token_nll(const float* logits, const int32_t* target, int64_t rows, int64_t vocab, double* nll, cudaStream_t s);

// --- reductions and small helpers ---
void accumulate_f64(double* acc, const float* x, int64_t n, cudaStream_t s);  // acc += x
// acc += x over the tiles on and below the diagonal of tile × tile tiles of [n, n] matrices: elements
// (r, c) with c / tile ≤ r / tile (the part a tiled symmetric product writes).
void accumulate_f64_lower_tiles(double* acc, const float* x, int64_t n, int64_t tile, cudaStream_t s);
// The tiles above the diagonal copied from their mirror images: a[r, c] = a[c, r] where c / tile > r / tile.
void mirror_lower_tiles(double* a, int64_t n, int64_t tile, cudaStream_t s);
// col[j] += Σ_r |x[r, j]| in double; x: [rows, cols]. Rows are summed in fixed slices, the slices'
// sums added in order (deterministic); work: at least abs_col_sum_work(rows, cols) doubles.
void abs_col_sum(const float* x, int64_t rows, int64_t cols, double* col, double* work, cudaStream_t s);
// col[j] += Σ_r x[r, j]² in double, as abs_col_sum (the importance matrix)
void sq_col_sum(const float* x, int64_t rows, int64_t cols, double* col, double* work, cudaStream_t s);
int64_t abs_col_sum_work(int64_t rows, int64_t cols);
// x[r] = table[tokens[r]] (+ positions[offset + r % T] when positions is not null); table: [vocab, e]
void embed_rows(const float* table, const int32_t* tokens, int64_t rows, int64_t e, const float* positions,
                int64_t T, int64_t offset, float* x, cudaStream_t s);
// x[r] += positions[offset + r % T]; x: [rows, d]
void add_positions(float* x, const float* positions, int64_t rows, int64_t d, int64_t T, int64_t offset, cudaStream_t s);
// partial[b] = Σ (a − b)² (or Σ a² when b is null) over block b's slice; returns the number of partials
// written (≤ max_partials); sum them in order on the host.
int64_t sq_diff_partials(const float* a, const float* b, int64_t n, double* partial, int64_t max_partials,
                         cudaStream_t s);
// partial sums of Σ a ⊙ b, as above
int64_t dot_partials(const float* a, const float* b, int64_t n, double* partial, int64_t max_partials, cudaStream_t s);
// x[r, c] *= s[c] (or /= s[c]); x: [rows, cols]
void scale_cols(float* x, const float* sc, int64_t rows, int64_t cols, bool divide, cudaStream_t s);
void sub(const float* a, const float* b, float* out, int64_t n, cudaStream_t s);  // out = a − b
void f64_to_f32(const double* x, float* y, int64_t n, double factor, cudaStream_t s);
void f32_to_bf16(const float* x, uint16_t* y, int64_t n, cudaStream_t s);  // round to nearest even  // y = float(factor · x)

// --- GPTQ (gptq_kernels.cu) ---
// dst[a, b] = h[perm[a], perm[b]] · f, with diagonal entries of dead inputs set to 1 and `add` on the
// diagonal; h, dst: [n, n] double. dead: [n] by original index.
void permute_hessian(const double* h, const int32_t* perm, const uint8_t* dead, int64_t n, double f, double add,
                     double* dst, cudaStream_t s);
// hinv[a, b] = float(linv[n−1−b, n−1−a]) for b ≥ a, 0 below the diagonal, where linv is a lower
// triangular matrix stored column-major (as cuSOLVER leaves it); bad[0] = 1 if a kept entry is not finite.
void reversed_lower_to_upper_f32(const double* linv, int64_t n, float* hinv, int32_t* bad, cudaStream_t s);
// The same, a slab of columns at a time: slab holds columns [j0, j0 + cols) of linv from row j0 on
// (column-major, leading dimension n − j0); only its entries on and below the diagonal are kept (hinv's
// entries below its diagonal are left as they are). identity_slab fills such a slab with I's entries.
void identity_slab(double* slab, int64_t rows, int64_t cols, cudaStream_t s);
void scatter_inverse_slab(const double* slab, int64_t n, int64_t j0, int64_t cols, float* hinv, int32_t* bad,
                          cudaStream_t s);
// dst[r, p] = dead[perm[p]] ? 0 : w[r, perm[p]]; w, dst: [out, in]
void permute_columns(const float* w, const int32_t* perm, const uint8_t* dead, int64_t out, int64_t in, float* dst,
                     cudaStream_t s);
// Parameters of every (row, group) of w: [out, in] with groups of gs columns: scale/zero [ng, out].
void group_params(const float* w, int64_t out, int64_t in, int64_t gs, const QuantSpec& q, float* scale,
                  int32_t* zero, cudaStream_t s);

struct GptqBlock {
  float* w;                 // [out, in], columns in processing order; updated in place
  const float* hinv;        // [in, in] upper Cholesky factor of H⁻¹ (processing order)
  int64_t out, in;
  int64_t i1, nb;           // this lazy batch: processing columns [i1, i1 + nb), nb ≤ 128
  int64_t gs;               // group size (in when one group per row)
  bool grouped_dynamic;     // parameters found at each group start inside the loop
  const int32_t* perm;      // [in] processing position → original column
  const float* fixed_scale; // [ng, out] when !grouped_dynamic: parameters by original group
  const int32_t* fixed_zero;
  QuantSpec q;
  uint8_t* codes;           // [out, in], original column order
  float* scale;             // [ng, out] (fp32, as used by the loop)
  int32_t* zero;
  float* err;               // [out, nb]: the batch's scaled errors, for the lazy update
  double* loss;             // [out], += this batch's loss of each row
};
void gptq_block(const GptqBlock& a, cudaStream_t s);

// --- quantize / dequantize ---
// Checkpoint scales: fp16-rounded (a zero result becomes the smallest fp16 subnormal); bad[0] = 1 on overflow.
void finalize_scales(float* scale, int64_t n, int32_t* bad, cudaStream_t s);
// w[r, c] = scale[g_idx[c], r] · (codes[r, c] − zero[g_idx[c], r])
void dequantize(const uint8_t* codes, const float* scale, const int32_t* zero, const int32_t* g_idx, int64_t out,
                int64_t in, float* w, cudaStream_t s);
// Round to nearest per (row, group of gs contiguous columns): codes (may be null), scales (fp32 as found,
// finalized when `finalize`), zeros, and the dequantized weights (may be null).
void rtn(const float* w, int64_t out, int64_t in, int64_t gs, const QuantSpec& q, bool finalize, uint8_t* codes,
         float* scale, int32_t* zero, float* deq, cudaStream_t s);

// --- AWQ (awq_kernels.cu) ---
// dst = Q(w ⊙ s) ⊘ s column-wise (fp32 scales, the searches' pseudo-quantization); w, dst: [out, in]
void awq_pseudo_quantize_scaled(const float* w, const float* sc, int64_t out, int64_t in, int64_t gs,
                                const QuantSpec& q, float* dst, cudaStream_t s);
// For clip candidate k (shrink 1 − (k − 1)/n_grid, k ≥ 1): max_val[r, g] = absmax · shrink and
// delta = Q(clamp(w, ±max_val)) − w per (row, group); w, delta: [out, in], max_val: [out, ng]
void awq_clip_candidate(const float* w, int64_t out, int64_t in, int64_t gs, const QuantSpec& q, int k, int n_grid,
                        float* delta, float* max_val, cudaStream_t s);
// err[g, r] = Σ_t y[g, t, r]² / T over y: [ng_batch, T, out]; err rows g0 … g0 + ng_batch of [ng, out]
void awq_clip_error(const float* y, int64_t ng_batch, int64_t T, int64_t out, int64_t g0, double* err, cudaStream_t s);
// best[r, g] ← max_val[r, g] and min_err[r, g] ← e where e = err[g, r] < min_err[r, g]
void awq_clip_select(const double* err, const float* max_val, int64_t out, int64_t ng, double* min_err, float* best,
                     cudaStream_t s);
// dst[r, c] = |w[r, c]| / (max |w| over (r, group of c) + 1e−6): AWQ's normalized weight magnitude
void awq_weight_norm(const float* w, int64_t out, int64_t in, int64_t gs, float* dst, cudaStream_t s);
// w[r, :] /= sc[r] (rows); w: [rows, cols]
void scale_rows(float* w, const float* sc, int64_t rows, int64_t cols, cudaStream_t s);
// w[r, c] = clamp(w[r, c], ±max_val[r, c / gs])
void awq_apply_clip(float* w, const float* max_val, int64_t out, int64_t in, int64_t gs, cudaStream_t s);

}  // namespace k
}  // namespace quantllm::cuda
