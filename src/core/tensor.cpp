// Shape formatting for messages; the finiteness check of weights.
#include "core/tensor.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>

namespace quantllm {

std::string shape_str(const Shape& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

void check_finite(std::span<const float> w, std::string_view name) {
  for (size_t i = 0; i < w.size(); ++i)
    if (!std::isfinite(w[i]))
      fail("tensor '{}': element {} is {}; a checkpoint with NaN or Inf weights cannot be quantized", name, i, w[i]);
}

}  // namespace quantllm
