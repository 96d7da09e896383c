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

#if defined(__SSE4_1__)
#include <immintrin.h>  // after internal.h, so that the intrinsics fall under its no-contraction pragma
#define QL_GGML_SSE41 1
#endif

namespace quantllm::ggml::detail {

namespace {

constexpr int kTrials = 7;

// Index of the level nearest to v (ties to the upper level, found by bisection like llama.cpp's
// best_index_int8, whose exact tie rule we need).
[[maybe_unused]] int nearest_level(float v) {
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

#if QL_GGML_SSE41
// nearest_level for 16 values at once (v[g] holds values 4g..4g+3). Returns the levels as floats in
// q and, if idx is given, their indices as 16 bytes (in value order).
//
// Same result as the bisection, NaN included: ml = the largest k in [0, 14] with level k <= v
// (what the bisection leaves in hi - 1), then the same float comparison of the distances to levels
// ml and ml + 1. Levels are integers, so level_k <= v iff level_k <= floor(v); v is first clamped to
// [-128, 127] (NaN to 127, as the bisection sends NaN to the top pair), which changes no count, and
// the floors of 16 values are compared as bytes.
inline void nearest_levels16(const __m128 v[4], __m128 q[4], __m128i* idx) {
  __m128i fl[4];
  for (int g = 0; g < 4; ++g) {
    const __m128 t = _mm_max_ps(_mm_min_ps(v[g], _mm_set1_ps(127.f)), _mm_set1_ps(-128.f));  // NaN -> 127
    fl[g] = _mm_cvttps_epi32(_mm_floor_ps(t));
  }
  const __m128i b = _mm_packs_epi16(_mm_packs_epi32(fl[0], fl[1]), _mm_packs_epi32(fl[2], fl[3]));
  __m128i ml = _mm_setzero_si128();
  for (int k = 1; k < 15; ++k) ml = _mm_sub_epi8(ml, _mm_cmpgt_epi8(b, _mm_set1_epi8(char(kIq4nlValues[k] - 1))));
  const __m128i lo_tab = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues));
  const __m128i hi_tab = _mm_srli_si128(lo_tab, 1);  // level k + 1 at byte k
  const __m128i lo = _mm_shuffle_epi8(lo_tab, ml), hi = _mm_shuffle_epi8(hi_tab, ml);
  const __m128i los[4] = {lo, _mm_srli_si128(lo, 4), _mm_srli_si128(lo, 8), _mm_srli_si128(lo, 12)};
  const __m128i his[4] = {hi, _mm_srli_si128(hi, 4), _mm_srli_si128(hi, 8), _mm_srli_si128(hi, 12)};
  __m128i pick_lo[4];
  for (int g = 0; g < 4; ++g) {
    const __m128 lof = _mm_cvtepi32_ps(_mm_cvtepi8_epi32(los[g]));
    const __m128 hif = _mm_cvtepi32_ps(_mm_cvtepi8_epi32(his[g]));
    const __m128 m = _mm_cmplt_ps(_mm_sub_ps(v[g], lof), _mm_sub_ps(hif, v[g]));
    q[g] = _mm_blendv_ps(hif, lof, m);
    pick_lo[g] = _mm_castps_si128(m);
  }
  if (idx) {
    const __m128i m = _mm_packs_epi16(_mm_packs_epi32(pick_lo[0], pick_lo[1]), _mm_packs_epi32(pick_lo[2], pick_lo[3]));
    *idx = _mm_add_epi8(_mm_add_epi8(ml, _mm_set1_epi8(1)), m);  // ml + 1, or ml where the lower level won
  }
}

// The 4-bit level indices of 32 weights against the inverse scale id, packed as nibbles (weight j
// low, j + 16 high) into qs[0..15].
inline void round_and_pack32(const float* x, float id, uint8_t* qs) {
  const __m128 vid = _mm_set1_ps(id);
  __m128i idx[2];
  for (int h = 0; h < 2; ++h) {
    __m128 v[4], q[4];
    for (int g = 0; g < 4; ++g) v[g] = _mm_mul_ps(vid, _mm_loadu_ps(x + 16 * h + 4 * g));
    nearest_levels16(v, q, &idx[h]);
  }
  _mm_storeu_si128(reinterpret_cast<__m128i*>(qs), _mm_or_si128(idx[0], _mm_slli_epi16(idx[1], 4)));
}
#endif

// Best scale for one block of 32 (0 for an all-zero block). The 16 grids (the starting one and 15
// trials) do not depend on one another: their sums are accumulated side by side, one per vector
// lane, each in index order as a grid-at-a-time loop would, then compared in llama.cpp's order.
float fit_block(const float* x, const float* w) {
  float amax = 0, max = 0;
  for (int j = 0; j < kQK; ++j) {
    const float a = std::fabs(x[j]);
    if (a > amax) {
      amax = a;
      max = x[j];
    }
  }
  if (amax < kGroupMaxEps) return 0;
  constexpr int kGrids = 1 + (2 * kTrials + 1);  // the starting grid, then k = -kTrials..kTrials
  alignas(16) float ids[kGrids], sumqx[kGrids], sumq2[kGrids];
  const float d0 = -max / float(kIq4nlValues[0]);
  ids[0] = 1 / d0;
  for (int k = -kTrials; k <= kTrials; ++k) ids[k + kTrials + 1] = float(k + kIq4nlValues[0]) / max;
#if QL_GGML_SSE41
  static_assert(kGrids == 16);
  __m128 sx[4], s2[4], id[4];
  for (int g = 0; g < 4; ++g) {
    id[g] = _mm_load_ps(ids + 4 * g);
    sx[g] = _mm_setzero_ps();
    s2[g] = _mm_setzero_ps();
  }
  for (int j = 0; j < kQK; ++j) {
    const __m128 xj = _mm_set1_ps(x[j]), wj = _mm_set1_ps(w[j]);
    __m128 v[4], q[4];
    for (int g = 0; g < 4; ++g) v[g] = _mm_mul_ps(id[g], xj);
    nearest_levels16(v, q, nullptr);
    for (int g = 0; g < 4; ++g) {
      const __m128 wq = _mm_mul_ps(wj, q[g]);
      sx[g] = _mm_add_ps(sx[g], _mm_mul_ps(wq, xj));
      s2[g] = _mm_add_ps(s2[g], _mm_mul_ps(wq, q[g]));
    }
  }
  for (int g = 0; g < 4; ++g) {
    _mm_store_ps(sumqx + 4 * g, sx[g]);
    _mm_store_ps(sumq2 + 4 * g, s2[g]);
  }
#else
  for (int t = 0; t < kGrids; ++t) {
    float sqx = 0, sq2 = 0;
    for (int j = 0; j < kQK; ++j) {
      const float q = float(kIq4nlValues[nearest_level(ids[t] * x[j])]);
      sqx += w[j] * q * x[j];
      sq2 += w[j] * q * q;
    }
    sumqx[t] = sqx;
    sumq2[t] = sq2;
  }
#endif
  float d = sumq2[0] > 0 ? sumqx[0] / sumq2[0] : 0.f;
  float best = d * sumqx[0];
  for (int t = 1; t < kGrids; ++t) {
    if (sumq2[t] > 0 && sumqx[t] * sumqx[t] > best * sumq2[t]) {
      d = sumqx[t] / sumq2[t];
      best = d * sumqx[t];
    }
  }
  return d;
}

// Level indices of 32 weights against the inverse scale id, packed as nibbles into qs[0..15].
void round_block(const float* x, float id, uint8_t* qs) {
#if QL_GGML_SSE41
  round_and_pack32(x, id, qs);
#else
  for (int j = 0; j < kQK / 2; ++j)
    qs[j] = uint8_t(nearest_level(id * x[j]) | (nearest_level(id * x[j + kQK / 2]) << 4));
#endif
}

float mean_square_x2(const float* x, int n) { return sum_squares(x, n) * (2.f / float(n)); }

}  // namespace

