// GPTQ (Frantar et al. 2022, Algorithm 1 with lazy batch updates) for one linear layer, and the
// accumulator of its Hessian H = 2/n Σ xᵀx over the calibration inputs x of that layer.
//
// The algorithm follows the IST-DASLab reference (gptq.py, fasterquant): dead inputs (H[i,i] == 0)
// get H[i,i] = 1 and W[:, i] = 0; damping percdamp·mean(diag H) on the diagonal; Hinv = the upper
// Cholesky factor of H⁻¹; columns in blocks of `block_size` with the block's error pushed onto the
// later columns by one GEMM; act-order permutes the columns by descending diag(H) (stable: ties keep
// column order) and the result is permuted back; static groups find every group's parameters up front
// on the unpermuted W. g_idx[c] = (position of column c in the processing order) / group_size, or
// c / group_size with static groups — GPTQModel's convention. With group_size −1 the row parameters
// come from W before the dead inputs are zeroed, as in the reference.
//
// One deliberate difference: a group's parameters are found on its columns as they stand after the
// error feedback of every earlier column. The reference reads them from the full W, which still lacks
// the feedback of the current block's earlier columns; the two agree whenever groups start where
// blocks start and do not extend past the block (e.g. group size = block size = 128, the usual case).
// Ours does not depend on the block size, which is what makes the lazy batches a pure speed-up.
//
// Precision: H is accumulated in double (fp32 products of ≤ 256 rows summed into double), the
// Cholesky factorizations and the inverse run in double (LAPACK dpotrf/dpotri), and the column loop
// runs in fp32 like the reference. The reference accumulates H in fp32, rescaling the running mean
// at every batch.
//
// Determinism: per-channel parameters make every output row independent given Hinv, so rows are
// processed in fixed chunks of 64, each with single-threaded BLAS calls of fixed shapes, and the
// chunks spread over the thread pool; the Hessian's tiles and the Cholesky work likewise. Outputs are
// byte-identical for any thread count. (The BLAS thread count is set to 1 for the duration of these
// calls and restored by the last concurrent caller: BLAS work run meanwhile on other threads is
// single-threaded too.)
#pragma once

#include "quant/group_quant.h"

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace quantllm {

class HessianAccumulator {
 public:
  explicit HessianAccumulator(int64_t in);

  // x: [rows, in]. n_samples: how many calibration samples these rows count as in the running mean
  // (the reference counts sequences, so a batch of one 512-token window is 1); default: rows.
  // H keeps the reference's definition H = 2/n Σ xᵀx (n = total samples). The scale of H changes
  // neither GPTQ's result nor the relative objective, only the absolute `loss`.
  void add_batch(const float* x, int64_t rows, int64_t in, int64_t n_samples = -1);

  int64_t in() const { return in_; }
  int64_t n_samples() const { return n_; }
  int64_t n_rows() const { return rows_; }
  // H: [in, in], symmetric, row-major.
  std::vector<double> hessian() const;

 private:
  int64_t in_ = 0, n_ = 0, rows_ = 0;
  std::vector<double> sum_;  // Σ xᵀx, upper triangle (row-major, i ≤ j)
};

struct GPTQOptions {
  QuantParams quant;
  double damp_percent = 0.01;  // fraction of mean(diag H); raised ×10 (from 0: to 1e-3) up to 1.0 on failure
  int block_size = 128;
  bool act_order = false;
  bool static_groups = false;
  bool report_objective = true;  // compute GPTQStats::objective (costs about as much as GPTQ itself)
};

struct GPTQStats {
  double loss = 0.0;               // the reference's sum(Losses): Σ (w − q)² / (2 Hinv[i,i]²)
  double objective = 0.0;          // tr((W−Q) H (W−Q)ᵀ) / tr(W H Wᵀ) with Q the exported weights
  double damp_percent_used = 0.0;  // the damping that let the Cholesky factorizations succeed
  int64_t dead_inputs = 0;         // columns with H[i,i] == 0
  double seconds = 0.0;            // wall time of gptq_quantize
};

struct GPTQResult {
  GroupQuantized q;
  GPTQStats stats;
};

// w: [out, in] fp32; h: [in, in] symmetric (the accumulated Hessian). `name` names the layer in errors.
// Throws Error for bad options, non-finite W or H, or an H that stays indefinite after the damping schedule.
GPTQResult gptq_quantize(const Tensor& w, std::span<const double> h, const GPTQOptions& options, std::string_view name);
GPTQResult gptq_quantize(const Tensor& w, const HessianAccumulator& h, const GPTQOptions& options, std::string_view name);

// A grid GPTQ rounds onto instead of its own integer groups (the blocks of a GGUF tensor,
// quant/ggml/gptq_grid.h). Columns go in order (no act-order): at the first column of each width()-wide
// group of columns, fit() gets row `row`'s values of the group with the feedback of every earlier column
// applied, and chooses the group's parameters; round() then gives the value x at column `col` becomes
// (recording its code). A row's calls come from one thread, in column order; rows go to several threads.
class GptqGrid {
 public:
  virtual ~GptqGrid() = default;
  virtual int64_t width() const = 0;
  // Before the first column: the Hessian's diagonal (the inputs' importance), [in].
  virtual void start(std::span<const double> h_diag) = 0;
  virtual void fit(int64_t row, int64_t col0, std::span<const float> values) = 0;
  virtual float round(int64_t row, int64_t col, float x) = 0;
  // The weights the grid holds once GPTQ ran ([out, in], what the encoded result decodes to).
  virtual Tensor result() const = 0;
};

// GPTQ of w onto `grid`: damping, dead inputs, lazy batches as gptq_quantize (options.quant,
// act_order and static_groups do not apply). The stats' objective is left 0: the grid holds the result.
GPTQStats gptq_quantize_grid(const Tensor& w, std::span<const double> h, const GPTQOptions& options, GptqGrid& grid,
                             std::string_view name);

// The upper Cholesky factor U of H⁻¹ (H⁻¹ = UᵀU), row-major [n, n] with zeros below the diagonal, in
// double. Returns false if a factorization fails (H not positive definite). h is taken as given.
bool upper_cholesky_of_inverse(std::span<const double> h, int64_t n, std::vector<double>& u);

// tr((W−Wq) H (W−Wq)ᵀ) / tr(W H Wᵀ) in double; w, wq: [out, in], h: [in, in]. 0 when both traces are 0.
double relative_objective(const Tensor& w, const Tensor& wq, std::span<const double> h);

}  // namespace quantllm
