// QMatrix: a weight matrix kept in its packed format, and the matrix products on it.
//
// A QMatrix points into the memory-mapped file (GGUF blocks, safetensors F16/BF16/F32) or, for
// GPTQ / AWQ checkpoints, owns a repacked copy of the groups (GQ4, kernels.h) of about the size of
// the checkpoint's tensors (the mapped originals are released after repacking). Nothing is widened
// to fp32 as a whole: qmatmul quantizes the activations (kernels.h) and runs the dot-product
// kernels of the active instruction-set level over the packed rows.
//
//   qmatmul: x [rows, in] → y [rows, out] = x · Wᵀ (+ bias)
//     rows ≤ 4 (generation): one pass over W, every weight row against all rows of x (integer
//     formats: on 8-bit activations); one row: each thread's weight rows in one Kernels::gemv call
//     (dot row by row for the formats without one);
//     more rows (prompts, perplexity windows), at levels with fp32 tiles (AVX-512): W in groups of
//     64 rows and 512 columns widened exactly to fp32 in transposed 16-row panels, multiplied with
//     the fp32 activations 12 tokens at a time (Kernels::float_tile);
//     more rows elsewhere, and for the low-bit types (no panels: kernels_lowbit.h) at every level:
//     integer formats decoded row by row into 16-row panels and multiplied four tokens at a time on
//     8-bit activations; float formats widened and multiplied by sgemm.
//   qmatmul_many: several matrices on one input (q/k/v; gate/up): in generation the activations are
//     quantized once and all matrices' rows run in one threaded pass (one hand-off between threads
//     instead of one per matrix), each output computed exactly as qmatmul computes it.
//   Threads split the output columns (rows of W); every output is computed by the same code whatever
//   the thread count, so results do not depend on it.
#pragma once

#include "model/config.h"
#include "model/weights.h"
#include "runtime/cpu/kernels.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace quantllm::cpu {

struct QMatrix {
  GgmlType format = GgmlType::F32;
  int64_t rows = 0, cols = 0;  // [out, in]
  const uint8_t* data = nullptr;
  size_t row_bytes = 0;
  int group_size = 0;  // GQ4
  // Output row r is stored as row row_map[r] (GGUF's interleaved q/k rows); empty: identity.
  std::vector<int32_t> row_map;
  // GQ4 with act-order: packed column j holds input column col_perm[j]; empty: identity.
  std::vector<int32_t> col_perm;
  std::vector<uint8_t> owned;               // the repacked rows (GQ4), or empty
  std::shared_ptr<const void> keep_alive;   // what `data` points into
  std::string name;                         // for messages

  const uint8_t* row(int64_t r) const {
    return data + size_t(row_map.empty() ? r : row_map[size_t(r)]) * row_bytes;
  }
  RowParams params() const;
  size_t bytes() const { return size_t(rows) * row_bytes; }
};

// Builds the packed matrix of weight `name` from what the source stores, or returns nullptr when the
// source has no packed form the kernels read (the caller then loads fp32). `why` receives the reason
// for a nullptr (a GGUF type without kernels, GPTQ with more than 4 bits, uneven act-order groups).
std::shared_ptr<const QMatrix> make_qmatrix(const WeightSource& src, const std::string& name,
                                            std::shared_ptr<const void> keep_alive, std::string* why = nullptr);

// The type of a ggml type id as the kernels read it; nullopt when they do not (kernels.h kKernelTypes).
std::optional<GgmlType> kernel_type(uint32_t ggml_type);

// y [rows, w.rows] = x [rows, w.cols] · Wᵀ (+ bias [w.rows] when not null).
void qmatmul(const QMatrix& w, const float* x, int64_t rows, float* y, const float* bias);
// One product of qmatmul_many: y [rows, w->rows] = x · Wᵀ (+ bias).
struct QMatmulJob {
  const QMatrix* w = nullptr;
  float* y = nullptr;
  const float* bias = nullptr;
};
// Every job's product on the same x [rows, in] (all jobs have in columns); results equal qmatmul's.
void qmatmul_many(std::span<const QMatmulJob> jobs, const float* x, int64_t rows);
// Row r of W as fp32 (embedding lookups): out[w.cols].
void qmatrix_row(const QMatrix& w, int64_t r, float* out);

}  // namespace quantllm::cpu