void quantize_row_iq4_nl(const float* x, void* dst, int64_t n, const float* imatrix) {
  auto* y = static_cast<BlockIQ4_NL*>(dst);
  float w[kQK];
  for (int64_t ib = 0; ib < n / kQK; ++ib, x += kQK) {
    const float sigma2 = mean_square_x2(x, kQK);
    fit_weights(x, imatrix ? imatrix + ib * kQK : nullptr, sigma2, kQK, w);
    const float d = fit_block(x, w);
    y[ib].d = to_fp16(d);
    // Final rounding against the unrounded scale (as llama.cpp; an all-zero block gets the level
    // nearest 0).
    round_block(x, d != 0 ? 1 / d : 0, y[ib].qs);
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
  float w[kQK];
  float scales[kQK_K / kQK];
  for (int64_t i = 0; i < n / kQK_K; ++i, x += kQK_K) {
    BlockIQ4_XS& b = y[i];
    const float sigma2 = mean_square_x2(x, kQK_K);
    float max_scale = 0, amax_scale = 0;
    for (int ib = 0; ib < kQK_K / kQK; ++ib) {
      fit_weights(x + ib * kQK, imatrix ? imatrix + i * kQK_K + ib * kQK : nullptr, sigma2, kQK, w);
      scales[ib] = fit_block(x + ib * kQK, w);
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
      round_block(x + ib * kQK, idl, b.qs + 16 * ib);
      l += 32;
      b.scales_l[ib / 2] = uint8_t(b.scales_l[ib / 2] | ((l & 0xF) << (4 * (ib % 2))));
      b.scales_h = uint16_t(b.scales_h | ((l >> 4) << (2 * ib)));
    }
  }
}

void dequantize_row_iq4_xs(const void* src, float* y, int64_t n) {
  const auto* blocks = static_cast<const BlockIQ4_XS*>(src);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const BlockIQ4_XS& b = blocks[i];
    const float d = from_fp16(b.d);
    const uint8_t* qs = b.qs;
    for (int ib = 0; ib < kQK_K / kQK; ++ib, y += kQK, qs += 16) {
      const float dl = d * float(iq4_xs_scale(b, ib) - 32);
      for (int j = 0; j < 16; ++j) {
        y[j] = dl * float(kIq4nlValues[qs[j] & 0xF]);
        y[j + 16] = dl * float(kIq4nlValues[qs[j] >> 4]);
      }
    }
  }
}

}  // namespace quantllm::ggml::detail
