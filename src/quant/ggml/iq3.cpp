// The 3-bit lattice formats IQ3_XXS (3.06 bits a weight) and IQ3_S (3.44): super-blocks of 256 weights,
// 8 groups of 32 with a 4-bit scale each, and within a group 8 points of a 4-weight codebook (kIq3xxsGrid,
// 256 points; kIq3sGrid, 512) times per-weight signs. Layouts in blocks.h.
//
// Quantization as llama.cpp's quantize_row_iq3_xxs_impl / quantize_row_iq3_s_impl (the same with and
// without an imatrix; without one the fit weights are x²). Per group of 32, on the absolute values:
//  1. try the scales max / (15 + 0.2·is): round every weight to a level 0..7 (position 2·level + 1),
//     and where a quad's levels are not a codebook point take its best lattice neighbour; keep the trial
//     with the best weighted least-squares fit Σwxq² / Σwq² (its quants and its fitted scale);
//  2. if quads were off the grid, round them once more against that fitted scale and refit the scale;
//  3. store the point indices and signs; the group scales are then rounded to 4 bits against the largest
//     one / 31, and the super-block scale stored with a small upward fudge factor.
// The two formats differ in details listed in Variant, and IQ3_S keeps one quirk of llama.cpp's layout
// that the bytes depend on (see quantize_row_iq3_s).
#include "quant/ggml/internal.h"  // first: its pragmas must precede every inline function

#include "core/error.h"
#include "quant/ggml/iq_grids.h"
#include "quant/ggml/iq_lattice.h"

#include <cmath>
#include <limits>

namespace quantllm::ggml::detail {

namespace {

constexpr int kGroup = 32;           // weights a scale
constexpr int kQuads = kGroup / 4;   // codebook points a group
constexpr int kOctets = kGroup / 8;  // sign bytes a group
constexpr int kMaxLevel = 7;

// What distinguishes the two quantizers.
struct Variant {
  GgmlType type;
  int trials;         // trial scales max / (15 + 0.2·is) for is in [-trials, trials]
  float empty_below;  // a group whose largest |x| is below this is stored as zero
  bool even_signs;    // IQ3_XXS: 7 sign bits per 8 weights, the 8th is their parity
  bool refine_all;    // IQ3_S: step 2 re-rounds every quad, and runs also when no trial was kept
  float fudge;        // the stored super-block scale is (largest group scale / 31) · fudge
};

constexpr Variant kXxs{GgmlType::IQ3_XXS, 15, 1e-8f, true, false, 1.0125f};
// IQ3_S skips only exactly-zero groups: |x| >= 0, so "below the smallest subnormal" means zero.
constexpr Variant kS{GgmlType::IQ3_S, 9, std::numeric_limits<float>::denorm_min(), false, true, 1.033f};

// One group of 32 weights, quantized.
struct Group {
  bool empty = true;     // skipped: no points, no signs, scale 0
  float scale = 0;       // fitted scale (>= 0), before its 4-bit rounding
  uint16_t point[kQuads] = {};
  uint8_t signs[kOctets] = {};  // bit i of byte k: weight 8k + i is negative (IQ3_XXS: 7 bits)
};

// Levels of one quad against the inverse scale id (clamped to 0..kMaxLevel) into L; returns the level
// code (3 bits a weight).
uint32_t round_quad(const float* xval, float id, int8_t* L) {
  uint32_t code = 0;
  for (int i = 0; i < 4; ++i) {
    int l = nearest_int(0.5f * (id * xval[i] - 1));
    l = l < 0 ? 0 : (l > kMaxLevel ? kMaxLevel : l);
    L[i] = int8_t(l);
    code |= uint32_t(l) << (3 * i);
  }
  return code;
}

// Rounds a quad onto the codebook: its own levels if they are a point, else the best neighbour at
// `scale` (weighted by waux). Writes L; returns whether the levels were a point already.
bool quad_to_grid(const Lattice& lat, const float* xval, const float* waux, float id, float scale, int8_t* L) {
  const uint32_t code = round_quad(xval, id, L);
  if (lat.point(code) >= 0) return true;
  lat.best_neighbour(code, xval, waux, scale, L);
  return false;
}



// Steps 1 and 2 of the file comment for one group of 32 weights x (qw: its imatrix slice or null).
Group quantize_group(const Variant& v, const Lattice& lat, const float* x, const float* qw, float sigma2) {
  Group g;
  float w[kGroup], waux[kGroup], xval[kGroup];
  fit_weights(x, qw, sigma2, kGroup, w);
  for (int i = 0; i < kGroup; ++i) waux[i] = std::sqrt(w[i]);
  split_signs(x, w, kOctets, v.even_signs, xval, g.signs);
  float max = xval[0];
  for (int i = 1; i < kGroup; ++i) max = max > xval[i] ? max : xval[i];
  if (max < v.empty_below) return g;
  g.empty = false;

  // 1. Trial scales; a trial replaces the kept one only if its fit is strictly better.
  int8_t L[kGroup] = {}, Laux[kGroup];
  bool on_grid[kQuads], on_grid_aux[kQuads];
  for (bool& b : on_grid) b = !v.refine_all;
  float scale = max / 15, best = 0;
  for (int is = -v.trials; is <= v.trials; ++is) {
    const float id = (15 + float(is) * 0.2f) / max;
    const float this_scale = 1 / id;
    for (int k = 0; k < kQuads; ++k)
      on_grid_aux[k] = quad_to_grid(lat, xval + 4 * k, waux + 4 * k, id, this_scale, Laux + 4 * k);
    float sumqx, sumq2;
    fit_sums(Laux, xval, w, kGroup, sumqx, sumq2);
    if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
      scale = sumqx / sumq2;
      best = scale * sumqx;
      for (int i = 0; i < kGroup; ++i) L[i] = Laux[i];
      for (int k = 0; k < kQuads; ++k) on_grid[k] = on_grid_aux[k];
    }
  }

