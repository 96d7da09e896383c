// Shape formatting for messages.
#include "core/tensor.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace quantllm {

std::string shape_str(const Shape& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

}  // namespace quantllm
