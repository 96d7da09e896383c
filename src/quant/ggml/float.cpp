// The unquantized ggml element types F32, F16 and BF16, as row functions for the traits table.
//
// F16 rounds to nearest even (ggml's software conversion, which is what ggml_quantize_chunk uses);
// BF16 rounds to nearest even too and keeps NaN quiet, like ggml_fp32_to_bf16_row_ref.
#include "quant/ggml/internal.h"

#include <cstring>

namespace quantllm::ggml::detail {

void quantize_row_f32(const float* x, void* dst, int64_t n, const float*) { std::memcpy(dst, x, size_t(n) * 4); }

void dequantize_row_f32(const void* src, float* y, int64_t n) { std::memcpy(y, src, size_t(n) * 4); }

void quantize_row_f16(const float* x, void* dst, int64_t n, const float*) {
  auto* y = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) y[i] = to_fp16(x[i]);
}

void dequantize_row_f16(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) y[i] = from_fp16(x[i]);
}

void quantize_row_bf16(const float* x, void* dst, int64_t n, const float*) {
  auto* y = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) y[i] = f32_to_bf16(x[i]);
}

void dequantize_row_bf16(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_f32(x[i]);
}

}  // namespace quantllm::ggml::detail