  // 2. Re-round the quads off the grid (IQ3_S: all quads) against the fitted scale, then refit it.
  bool all_on_grid = true;
  for (bool b : on_grid) all_on_grid = all_on_grid && b;
  if (!all_on_grid && scale > 0) {
    const float id = 1 / scale;
    for (int k = 0; k < kQuads; ++k)
      if (v.refine_all || !on_grid[k]) quad_to_grid(lat, xval + 4 * k, waux + 4 * k, id, scale, L + 4 * k);
    float sumqx, sumq2;
    fit_sums(L, xval, w, kGroup, sumqx, sumq2);
    if (sumq2 > 0) scale = sumqx / sumq2;
  }
  // A negative scale (possible only in principle) is stored positive with every sign flipped.
  if (scale < 0) {
    scale = -scale;
    for (uint8_t& s : g.signs) s = uint8_t(~s & (v.even_signs ? 127 : 255));
  }
  QL_ASSERT(scale >= 0, "{}: group scale {} (NaN input?)", type_name(v.type), scale);
  g.scale = scale;
  for (int k = 0; k < kQuads; ++k) {
    uint32_t code = 0;
    for (int i = 0; i < 4; ++i) code |= uint32_t(L[4 * k + i]) << (3 * i);
    const int p = lat.point(code);
    QL_ASSERT(p >= 0, "{}: quad {} left off the grid", type_name(v.type), code);
    g.point[k] = uint16_t(p);
  }
  return g;
}

// Step 3: the super-block scale d = largest group scale / 31, stored as the fp16 of d·fudge in d16,
// and the 4-bit group scales s (group scale ≈ d·(2s + 1)), rounded against the unfudged d into
// scales4. Returns false, leaving both 0, when every group scale is 0.
bool super_scale(const Variant& v, const float* scales, uint16_t& d16, int* scales4) {
  float max_scale = 0;
  for (int ib = 0; ib < kQK_K / kGroup; ++ib) max_scale = max_scale > scales[ib] ? max_scale : scales[ib];
  d16 = to_fp16(0.f);
  for (int ib = 0; ib < kQK_K / kGroup; ++ib) scales4[ib] = 0;
  if (max_scale == 0) return false;
  const float d = max_scale / 31;
  d16 = to_fp16(d * v.fudge);
  const float id = 1 / d;
  for (int ib = 0; ib < kQK_K / kGroup; ++ib) {
    const int l = nearest_int(0.5f * (id * scales[ib] - 1));
    scales4[ib] = l < 0 ? 0 : (l > 15 ? 15 : l);
  }
  return true;
}

float sigma2_of(const float* x) { return 2 * sum_squares(x, kQK_K) / float(kQK_K); }

void put_u32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = uint8_t(v >> (8 * i));
}

}  // namespace

void quantize_row_iq3_xxs(const float* x, void* dst, int64_t n, const float* imatrix) {
  const Lattice& lat = lattice(GgmlType::IQ3_XXS);
  auto* y = static_cast<BlockIQ3_XXS*>(dst);
  for (int64_t ibl = 0; ibl < n / kQK_K; ++ibl, x += kQK_K) {
    BlockIQ3_XXS& b = y[ibl];
    std::memset(&b, 0, sizeof b);
    const float sigma2 = sigma2_of(x);
    float scales[kQK_K / kGroup];
    uint32_t signs_and_scale[kQK_K / kGroup] = {};
    for (int ib = 0; ib < kQK_K / kGroup; ++ib) {
      const Group g = quantize_group(kXxs, lat, x + kGroup * ib, imatrix ? imatrix + ibl * kQK_K + kGroup * ib : nullptr,
                                     sigma2);
      scales[ib] = g.scale;
      if (g.empty) continue;
      for (int k = 0; k < kQuads; ++k) b.qs[kQuads * ib + k] = uint8_t(g.point[k]);
      for (int k = 0; k < kOctets; ++k) signs_and_scale[ib] |= uint32_t(g.signs[k]) << (7 * k);
    }
    int scales4[kQK_K / kGroup];
    if (!super_scale(kXxs, scales, b.d, scales4)) {
      std::memset(&b, 0, sizeof b);  // every group scale 0: the whole block is zero, signs included
      continue;
    }
    for (int ib = 0; ib < kQK_K / kGroup; ++ib)
      put_u32(b.qs + kQK_K / 4 + 4 * ib, signs_and_scale[ib] | (uint32_t(scales4[ib]) << 28));
  }
}

