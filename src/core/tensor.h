// Tensor: an owned, contiguous, row-major fp32 array with a shape — the working type of the
// forward pass and the quantizers. Stored tensors (bf16/f16/packed) stay as byte views in io/.
#pragma once

#include "core/error.h"

#include <cstdint>
#include <initializer_list>
#include <numeric>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace quantllm {

using Shape = std::vector<int64_t>;

inline int64_t shape_numel(const Shape& s) {
  return std::accumulate(s.begin(), s.end(), int64_t{1}, std::multiplies<>());
}
std::string shape_str(const Shape& s);  // "[1536, 512]"

// Throws Error naming tensor `name` (and the first bad element) if any element of `w` is NaN or
// infinite: quantizing such a checkpoint, or writing one, would only spread the damage.
void check_finite(std::span<const float> w, std::string_view name);

struct Tensor {
  Shape shape;
  std::vector<float> data;

  Tensor() = default;
  explicit Tensor(Shape s) : shape(std::move(s)), data(size_t(shape_numel(shape)), 0.0f) {}
  Tensor(Shape s, std::vector<float> d) : shape(std::move(s)), data(std::move(d)) {
    QL_ASSERT(int64_t(data.size()) == shape_numel(shape));
  }

  int64_t numel() const { return int64_t(data.size()); }
  int64_t dim(int i) const { return shape.at(size_t(i < 0 ? int(shape.size()) + i : i)); }
  int ndim() const { return int(shape.size()); }
  bool empty() const { return data.empty(); }
  float* ptr() { return data.data(); }
  const float* ptr() const { return data.data(); }
  // Row r of a 2-D tensor.
  float* row(int64_t r) { return data.data() + r * shape.back(); }
  const float* row(int64_t r) const { return data.data() + r * shape.back(); }
};

}  // namespace quantllm
