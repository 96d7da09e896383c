// The "legacy" ggml formats: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 (blocks of 32 weights, one fp16 scale).
//
// Without an importance matrix each block is quantized on its own by llama.cpp's simple rules (the
// *_ref functions): round-to-grid from the block's extreme values. With one, Q4_0/Q4_1/Q5_0/Q5_1
// switch to llama.cpp's weighted search, where the weight of x_j is imatrix_j * sqrt(sigma2 + x_j^2)
// and sigma2 is the mean square of the whole row, so those rows must be quantized whole. Q8_0
// ignores the imatrix, as llama.cpp does.
#include "quant/ggml/internal.h"  // first: its pragmas must precede every inline function

#include <algorithm>
#include <cmath>
#include <cstring>

namespace quantllm::ggml::detail {

namespace {

// Splits 32 five-bit quants into the nibbles of qs and the fifth bits of qh (little-endian word).
template <typename Block>
void pack_5bit(const uint8_t* q, Block& b) {
  uint32_t high = 0;
  for (int j = 0; j < kQK / 2; ++j) {
    b.qs[j] = uint8_t((q[j] & 0x0F) | ((q[j + kQK / 2] & 0x0F) << 4));
    high |= uint32_t((q[j] & 0x10u) >> 4) << j;
    high |= uint32_t((q[j + kQK / 2] & 0x10u) >> 4) << (j + kQK / 2);
  }
  std::memcpy(b.qh, &high, 4);
}

template <typename Block>
uint8_t unpack_5bit(const Block& b, int j) {
  uint32_t high;
  std::memcpy(&high, b.qh, 4);
  const int nibble = j < kQK / 2 ? (b.qs[j] & 0x0F) : (b.qs[j - kQK / 2] >> 4);
  return uint8_t(nibble | (((high >> j) & 1u) << 4));
}

// roundf() without the libm call and without a data-dependent branch: adding the largest float
// below 0.5 (with v's sign) and truncating rounds halves away from zero and everything else to
// nearest, exactly, for |v| < 2^23 (here |v| <= 127.5); the sum cannot round up across an integer
// because its distance to the next one exceeds half an ulp.
inline float round_half_away(float v) { return std::trunc(v + std::copysign(0.49999997f, v)); }

// Mean square of the row: the sigma2 of the imatrix weights.
float row_mean_square(const float* x, int64_t n) { return sum_squares(x, int(n)) / float(n); }

// The symmetric formats without imatrix: the weight of largest magnitude maps to -half (its sign
// kept, so the grid's extra negative level is used), and the others round half up.
// Returns the block scale; q in [0, 2*half - 1].
float round_symmetric(const float* x, int half, uint8_t* q) {
  float amax = 0;
  float max = 0;
  for (int j = 0; j < kQK; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  const float d = max / float(-half);
  const float id = d != 0 ? 1.0f / d : 0.0f;
  const float bias = float(half) + 0.5f;
  for (int j = 0; j < kQK; ++j) {
    // Truncation toward zero of a value >= 0 (up to rounding noise) rounds half up.
    q[j] = uint8_t(std::min(2 * half - 1, int(int8_t(int(x[j] * id + bias)))));
  }
  return d;
}

// The affine formats without imatrix: the grid spans [min, max] in 2^bits - 1 steps.
float round_affine(const float* x, int levels, uint8_t* q, float& min) {
  min = 3.402823466e+38f;
  float max = -3.402823466e+38f;
  for (int j = 0; j < kQK; ++j) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
  const float d = (max - min) / float(levels - 1);
  const float id = d != 0 ? 1.0f / d : 0.0f;
  for (int j = 0; j < kQK; ++j) q[j] = uint8_t(int((x[j] - min) * id + 0.5f));
  return d;
}

}  // namespace

// ---- Q4_0 -----------------------------------------------------------------------------------------

void quantize_row_q4_0(const float* x, void* dst, int64_t n, const float* imatrix) {
  auto* y = static_cast<BlockQ4_0*>(dst);
  const int64_t nb = n / kQK;
  uint8_t q[kQK];
  if (!imatrix) {
    for (int64_t ib = 0; ib < nb; ++ib) {
      y[ib].d = to_fp16(round_symmetric(x + ib * kQK, 8, q));
      for (int j = 0; j < kQK / 2; ++j) y[ib].qs[j] = uint8_t(q[j] | (q[j + kQK / 2] << 4));
    }
    return;
  }
  const float sigma2 = row_mean_square(x, n);
  float weight[kQK];
  int8_t L[kQK];
  for (int64_t ib = 0; ib < nb; ++ib) {
    fit_weights(x + ib * kQK, imatrix + ib * kQK, sigma2, kQK, weight);
    y[ib].d = to_fp16(fit_symmetric(kQK, 8, x + ib * kQK, weight, L));
    for (int j = 0; j < kQK / 2; ++j) y[ib].qs[j] = uint8_t(L[j] | (L[j + kQK / 2] << 4));
  }
}

void dequantize_row_q4_0(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ4_0*>(src);
  for (int64_t ib = 0; ib < n / kQK; ++ib, y += kQK) {
    const float d = from_fp16(x[ib].d);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = float((x[ib].qs[j] & 0x0F) - 8) * d;
      y[j + kQK / 2] = float((x[ib].qs[j] >> 4) - 8) * d;
    }
  }
}

// ---- Q4_1 -----------------------------------------------------------------------------------------

void quantize_row_q4_1(const float* x, void* dst, int64_t n, const float* imatrix) {
  auto* y = static_cast<BlockQ4_1*>(dst);
  const int64_t nb = n / kQK;
  uint8_t q[kQK];
  if (!imatrix) {
    for (int64_t ib = 0; ib < nb; ++ib) {
      float min;
      y[ib].d = to_fp16(round_affine(x + ib * kQK, 16, q, min));
      y[ib].m = to_fp16(min);
      for (int j = 0; j < kQK / 2; ++j) {
        y[ib].qs[j] = uint8_t(std::min<int>(15, q[j]) | (std::min<int>(15, q[j + kQK / 2]) << 4));
      }
    }
    return;
  }
  const float sigma2 = row_mean_square(x, n);
  float weight[kQK];
  uint8_t aux[kQK];
  for (int64_t ib = 0; ib < nb; ++ib) {
    fit_weights(x + ib * kQK, imatrix + ib * kQK, sigma2, kQK, weight);
    float neg_min;
    const float d = fit_affine(kQK, 15, x + ib * kQK, weight, q, &neg_min, aux, -0.9f, 0.05f, 36, false);
    y[ib].d = to_fp16(d);
    y[ib].m = to_fp16(-neg_min);
    for (int j = 0; j < kQK / 2; ++j) y[ib].qs[j] = uint8_t(q[j] | (q[j + kQK / 2] << 4));
  }
}

void dequantize_row_q4_1(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ4_1*>(src);
  for (int64_t ib = 0; ib < n / kQK; ++ib, y += kQK) {
    const float d = from_fp16(x[ib].d);
    const float m = from_fp16(x[ib].m);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = float(x[ib].qs[j] & 0x0F) * d + m;
      y[j + kQK / 2] = float(x[ib].qs[j] >> 4) * d + m;
    }
  }
}

