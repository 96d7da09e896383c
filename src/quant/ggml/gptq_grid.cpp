// GPTQ onto GGML blocks (see gptq_grid.h).
#include "quant/ggml/gptq_grid.h"

#include "core/error.h"

namespace quantllm::ggml {

bool gptq_grid_supports(GgmlType type) { return code_levels(type) > 0; }

GgmlGptqGrid::GgmlGptqGrid(GgmlType type, int64_t out, int64_t in) : type_(type), out_(out), in_(in) {
  QL_ASSERT(gptq_grid_supports(type), "GPTQ cannot round onto {} blocks", type_name(type));
  const QuantTraits& t = traits(type);
  block_ = t.block_size;
  type_size_ = t.type_size;
  QL_ASSERT(in % block_ == 0, "{} weights a row are not whole {} blocks", in, type_name(type));
  row_bytes_ = int64_t(t.row_size(in));
  levels_ = code_levels(type);
  bytes_.assign(size_t(out * row_bytes_), 0);
  grid_.resize(size_t(out));
  codes_.assign(size_t(out), std::vector<uint8_t>(size_t(block_), 0));
}

void GgmlGptqGrid::start(std::span<const double> h_diag) {
  QL_ASSERT(int64_t(h_diag.size()) == in_);
  double mean = 0.0;
  int64_t live = 0;
  for (double v : h_diag)
    if (v > 0.0) mean += v, ++live;
  mean = live ? mean / double(live) : 1.0;
  importance_.resize(h_diag.size());
  for (size_t i = 0; i < h_diag.size(); ++i) importance_[i] = float(h_diag[i] > 0.0 ? h_diag[i] : mean);
}

void GgmlGptqGrid::fit(int64_t row, int64_t col0, std::span<const float> values) {
  QL_ASSERT(int64_t(values.size()) == block_ && col0 % block_ == 0);
  uint8_t* b = block_at(row, col0);
  QL_ASSERT(!importance_.empty(), "GgmlGptqGrid::fit before start");
  traits(type_).quantize(values.data(), b, block_, importance_.data() + col0);
  block_grid(type_, b, grid_[size_t(row)]);
}

float GgmlGptqGrid::round(int64_t row, int64_t col, float x) {
  const int i = int(col % block_);
  float v = 0.0f;
  std::vector<uint8_t>& codes = codes_[size_t(row)];
  codes[size_t(i)] = grid_[size_t(row)].nearest(i, x, levels_, v);
  if (i == block_ - 1) set_codes(type_, block_at(row, col), codes.data());  // columns come in order: the block is done
  return v;
}

Tensor GgmlGptqGrid::result() const {
  Tensor t({out_, in_});
  dequantize_rows(type_, bytes_.data(), t.ptr(), out_, in_);
  return t;
}

}  // namespace quantllm::ggml
