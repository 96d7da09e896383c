// The non-linear 4-bit formats IQ4_NL (blocks of 32, one fp16 scale) and IQ4_XS (super-blocks of
// 256 with 6-bit sub-block scales): each weight is a scale times one of 16 fixed levels
// (kIq4nlValues) that are denser near zero, as trained weights are.
//
// Scale search as llama.cpp's quantize_row_iq4_nl_impl (called by ggml_quantize_chunk with 7 trial
// steps each side, with or without imatrix; without one the weights are x^2): start from the scale
// that maps the extreme weight onto the extreme level, then try (level0 + k) / max for k in [-7, 7]
// and keep the best weighted least-squares fit.
#include "quant/ggml/internal.h"

#include <cmath>
#include <cstring>

namespace quantllm::ggml::detail {

namespace {

constexpr int kTrials = 7;

// Index of the level nearest to v (ties to the upper level, found by bisection like llama.cpp's
// best_index_int8, whose exact tie rule we need).
int nearest_level(float v) {
  if (v <= kIq4nlValues[0]) return 0;
  if (v >= kIq4nlValues[15]) return 15;
  int lo = 0, hi = 15;
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (v < kIq4nlValues[mid])
      hi = mid;
    else
      lo = mid;
  }
  return v - float(kIq4nlValues[hi - 1]) < float(kIq4nlValues[hi]) - v ? hi - 1 : hi;
}

// Best scale for one block of 32 (0 for an all-zero block, whose quants L are then left alone).
float fit_block(const float* x, const float* w, uint8_t* L) {
  float amax = 0, max = 0;
  for (int j = 0; j < kQK; ++j) {
    const float a = std::fabs(x[j]);
    if (a > amax) {
      amax = a;
      max = x[j];
    }
  }
  if (amax < kGroupMaxEps) return 0;
  const float level0 = float(kIq4nlValues[0]);
  auto sums_for = [&](float id, float& sumqx, float& sumq2, uint8_t* out) {
    sumqx = 0;
    sumq2 = 0;
    for (int j = 0; j < kQK; ++j) {
      const int l = nearest_level(id * x[j]);
      if (out) out[j] = uint8_t(l);
      const float q = float(kIq4nlValues[l]);
      sumqx += w[j] * q * x[j];
      sumq2 += w[j] * q * q;
    }
  };
  float sumqx, sumq2;
  const float d0 = -max / level0;
  sums_for(1 / d0, sumqx, sumq2, L);
  float d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
  float best = d * sumqx;
  for (int k = -kTrials; k <= kTrials; ++k) {
    sums_for(float(k + kIq4nlValues[0]) / max, sumqx, sumq2, nullptr);
    if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
      d = sumqx / sumq2;
      best = d * sumqx;
    }
  }
  return d;
}

// Per-weight fit weights of one block: imatrix * sqrt(sigma2 + x^2), or x^2 without imatrix.
void block_weights(const float* x, const float* qw, float sigma2, float* w) {
  if (qw) {
    for (int j = 0; j < kQK; ++j) w[j] = qw[j] * std::sqrt(sigma2 + x[j] * x[j]);
  } else {
    for (int j = 0; j < kQK; ++j) w[j] = x[j] * x[j];
  }
}

float mean_square_x2(const float* x, int n) {
  float s = 0;
  for (int j = 0; j < n; ++j) s += x[j] * x[j];
  return s * (2.f / float(n));
}

void pack_nibbles(const uint8_t* L, int n, uint8_t* qs) {
  for (int i = 0; i < n / 32; ++i)
    for (int j = 0; j < 16; ++j) qs[16 * i + j] = uint8_t(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
}

}  // namespace

