// GPTQ onto GGML blocks (see gptq_grid.h).
#include "quant/ggml/gptq_grid.h"

#include "core/error.h"

namespace quantllm::ggml {

bool gptq_grid_supports(GgmlType type) { return code_levels(type) > 0; }

GgmlGptqGrid::GgmlGptqGrid(GgmlType type, int64_t out, int64_t in, std::vector<float> importance)
    : type_(type), out_(out), in_(in), importance_(std::move(importance)) {
  QL_ASSERT(gptq_grid_supports(type), "GPTQ cannot round onto {} blocks", type_name(type));
  const QuantTraits& t = traits(type);
  block_ = t.block_size;
  type_size_ = t.type_size;
  QL_ASSERT(in % block_ == 0, "{} weights a row are not whole {} blocks", in, type_name(type));
  QL_ASSERT(importance_.empty() || int64_t(importance_.size()) == in);
  row_bytes_ = int64_t(t.row_size(in));
  levels_ = code_levels(type);
  bytes_.assign(size_t(out * row_bytes_), 0);
  grid_.resize(size_t(out));
  codes_.assign(size_t(out), std::vector<uint8_t>(size_t(block_), 0));
}

void GgmlGptqGrid::fit(int64_t row, int64_t col0, std::span<const float> values) {
  QL_ASSERT(int64_t(values.size()) == block_ && col0 % block_ == 0);
  uint8_t* b = block_at(row, col0);
  traits(type_).quantize(values.data(), b, block_, importance_.empty() ? nullptr : importance_.data() + col0);
  grid_[size_t(row)] = block_grid(type_, b);
}

float GgmlGptqGrid::round(int64_t row, int64_t col, float x) {
  const int i = int(col % block_);
  float v = 0.0f;
  std::vector<uint8_t>& codes = codes_[size_t(row)];
  codes[size_t(i)] = grid_[size_t(row)].nearest(i, x, levels_, v);
  if (i == block_ - 1) set_codes(type_, block_at(row, col), codes.data());  // columns come in order: the block is done
  return v;
}

Tensor GgmlGptqGrid::dequantized() const {
  Tensor t({out_, in_});
  dequantize_rows(type_, bytes_.data(), t.ptr(), out_, in_);
  return t;
}

}  // namespace quantllm::ggml
