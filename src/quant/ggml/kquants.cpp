// The K-quants: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (super-blocks of 256 weights, sub-block scales that are
// themselves quantized against one or two fp16 super-block scales).
//
// Each format has two quantizers, as in llama.cpp: without an importance matrix the sub-block
// scales are fitted with fixed weights and quantized by rounding against the largest one; with one,
// the fit uses imatrix-derived weights and the sub-block scales get a weighted fit of their own
// (fit_positive / fit_symmetric). After the scales are final, every format re-rounds its weights
// against the scales as they will be decoded (fp16 super-scale times integer sub-scale), which is
// what the decoder sees.
#include "quant/ggml/internal.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace quantllm::ggml::detail {

namespace {

// ---- shared packing ---------------------------------------------------------------------------

// 6-bit (scale, min) pair of sub-block j into the 12 scale bytes of Q4_K / Q5_K (layout in blocks.h).
// Must be called for j = 0..7 in order: j >= 4 ORs into bytes that j < 4 wrote.
void put_scale_min_k4(int j, uint8_t ls, uint8_t lm, uint8_t* scales) {
  if (j < 4) {
    scales[j] = ls;
    scales[j + 4] = lm;
  } else {
    scales[j + 4] = uint8_t((ls & 0xF) | ((lm & 0xF) << 4));
    scales[j - 4] |= uint8_t((ls >> 4) << 6);
    scales[j] |= uint8_t((lm >> 4) << 6);
  }
}

// 6-bit scale of group j (biased by 32) into the 12 scale bytes of Q3_K, which start zeroed.
void put_scale_q3(int j, int l, uint8_t* scales) {
  if (j < 8) {
    scales[j] = uint8_t(l & 0xF);
  } else {
    scales[j - 8] |= uint8_t((l & 0xF) << 4);
  }
  l >>= 4;
  scales[j % 4 + 8] |= uint8_t(l << (2 * (j / 4)));
}

int8_t get_scale_q3(int j, const uint8_t* scales) {
  const int low = j < 8 ? scales[j] & 0xF : scales[j - 8] >> 4;
  return int8_t((low | (((scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32);
}

// 2-bit quants of 256 weights: per 128, byte l holds weights l, l+32, l+64, l+96.
void pack_2bit(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < kQK_K; j += 128) {
    for (int l = 0; l < 32; ++l) {
      qs[j / 4 + l] = uint8_t(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
    }
  }
}

// 4-bit quants of 256 weights: per 64, byte l holds weight l (low nibble) and l + 32 (high).
void pack_4bit(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < kQK_K; j += 64, qs += 32) {
    for (int l = 0; l < 32; ++l) qs[l] = uint8_t(L[j + l] | (L[j + l + 32] << 4));
  }
}

// sum x^2 over a super-block, in index order.
float sum_squares(const float* x, int n) {
  float s = 0;
  for (int l = 0; l < n; ++l) s += x[l] * x[l];
  return s;
}

// ---- Q2_K ---------------------------------------------------------------------------------------

// Re-rounds the 2-bit quants against the decoded scales: x ~ d_j * q - m_j.
void requantize_q2_k(const float* x, const BlockQ2_K& b, uint8_t* L) {
  const float d_all = from_fp16(b.d);
  const float m_all = from_fp16(b.dmin);
  for (int j = 0; j < kQK_K / 16; ++j) {
    const float d = d_all * float(b.scales[j] & 0xF);
    if (d == 0) continue;
    const float m = m_all * float(b.scales[j] >> 4);
    for (int i = 0; i < 16; ++i) L[16 * j + i] = uint8_t(std::clamp(nearest_int((x[16 * j + i] + m) / d), 0, 3));
  }
}

void quantize_superblock_q2_k(const float* x, BlockQ2_K& b) {
  uint8_t L[kQK_K], aux[16];
  float weight[16], scales[16], mins[16];
  float max_scale = 0, max_min = 0;  // scales and mins are >= 0 (the offset is subtracted)
  for (int j = 0; j < 16; ++j) {
    for (int l = 0; l < 16; ++l) weight[l] = std::fabs(x[16 * j + l]);
    scales[j] = fit_affine(16, 3, x + 16 * j, weight, L + 16 * j, &mins[j], aux, -0.5f, 0.1f, 15, true);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float kLevels = 15.f;  // sub-scales and sub-mins are 4-bit
  if (max_scale > 0) {
    const float iscale = kLevels / max_scale;
    for (int j = 0; j < 16; ++j) b.scales[j] = uint8_t(nearest_int(iscale * scales[j]));
    b.d = to_fp16(max_scale / kLevels);
  } else {
    std::memset(b.scales, 0, sizeof b.scales);
    b.d = to_fp16(0.f);
  }
  if (max_min > 0) {
    const float iscale = kLevels / max_min;
    for (int j = 0; j < 16; ++j) b.scales[j] = uint8_t(b.scales[j] | (nearest_int(iscale * mins[j]) << 4));
    b.dmin = to_fp16(max_min / kLevels);
  } else {
    b.dmin = to_fp16(0.f);
  }
  requantize_q2_k(x, b, L);
  pack_2bit(L, b.qs);
}

void quantize_superblock_q2_k_imatrix(const float* x, const float* qw, BlockQ2_K& b) {
  uint8_t L[kQK_K], aux[16], Ls[16], Lm[16];
  float weight[16], scales[16], mins[16], sw[16];
  const float sigma2 = sum_squares(x, kQK_K) / kQK_K;
  for (int j = 0; j < 16; ++j) {
    fit_weights(x + 16 * j, qw + 16 * j, sigma2, 16, weight);
    sw[j] = 0;
    for (int l = 0; l < 16; ++l) sw[j] += weight[l];
    scales[j] = fit_affine(16, 3, x + 16 * j, weight, L + 16 * j, &mins[j], aux, -0.9f, 0.05f, 36, false);
  }
  float dm = fit_positive(16, 15, scales, Ls, sw);
  float mm = fit_positive(16, 15, mins, Lm, sw);
  b.d = to_fp16(dm);
  b.dmin = to_fp16(mm);
  for (int j = 0; j < 16; ++j) b.scales[j] = uint8_t(Ls[j] | (Lm[j] << 4));
  requantize_q2_k(x, b, L);
  pack_2bit(L, b.qs);
}

// ---- Q3_K ---------------------------------------------------------------------------------------

// Re-rounds against the decoded scales and splits the 3-bit quants into qs (low 2 bits) and hmask.
void finish_q3_k(const float* x, BlockQ3_K& b, int8_t* L) {
  const float d_all = from_fp16(b.d);
  for (int j = 0; j < 16; ++j) {
    const float d = d_all * float(get_scale_q3(j, b.scales));
    if (d == 0) continue;
    for (int i = 0; i < 16; ++i) L[16 * j + i] = int8_t(std::clamp(nearest_int(x[16 * j + i] / d), -4, 3) + 4);
  }
  // High bit of weight j goes to bit j / 32 of hmask[j % 32].
  std::memset(b.hmask, 0, sizeof b.hmask);
  uint8_t L2[kQK_K];
  for (int j = 0; j < kQK_K; ++j) {
    int q = L[j];
    if (q > 3) {
      b.hmask[j % 32] |= uint8_t(1u << (j / 32));
      q -= 4;
    }
    L2[j] = uint8_t(q);
  }
  pack_2bit(L2, b.qs);
}

void quantize_superblock_q3_k(const float* x, BlockQ3_K& b) {
  int8_t L[kQK_K];
  float scales[16];
  float max_scale = 0, amax = 0;  // the scale of largest magnitude, sign kept
  for (int j = 0; j < 16; ++j) {
    scales[j] = fit_symmetric_refined(16, 4, x + 16 * j, L + 16 * j);
    const float a = std::fabs(scales[j]);
    if (a > amax) {
      amax = a;
      max_scale = scales[j];
    }
  }
  std::memset(b.scales, 0, sizeof b.scales);
  if (max_scale != 0) {
    const float iscale = -32.f / max_scale;
    for (int j = 0; j < 16; ++j) {
      const int8_t l = int8_t(nearest_int(iscale * scales[j]));
      put_scale_q3(j, std::clamp<int>(l, -32, 31) + 32, b.scales);
    }
    b.d = to_fp16(1 / iscale);
  } else {
    b.d = to_fp16(0.f);
  }
  finish_q3_k(x, b, L);
}

void quantize_superblock_q3_k_imatrix(const float* x, const float* qw, BlockQ3_K& b) {
  int8_t L[kQK_K], Ls[16];
  float scales[16], weight[16], sw[16];
  const float sigma2 = 2 * sum_squares(x, kQK_K) / kQK_K;
  for (int j = 0; j < 16; ++j) {
    fit_weights(x + 16 * j, qw + 16 * j, sigma2, 16, weight);
    float sumw = 0;
    for (int l = 0; l < 16; ++l) sumw += weight[l];
    sw[j] = sumw;
    scales[j] = fit_symmetric(16, 4, x + 16 * j, weight, L + 16 * j);
  }
  std::memset(b.scales, 0, sizeof b.scales);
  const float d_block = fit_symmetric(16, 32, scales, sw, Ls);
  for (int j = 0; j < 16; ++j) put_scale_q3(j, Ls[j], b.scales);
  b.d = to_fp16(d_block);
  finish_q3_k(x, b, L);
}

// ---- Q4_K / Q5_K --------------------------------------------------------------------------------

// Both formats share everything but the quant width (nmax 15 or 31) and the final packing.
// Fills scales/d/dmin of b and the quants L (re-rounded against the decoded scales).
template <typename Block>
void quantize_scales_qk4(const float* x, int nmax, Block& b, uint8_t* L) {
  uint8_t aux[32];
  float weight[32], scales[8], mins[8];
  float max_scale = 0, max_min = 0;
  const bool is_q4 = nmax == 15;
  for (int j = 0; j < 8; ++j) {
    const float* xb = x + 32 * j;
    const float av_x = std::sqrt(sum_squares(xb, 32) / 32);
    for (int l = 0; l < 32; ++l) weight[l] = av_x + std::fabs(xb[l]);
    scales[j] = is_q4 ? fit_affine(32, nmax, xb, weight, L + 32 * j, &mins[j], aux, -1.f, 0.1f, 20, false)
                      : fit_affine(32, nmax, xb, weight, L + 32 * j, &mins[j], aux, -0.5f, 0.1f, 15, false);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  for (int j = 0; j < 8; ++j) {
    const uint8_t ls = std::min<uint8_t>(63, uint8_t(nearest_int(inv_scale * scales[j])));
    const uint8_t lm = std::min<uint8_t>(63, uint8_t(nearest_int(inv_min * mins[j])));
    put_scale_min_k4(j, ls, lm, b.scales);
  }
  b.d = to_fp16(max_scale / 63.f);
  b.dmin = to_fp16(max_min / 63.f);
}

template <typename Block>
void quantize_scales_qk4_imatrix(const float* x, const float* qw, int nmax, Block& b, uint8_t* L) {
  uint8_t aux[32], Ls[8], Lm[8];
  float weight[32], scales[8], mins[8], sw[8];
  const float sigma2 = 2 * sum_squares(x, kQK_K) / kQK_K;
  for (int j = 0; j < 8; ++j) {
    const float* xb = x + 32 * j;
    fit_weights(xb, qw + 32 * j, sigma2, 32, weight);
    float sumw = 0;
    for (int l = 0; l < 32; ++l) sumw += weight[l];
    sw[j] = sumw;
    scales[j] = fit_affine(32, nmax, xb, weight, L + 32 * j, &mins[j], aux, -0.9f, 0.05f, 36, false);
  }
  const float d_block = fit_positive(8, 63, scales, Ls, sw);
  const float m_block = fit_positive(8, 63, mins, Lm, sw);
  const bool clamp_to_6_bits = nmax != 15;  // llama.cpp clamps in Q5_K only (fit_positive stays <= 63
                                            // unless a sub-block scale were negative)
  for (int j = 0; j < 8; ++j) {
    const uint8_t ls = clamp_to_6_bits ? std::min<uint8_t>(63, Ls[j]) : Ls[j];
    const uint8_t lm = clamp_to_6_bits ? std::min<uint8_t>(63, Lm[j]) : Lm[j];
    put_scale_min_k4(j, ls, lm, b.scales);
  }
  b.d = to_fp16(d_block);
  b.dmin = to_fp16(m_block);
}

// x ~ d * sc_j * q - dmin * m_j, re-rounded with the decoded sub-block scales.
template <typename Block>
void requantize_qk4(const float* x, int nmax, const Block& b, uint8_t* L) {
  const float d_all = from_fp16(b.d);
  const float m_all = from_fp16(b.dmin);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    get_scale_min_k4(j, b.scales, sc, m);
    const float d = d_all * float(sc);
    if (d == 0) continue;
    const float dm = m_all * float(m);
    for (int i = 0; i < 32; ++i) L[32 * j + i] = uint8_t(std::clamp(nearest_int((x[32 * j + i] + dm) / d), 0, nmax));
  }
}

void pack_q5_k(const uint8_t* L, BlockQ5_K& b) {
  std::memset(b.qh, 0, sizeof b.qh);
  uint8_t* ql = b.qs;
  uint8_t bit_lo = 1, bit_hi = 2;
  for (int n = 0; n < kQK_K; n += 64, ql += 32) {
    for (int j = 0; j < 32; ++j) {
      int lo = L[n + j], hi = L[n + j + 32];
      if (lo > 15) {
        lo -= 16;
        b.qh[j] |= bit_lo;
      }
      if (hi > 15) {
        hi -= 16;
        b.qh[j] |= bit_hi;
      }
      ql[j] = uint8_t(lo | (hi << 4));
    }
    bit_lo = uint8_t(bit_lo << 2);
    bit_hi = uint8_t(bit_hi << 2);
  }
}

// ---- Q6_K ---------------------------------------------------------------------------------------

void quantize_superblock_q6_k(const float* x, const float* qw, BlockQ6_K& b) {
  int8_t L[kQK_K];
  float scales[16], weight[16];
  float max_scale = 0, max_abs_scale = 0;
  for (int j = 0; j < 16; ++j) {
    const float* xb = x + 16 * j;
    // Without an imatrix the weights are x^2; with one, the raw importances (llama.cpp does not
    // mix in sigma2 for Q6_K).
    const float* w = qw ? qw + 16 * j : weight;
    if (!qw)
      for (int l = 0; l < 16; ++l) weight[l] = xb[l] * xb[l];
    scales[j] = fit_symmetric(16, 32, xb, w, L + 16 * j);
    const float a = std::fabs(scales[j]);
    if (a > max_abs_scale) {
      max_abs_scale = a;
      max_scale = scales[j];
    }
  }
  if (max_abs_scale < kGroupMaxEps) {
    std::memset(&b, 0, sizeof b);
    b.d = to_fp16(0.f);
    return;
  }
  const float iscale = -128.f / max_scale;
  b.d = to_fp16(1 / iscale);
  for (int j = 0; j < 16; ++j) b.scales[j] = int8_t(std::min(127, nearest_int(iscale * scales[j])));
  const float d_all = from_fp16(b.d);
  for (int j = 0; j < 16; ++j) {
    const float d = d_all * float(b.scales[j]);
    if (d == 0) continue;
    for (int i = 0; i < 16; ++i) L[16 * j + i] = int8_t(std::clamp(nearest_int(x[16 * j + i] / d), -32, 31) + 32);
  }
  uint8_t* ql = b.ql;
  uint8_t* qh = b.qh;
  for (int j = 0; j < kQK_K; j += 128, ql += 64, qh += 32) {
    for (int l = 0; l < 32; ++l) {
      const int q1 = L[j + l], q2 = L[j + l + 32], q3 = L[j + l + 64], q4 = L[j + l + 96];
      ql[l] = uint8_t((q1 & 0xF) | ((q3 & 0xF) << 4));
      ql[l + 32] = uint8_t((q2 & 0xF) | ((q4 & 0xF) << 4));
      qh[l] = uint8_t((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
    }
  }
}

}  // namespace

// ---- row functions ------------------------------------------------------------------------------

void quantize_row_q2_k(const float* x, void* dst, int64_t n, const float* imatrix) {
  auto* y = static_cast<BlockQ2_K*>(dst);
  for (int64_t i = 0; i < n / kQK_K; ++i, x += kQK_K) {
    if (imatrix)
      quantize_superblock_q2_k_imatrix(x, imatrix + i * kQK_K, y[i]);
    else
      quantize_superblock_q2_k(x, y[i]);
  }
}

void dequantize_row_q2_k(const void* src, float* y, int64_t n) {
  const auto* blocks = static_cast<const BlockQ2_K*>(src);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const BlockQ2_K& b = blocks[i];
    const float d = from_fp16(b.d);
    const float min = from_fp16(b.dmin);
    const uint8_t* q = b.qs;
    int group = 0;
    for (int half = 0; half < kQK_K; half += 128, q += 32) {
      for (int shift = 0; shift < 8; shift += 2) {
        for (int k = 0; k < 2; ++k, ++group) {  // two groups of 16 share each bit pair of 32 bytes
          const float dl = d * float(b.scales[group] & 0xF);
          const float ml = min * float(b.scales[group] >> 4);
          for (int l = 0; l < 16; ++l) *y++ = dl * float((q[16 * k + l] >> shift) & 3) - ml;
        }
      }
    }
  }
}

void quantize_row_q3_k(const float* x, void* dst, int64_t n, const float* imatrix) {
  auto* y = static_cast<BlockQ3_K*>(dst);
  for (int64_t i = 0; i < n / kQK_K; ++i, x += kQK_K) {
    if (imatrix)
      quantize_superblock_q3_k_imatrix(x, imatrix + i * kQK_K, y[i]);
    else
      quantize_superblock_q3_k(x, y[i]);
  }
}

void dequantize_row_q3_k(const void* src, float* y, int64_t n) {
  const auto* blocks = static_cast<const BlockQ3_K*>(src);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const BlockQ3_K& b = blocks[i];
    const float d_all = from_fp16(b.d);
    for (int j = 0; j < kQK_K; ++j) {
      // Weight j: group j / 16; low bits in qs at (j / 128) * 32 + j % 32, pair (j % 128) / 32.
      const float dl = d_all * float(get_scale_q3(j / 16, b.scales) );
      const int low = (b.qs[(j / 128) * 32 + j % 32] >> (2 * ((j % 128) / 32))) & 3;
      const int high = (b.hmask[j % 32] >> (j / 32)) & 1;
      *y++ = dl * float(low - (high ? 0 : 4));
    }
  }
}

void quantize_row_q4_k(const float* x, void* dst, int64_t n, const float* imatrix) {
  auto* y = static_cast<BlockQ4_K*>(dst);
  uint8_t L[kQK_K];
  for (int64_t i = 0; i < n / kQK_K; ++i, x += kQK_K) {
    if (imatrix)
      quantize_scales_qk4_imatrix(x, imatrix + i * kQK_K, 15, y[i], L);
    else
      quantize_scales_qk4(x, 15, y[i], L);
    requantize_qk4(x, 15, y[i], L);
    pack_4bit(L, y[i].qs);
  }
}

void dequantize_row_q4_k(const void* src, float* y, int64_t n) {
  const auto* blocks = static_cast<const BlockQ4_K*>(src);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const BlockQ4_K& b = blocks[i];
    const float d = from_fp16(b.d);
    const float min = from_fp16(b.dmin);
    const uint8_t* q = b.qs;
    for (int j = 0; j < 8; j += 2, q += 32) {
      uint8_t sc, m;
      get_scale_min_k4(j, b.scales, sc, m);
      const float d1 = d * float(sc), m1 = min * float(m);
      get_scale_min_k4(j + 1, b.scales, sc, m);
      const float d2 = d * float(sc), m2 = min * float(m);
      for (int l = 0; l < 32; ++l) *y++ = d1 * float(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * float(q[l] >> 4) - m2;
    }
  }
}

void quantize_row_q5_k(const float* x, void* dst, int64_t n, const float* imatrix) {
  auto* y = static_cast<BlockQ5_K*>(dst);
  uint8_t L[kQK_K];
  for (int64_t i = 0; i < n / kQK_K; ++i, x += kQK_K) {
    if (imatrix)
      quantize_scales_qk4_imatrix(x, imatrix + i * kQK_K, 31, y[i], L);
    else
      quantize_scales_qk4(x, 31, y[i], L);
    requantize_qk4(x, 31, y[i], L);
    pack_q5_k(L, y[i]);
  }
}

void dequantize_row_q5_k(const void* src, float* y, int64_t n) {
  const auto* blocks = static_cast<const BlockQ5_K*>(src);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const BlockQ5_K& b = blocks[i];
    const float d = from_fp16(b.d);
    const float min = from_fp16(b.dmin);
    const uint8_t* ql = b.qs;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0; j < 8; j += 2, ql += 32) {
      uint8_t sc, m;
      get_scale_min_k4(j, b.scales, sc, m);
      const float d1 = d * float(sc), m1 = min * float(m);
      get_scale_min_k4(j + 1, b.scales, sc, m);
      const float d2 = d * float(sc), m2 = min * float(m);
      for (int l = 0; l < 32; ++l) *y++ = d1 * float((ql[l] & 0xF) + (b.qh[l] & u1 ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * float((ql[l] >> 4) + (b.qh[l] & u2 ? 16 : 0)) - m2;
      u1 = uint8_t(u1 << 2);
      u2 = uint8_t(u2 << 2);
    }
  }
}

void quantize_row_q6_k(const float* x, void* dst, int64_t n, const float* imatrix) {
  auto* y = static_cast<BlockQ6_K*>(dst);
  for (int64_t i = 0; i < n / kQK_K; ++i, x += kQK_K) quantize_superblock_q6_k(x, imatrix ? imatrix + i * kQK_K : nullptr, y[i]);
}

void dequantize_row_q6_k(const void* src, float* y, int64_t n) {
  const auto* blocks = static_cast<const BlockQ6_K*>(src);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const BlockQ6_K& b = blocks[i];
    const float d = from_fp16(b.d);
    const uint8_t* ql = b.ql;
    const uint8_t* qh = b.qh;
    const int8_t* sc = b.scales;
    for (int half = 0; half < kQK_K; half += 128, y += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = int((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = int((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = int((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = int((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * float(sc[is]) * float(q1);
        y[l + 32] = d * float(sc[is + 2]) * float(q2);
        y[l + 64] = d * float(sc[is + 4]) * float(q3);
        y[l + 96] = d * float(sc[is + 6]) * float(q4);
      }
    }
  }
}

}  // namespace quantllm::ggml::detail