void quantize_row_iq4_nl(const float* x, void* dst, int64_t n, const float* imatrix) {
  auto* y = static_cast<BlockIQ4_NL*>(dst);
  uint8_t L[kQK];
  float w[kQK];
  for (int64_t ib = 0; ib < n / kQK; ++ib, x += kQK) {
    const float sigma2 = mean_square_x2(x, kQK);
    block_weights(x, imatrix ? imatrix + ib * kQK : nullptr, sigma2, w);
    const float d = fit_block(x, w, L);
    y[ib].d = to_fp16(d);
    // Final rounding against the unrounded scale (as llama.cpp; an all-zero block gets the level
    // nearest 0).
    const float id = d != 0 ? 1 / d : 0;
    for (int j = 0; j < kQK; ++j) L[j] = uint8_t(nearest_level(id * x[j]));
    pack_nibbles(L, kQK, y[ib].qs);
  }
}

void dequantize_row_iq4_nl(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockIQ4_NL*>(src);
  for (int64_t ib = 0; ib < n / kQK; ++ib, y += kQK) {
    const float d = from_fp16(x[ib].d);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = d * float(kIq4nlValues[x[ib].qs[j] & 0xF]);
      y[j + kQK / 2] = d * float(kIq4nlValues[x[ib].qs[j] >> 4]);
    }
  }
}

void quantize_row_iq4_xs(const float* x, void* dst, int64_t n, const float* imatrix) {
  auto* y = static_cast<BlockIQ4_XS*>(dst);
  uint8_t L[kQK_K];
  float w[kQK];
  float scales[kQK_K / kQK];
  for (int64_t i = 0; i < n / kQK_K; ++i, x += kQK_K) {
    BlockIQ4_XS& b = y[i];
    const float sigma2 = mean_square_x2(x, kQK_K);
    float max_scale = 0, amax_scale = 0;
    for (int ib = 0; ib < kQK_K / kQK; ++ib) {
      block_weights(x + ib * kQK, imatrix ? imatrix + i * kQK_K + ib * kQK : nullptr, sigma2, w);
      scales[ib] = fit_block(x + ib * kQK, w, L + ib * kQK);
      if (std::fabs(scales[ib]) > amax_scale) {
        amax_scale = std::fabs(scales[ib]);
        max_scale = scales[ib];
      }
    }
    // Sub-block scales as 6-bit multiples (biased by 32) of d; the most extreme maps to -32.
    b.scales_h = 0;
    std::memset(b.scales_l, 0, sizeof b.scales_l);
    const float d = -max_scale / 32;
    b.d = to_fp16(d);
    const float id = d != 0 ? 1 / d : 0.f;
    for (int ib = 0; ib < kQK_K / kQK; ++ib) {
      int l = nearest_int(id * scales[ib]);
      l = l < -32 ? -32 : (l > 31 ? 31 : l);
      const float dl = d * float(l);
      const float idl = dl != 0 ? 1 / dl : 0.f;
      for (int j = 0; j < kQK; ++j) L[ib * kQK + j] = uint8_t(nearest_level(idl * x[ib * kQK + j]));
      l += 32;
      b.scales_l[ib / 2] = uint8_t(b.scales_l[ib / 2] | ((l & 0xF) << (4 * (ib % 2))));
      b.scales_h = uint16_t(b.scales_h | ((l >> 4) << (2 * ib)));
    }
    pack_nibbles(L, kQK_K, b.qs);
  }
}

void dequantize_row_iq4_xs(const void* src, float* y, int64_t n) {
  const auto* blocks = static_cast<const BlockIQ4_XS*>(src);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const BlockIQ4_XS& b = blocks[i];
    const float d = from_fp16(b.d);
    const uint8_t* qs = b.qs;
    for (int ib = 0; ib < kQK_K / kQK; ++ib, y += kQK, qs += 16) {
      const int ls = ((b.scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF) | (((b.scales_h >> (2 * ib)) & 3) << 4);
      const float dl = d * float(ls - 32);
      for (int j = 0; j < 16; ++j) {
        y[j] = dl * float(kIq4nlValues[qs[j] & 0xF]);
        y[j + 16] = dl * float(kIq4nlValues[qs[j] >> 4]);
      }
    }
  }
}

}  // namespace quantllm::ggml::detail
