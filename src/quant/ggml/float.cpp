// The unquantized ggml element types F32, F16 and BF16, as row functions for the traits table.
//
// F16 rounds to nearest even (ggml's software conversion, which is what ggml_quantize_chunk uses);
// BF16 rounds to nearest even too and keeps NaN quiet, like ggml_fp32_to_bf16_row_ref.
#include "quant/ggml/internal.h"

#include <cmath>
#include <cstring>

namespace quantllm::ggml::detail {

void quantize_row_f32(const float* x, void* dst, int64_t n, const float*) { std::memcpy(dst, x, size_t(n) * 4); }

void dequantize_row_f32(const void* src, float* y, int64_t n) { std::memcpy(y, src, size_t(n) * 4); }

namespace {

// to_fp16 without branches, so that the row loop vectorizes; same bits for every input (checked
// over all 2^32 floats). a = |f| as bits. Normal results: re-bias the exponent (127 - 15) and drop 13
// mantissa bits rounding to nearest even (a carry into the exponent is the right result, up to
// 65520 -> inf). Subnormal results (|f| < 2^-14): |f| + 0.5 lands where an fp32 ulp is 2^-24, the
// fp16 subnormal step, so the FPU rounds it and the mantissa holds the count (1024 = 2^-14 itself).
inline uint16_t to_fp16_branchless(float f) {
  int32_t w;
  std::memcpy(&w, &f, 4);
  const int32_t a = w & 0x7fffffff;
  const int32_t normal = (a - 0x38000000 + 0xfff + ((a >> 13) & 1)) >> 13;
  float sum = std::fabs(f) + 0.5f;
  int32_t sum_bits;
  std::memcpy(&sum_bits, &sum, 4);
  const int32_t subnormal = sum_bits - 0x3f000000;
  int32_t h = a < 0x38800000 ? subnormal : normal;
  h = a >= 0x477ff000 ? 0x7c00 : h;  // rounds to inf, or is inf
  h = a > 0x7f800000 ? 0x7e00 : h;   // NaN
  return uint16_t(((w >> 16) & 0x8000) | h);
}

}  // namespace

void quantize_row_f16(const float* x, void* dst, int64_t n, const float*) {
  auto* y = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) y[i] = to_fp16_branchless(x[i]);
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