void dequantize_row_iq3_xxs(const void* src, float* y, int64_t n) {
  const auto* blocks = static_cast<const BlockIQ3_XXS*>(src);
  for (int64_t ibl = 0; ibl < n / kQK_K; ++ibl) {
    const BlockIQ3_XXS& b = blocks[ibl];
    const float d = from_fp16(b.d);
    for (int ib = 0; ib < kQK_K / kGroup; ++ib) {
      const uint8_t* p = b.qs + kQK_K / 4 + 4 * ib;
      const uint32_t aux = uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
      const float db = d * (0.5f + float(aux >> 28)) * 0.5f;
      for (int k = 0; k < kQuads; ++k, y += 4) {
        const uint8_t signs = kIq2Signs[(aux >> (7 * (k / 2))) & 127];
        const uint32_t grid = kIq3xxsGrid[b.qs[kQuads * ib + k]];
        for (int j = 0; j < 4; ++j) {
          y[j] = db * float((grid >> (8 * j)) & 0xFF) * ((signs >> (4 * (k % 2) + j)) & 1 ? -1.f : 1.f);
        }
      }
    }
  }
}

void quantize_row_iq3_s(const float* x, void* dst, int64_t n, const float* imatrix) {
  const Lattice& lat = lattice(GgmlType::IQ3_S);
  auto* y = static_cast<BlockIQ3_S*>(dst);
  for (int64_t ibl = 0; ibl < n / kQK_K; ++ibl, x += kQK_K) {
    BlockIQ3_S& b = y[ibl];
    std::memset(&b, 0, sizeof b);
    const float sigma2 = sigma2_of(x);
    float scales[kQK_K / kGroup];
    // llama.cpp advances its qs and signs cursors only past groups it quantized: after an empty group
    // the next group's points and signs go into the empty one's slots (the ninth index bits in qh stay
    // at the group's own position). The bytes, and what llama.cpp's decoder makes of them, follow that.
    int slot = 0;
    for (int ib = 0; ib < kQK_K / kGroup; ++ib) {
      const Group g = quantize_group(kS, lat, x + kGroup * ib, imatrix ? imatrix + ibl * kQK_K + kGroup * ib : nullptr,
                                     sigma2);
      scales[ib] = g.scale;
      if (g.empty) continue;
      for (int k = 0; k < kQuads; ++k) {
        b.qs[kQuads * slot + k] = uint8_t(g.point[k] & 0xFF);
        b.qh[ib] = uint8_t(b.qh[ib] | ((g.point[k] >> 8) << k));
      }
      for (int k = 0; k < kOctets; ++k) b.signs[kOctets * slot + k] = g.signs[k];
      ++slot;
    }
    int scales4[kQK_K / kGroup];
    super_scale(kS, scales, b.d, scales4);  // all 0 when every group scale is (the rest stays written)
    for (int ib = 0; ib < kQK_K / kGroup; ib += 2) b.scales[ib / 2] = uint8_t(scales4[ib] | (scales4[ib + 1] << 4));
  }
}

void dequantize_row_iq3_s(const void* src, float* y, int64_t n) {
  const auto* blocks = static_cast<const BlockIQ3_S*>(src);
  for (int64_t ibl = 0; ibl < n / kQK_K; ++ibl) {
    const BlockIQ3_S& b = blocks[ibl];
    const float d = from_fp16(b.d);
    for (int ib = 0; ib < kQK_K / kGroup; ++ib) {
      const float db = d * float(1 + 2 * ((b.scales[ib / 2] >> (4 * (ib % 2))) & 0xF));
      for (int k = 0; k < kQuads; ++k, y += 4) {
        const int index = b.qs[kQuads * ib + k] | (((b.qh[ib] >> k) & 1) << 8);
        const uint8_t signs = b.signs[kOctets * ib + k / 2];
        const uint32_t grid = kIq3sGrid[size_t(index)];
        for (int j = 0; j < 4; ++j) {
          y[j] = db * float((grid >> (8 * j)) & 0xFF) * ((signs >> (4 * (k % 2) + j)) & 1 ? -1.f : 1.f);
        }
      }
    }
  }
}

}  // namespace quantllm::ggml::detail
