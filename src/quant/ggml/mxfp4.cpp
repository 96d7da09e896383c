// MXFP4, the OCP microscaling 4-bit float format (gpt-oss's weights): blocks of 32 e2m1 values sharing
// one power-of-two scale (E8M0). No importance matrix. As llama.cpp's quantize_row_mxfp4_ref: the
// exponent puts the block's largest |x| in the top binade of e2m1 (e = ⌊log2 amax⌋ − 2 + 127), then each
// weight takes the nearest of the 16 values (the first of equals in code order).
#include "quant/ggml/internal.h"  // first: its pragmas must precede every inline function

#include <cmath>
#include <cstring>

namespace quantllm::ggml::detail {

namespace {

// 2^(e − 128): the E8M0 scale halved, as the table holds the e2m1 values doubled.
float half_scale(uint8_t e) {
  const uint32_t bits = e < 2 ? 0x00200000u << e : uint32_t(e - 1) << 23;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

int nearest_code(float x, float d) {
  int best = 0;
  float best_err = std::fabs(float(kMxfp4Values[0]) * d - x);
  for (int i = 1; i < 16; ++i) {
    const float err = std::fabs(float(kMxfp4Values[i]) * d - x);
    if (err < best_err) {
      best = i;
      best_err = err;
    }
  }
  return best;
}

}  // namespace

void quantize_row_mxfp4(const float* x, void* dst, int64_t n, const float* /*imatrix*/) {
  auto* y = static_cast<BlockMXFP4*>(dst);
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    float amax = 0;
    for (int j = 0; j < kQK; ++j)
      if (amax < std::fabs(x[j])) amax = std::fabs(x[j]);
    // The float → uint8 conversion as x86-64 compiles llama.cpp's cast: through int32, low byte kept.
    const uint8_t e = amax > 0 ? uint8_t(int32_t(std::floor(std::log2(amax)) - 2 + 127)) : 0;
    const float d = half_scale(e);
    y[b].e = e;
    for (int j = 0; j < kQK / 2; ++j)
      y[b].qs[j] = uint8_t(nearest_code(x[j], d) | (nearest_code(x[j + kQK / 2], d) << 4));
  }
}

void dequantize_row_mxfp4(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockMXFP4*>(src);
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = half_scale(x[b].e);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = float(kMxfp4Values[x[b].qs[j] & 0xF]) * d;
      y[j + kQK / 2] = float(kMxfp4Values[x[b].qs[j] >> 4]) * d;
    }
  }
}

}  // namespace quantllm::ggml::detail
