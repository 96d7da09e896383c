// GPTQ onto GGML blocks (the Hessian-aware GGUF path): a GptqGrid (quant/gptq.h) whose groups are the
// blocks of one llama.cpp type. At each block's first column GPTQ hands over the block's weights with
// every earlier column's error feedback applied; the block header (scales, mins, super-scales) is
// llama.cpp's own fit of those weights, weighted by diag(H) as llama.cpp weights by an importance
// matrix (of that block alone: the legacy types' imatrix fit, which llama.cpp regularizes with the whole
// row's mean square, then sees the block's); then each column is rounded to its nearest value on that header's grid, and GPTQ spreads the
// rounding error over the columns not yet rounded. The bytes are an ordinary block of the type
// (quant/ggml/codes.h writes the codes into the fitted header): llama.cpp reads them unchanged.
#pragma once

#include "quant/ggml/codes.h"
#include "quant/gptq.h"

#include <vector>

namespace quantllm::ggml {

class GgmlGptqGrid final : public GptqGrid {
 public:
  // A matrix of `out` rows of `in` weights in `type`.
  GgmlGptqGrid(GgmlType type, int64_t out, int64_t in);
  int64_t width() const override { return block_; }
  // diag(H) becomes the importance llama.cpp's fit weights by (a dead input, 0, gets the mean).
  void start(std::span<const double> h_diag) override;
  void fit(int64_t row, int64_t col0, std::span<const float> values) override;
  float round(int64_t row, int64_t col, float x) override;

  // The encoded rows (out × row_size(type, in) bytes), complete once GPTQ ran.
  const std::vector<uint8_t>& bytes() const { return bytes_; }
  std::vector<uint8_t> take_bytes() { return std::move(bytes_); }
  Tensor result() const override;  // what they decode to: [out, in]

 private:
  uint8_t* block_at(int64_t row, int64_t col) { return bytes_.data() + row * row_bytes_ + (col / block_) * type_size_; }

  GgmlType type_;
  int64_t out_, in_, block_, type_size_, row_bytes_;
  int levels_;
  std::vector<float> importance_;
  std::vector<uint8_t> bytes_;
  std::vector<BlockGrid> grid_;               // [out]: each row's current block
  std::vector<std::vector<uint8_t>> codes_;   // [out][block]: its codes so far
};

// Whether GPTQ can round onto `type`'s blocks (its blocks are a header plus per-weight codes).
bool gptq_grid_supports(GgmlType type);

}  // namespace quantllm::ggml