// ---- Q5_0 -----------------------------------------------------------------------------------------

void quantize_row_q5_0(const float* x, void* dst, int64_t n, const float* imatrix) {
  auto* y = static_cast<BlockQ5_0*>(dst);
  const int64_t nb = n / kQK;
  uint8_t q[kQK];
  if (!imatrix) {
    for (int64_t ib = 0; ib < nb; ++ib) {
      y[ib].d = to_fp16(round_symmetric(x + ib * kQK, 16, q));
      pack_5bit(q, y[ib]);
    }
    return;
  }
  const float sigma2 = row_mean_square(x, n);
  float weight[kQK];
  int8_t L[kQK];
  for (int64_t ib = 0; ib < nb; ++ib) {
    fit_weights(x + ib * kQK, imatrix + ib * kQK, sigma2, kQK, weight);
    y[ib].d = to_fp16(fit_symmetric(kQK, 16, x + ib * kQK, weight, L));
    for (int j = 0; j < kQK; ++j) q[j] = uint8_t(L[j]);
    pack_5bit(q, y[ib]);
  }
}

void dequantize_row_q5_0(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ5_0*>(src);
  for (int64_t ib = 0; ib < n / kQK; ++ib, y += kQK) {
    const float d = from_fp16(x[ib].d);
    for (int j = 0; j < kQK; ++j) y[j] = float(int(unpack_5bit(x[ib], j)) - 16) * d;
  }
}

// ---- Q5_1 -----------------------------------------------------------------------------------------

void quantize_row_q5_1(const float* x, void* dst, int64_t n, const float* imatrix) {
  auto* y = static_cast<BlockQ5_1*>(dst);
  const int64_t nb = n / kQK;
  uint8_t q[kQK];
  if (!imatrix) {
    for (int64_t ib = 0; ib < nb; ++ib) {
      float min;
      y[ib].d = to_fp16(round_affine(x + ib * kQK, 32, q, min));
      y[ib].m = to_fp16(min);
      pack_5bit(q, y[ib]);  // no clamp to 31: llama.cpp has none here either
    }
    return;
  }
  const float sigma2 = row_mean_square(x, n);
  float weight[kQK];
  uint8_t aux[kQK];
  for (int64_t ib = 0; ib < nb; ++ib) {
    fit_weights(x + ib * kQK, imatrix + ib * kQK, sigma2, kQK, weight);
    float neg_min;
    const float d = fit_affine(kQK, 31, x + ib * kQK, weight, q, &neg_min, aux, -0.9f, 0.05f, 36, false);
    y[ib].d = to_fp16(d);
    y[ib].m = to_fp16(-neg_min);
    pack_5bit(q, y[ib]);
  }
}

void dequantize_row_q5_1(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ5_1*>(src);
  for (int64_t ib = 0; ib < n / kQK; ++ib, y += kQK) {
    const float d = from_fp16(x[ib].d);
    const float m = from_fp16(x[ib].m);
    for (int j = 0; j < kQK; ++j) y[j] = float(unpack_5bit(x[ib], j)) * d + m;
  }
}

// ---- Q8_0 -----------------------------------------------------------------------------------------

void quantize_row_q8_0(const float* x, void* dst, int64_t n, const float* /*imatrix: unused*/) {
  auto* y = static_cast<BlockQ8_0*>(dst);
  for (int64_t ib = 0; ib < n / kQK; ++ib, x += kQK) {
    float amax = 0;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[ib].d = to_fp16(d);
    for (int j = 0; j < kQK; ++j) y[ib].qs[j] = int8_t(round_half_away(x[j] * id));
  }
}

void dequantize_row_q8_0(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockQ8_0*>(src);
  for (int64_t ib = 0; ib < n / kQK; ++ib, y += kQK) {
    const float d = from_fp16(x[ib].d);
    for (int j = 0; j < kQK; ++j) y[j] = float(x[ib].qs[j]) * d;
  }
}

}  // namespace quantllm::ggml::detail
