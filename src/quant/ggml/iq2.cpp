// The 2-bit lattice formats IQ2_XXS (2.06 bits a weight), IQ2_XS (2.31) and IQ2_S (2.56): each run
// of 8 weights is a sign pattern times one point of a fixed codebook of 8-vectors with entries in
// {1, 3, 5} (kIq2xxsIndex / kIq2xsIndex / kIq2sIndex: 256, 512, 1024 points), times a 4-bit scale per
// 32 (IQ2_XXS) or 16 (IQ2_XS, IQ2_S) weights, times the fp16 super-block scale. See blocks.h.
//
// Quantizer as llama.cpp's quantize_row_iq2_{xxs,xs,s}_impl. Per sub-block: split off the signs
// (IQ2_XXS and IQ2_XS store 7 of 8 and need an even count of minus signs, so the least important
// weight of an odd group takes the wrong sign), then try a range of scales; at each, round every
// weight to a level 0..2 on its own and, where the 8 levels are no codebook point, take the best of
// the point's lattice neighbours (iq_lattice.h). Keep the trial with the best weighted least-squares
// fit, re-round against its scale, refit. Last, the sub-block scales become 4-bit multiples of
// max_scale / 31. IQ2_XXS and IQ2_XS need an importance matrix; IQ2_S weights by x^2 without one.
#include "quant/ggml/internal.h"  // first: its pragmas must precede every inline function

#include "core/error.h"
#include "quant/ggml/iq_grids.h"
#include "quant/ggml/iq_lattice.h"

#include <cmath>
#include <cstring>

namespace quantllm::ggml::detail {

namespace {

constexpr int kMaxLevel = 2;          // levels 0..2, positions 2·level + 1 = 1, 3, 5
constexpr float kIq2sMaxEps = 1e-8f;  // IQ2_S's own "all zero" threshold (llama.cpp's GROUP_MAX_EPS_IQ2_S)

// ---- shared pieces of the three quantizers --------------------------------------------------------

// The largest of n values, starting from the first (a NaN later in the row is kept, as llama.cpp's MAX).
float max_of(const float* v, int n) {
  float m = v[0];
  for (int i = 1; i < n; ++i) m = m > v[i] ? m : v[i];
  return m;
}

// The level code of 8 levels (2 bits each, weight i in bits 2i, 2i+1).
uint32_t code_of(const int8_t* L) {
  uint32_t u = 0;
  for (int i = 0; i < 8; ++i) u |= uint32_t(L[i]) << (2 * i);
  return u;
}

// Rounds 8 weights against the inverse scale id to levels in L; if they are no codebook point,
// replaces them by the best neighbour under `scale` (weights waux). Returns whether they were a point.
bool round_group(const Lattice& lat, const float* xval, const float* waux, float id, float scale, int8_t* L) {
  for (int i = 0; i < 8; ++i) {
    const int l = nearest_int(0.5f * (id * xval[i] - 1));
    L[i] = int8_t(l < 0 ? 0 : (l > kMaxLevel ? kMaxLevel : l));
  }
  const uint32_t u = code_of(L);
  if (lat.point(u) >= 0) return true;
  lat.best_neighbour(u, xval, waux, scale, L);
  return false;
}

// One sub-block of `groups` runs of 8, as the quantizers see it.
struct SubBlock {
  const Lattice& lat;
  int groups;
  const float* xval;
  const float* w;
  const float* waux;  // sqrt(w): the neighbour search's weights
};

// Tries the inverse scales (5 + t/10) / ref, t in [-trials, trials], and keeps the one whose rounding
// fits best (strictly better than the previous best, starting from 0): its levels go to L, whether
// each group was a codebook point to on_grid (if given), its least-squares scale is returned.
// `scale` is returned (and L, on_grid left alone) if no trial is taken.
float best_trial(const SubBlock& b, float ref, int trials, float scale, int8_t* L, bool* on_grid) {
  int8_t Laux[32];
  bool on_aux[4];
  float best = 0;
  const int n = 8 * b.groups;
  for (int t = -trials; t <= trials; ++t) {
    const float id = (float(2 * kMaxLevel + 1) + float(t) * 0.1f) / ref;
    const float this_scale = 1 / id;
    for (int k = 0; k < b.groups; ++k)
      on_aux[k] = round_group(b.lat, b.xval + 8 * k, b.waux + 8 * k, id, this_scale, Laux + 8 * k);
    float sumqx, sumq2;
    fit_sums(Laux, b.xval, b.w, n, sumqx, sumq2);
    if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
      scale = sumqx / sumq2;
      best = scale * sumqx;
      std::memcpy(L, Laux, size_t(n));
      if (on_grid) std::memcpy(on_grid, on_aux, size_t(b.groups) * sizeof(bool));
    }
  }
  return scale;
}

// Re-rounds the groups with redo[k] against `scale` and returns the least-squares scale of all of L
// (`scale` itself if that is undefined).
float refit(const SubBlock& b, float scale, const bool* redo, int8_t* L) {
  const float id = 1 / scale;
  for (int k = 0; k < b.groups; ++k)
    if (redo[k]) round_group(b.lat, b.xval + 8 * k, b.waux + 8 * k, id, scale, L + 8 * k);
  float sumqx, sumq2;
  fit_sums(L, b.xval, b.w, 8 * b.groups, sumqx, sumq2);
  return sumq2 > 0 ? sumqx / sumq2 : scale;
}

// The codebook index of the levels of group L (which the search guarantees to be a point).
int point_of(const Lattice& lat, const int8_t* L) {
  const uint32_t u = code_of(L);
  const int p = lat.point(u);
  QL_ASSERT(p >= 0, "IQ2: levels {:#x} are no codebook point", u);
  return p;
}

// The 4-bit code of a sub-block scale against the inverse super-block scale id: scale ≈ d (2 s + 1) / 2.
int scale_code(float id, float scale) {
  const int l = nearest_int(0.5f * (id * scale - 1));
  return l < 0 ? 0 : (l > 15 ? 15 : l);
}

// The scale and levels of one 16-weight sub-block of IQ2_XS / IQ2_S whose largest xval is max (not
// all zero): 19 trial scales around max / 5, then the groups that were off the codebook re-rounded.
float solve16(const SubBlock& b, float max, int8_t* L) {
  std::memset(L, 0, 16);
  bool on_grid[2] = {true, true};
  float scale = best_trial(b, max, 9, max / float(2 * kMaxLevel + 1), L, on_grid);
  const bool redo[2] = {!on_grid[0], !on_grid[1]};
  if ((redo[0] || redo[1]) && scale > 0) scale = refit(b, scale, redo, L);
  return scale;
}

// Sub-block scales, their 4-bit codes against max_scale / 31 in the nibbles of scales[] (sub-block
// 2j low, 2j + 1 high), for IQ2_XS and IQ2_S. Returns d = max_scale / 31 (0: all sub-blocks zero).
float pack_scales16(const float* scales, uint8_t* packed) {
  float max_scale = 0;
  for (int ib = 0; ib < kQK_K / 16; ++ib) max_scale = max_scale > scales[ib] ? max_scale : scales[ib];
  if (max_scale == 0) return 0;
  const float d = max_scale / 31;
  const float id = 1 / d;
  for (int ib = 0; ib < kQK_K / 16; ib += 2)
    packed[ib / 2] = uint8_t(scale_code(id, scales[ib]) | (scale_code(id, scales[ib + 1]) << 4));
  return d;
}

// Makes a negative scale positive by flipping the sign patterns (7 or 8 bits). Never seen in
// practice (the fits see non-negative data), kept for llama.cpp's behaviour.
float make_positive(float scale, uint8_t* signs, int groups, uint8_t mask) {
  if (!(scale < 0)) return scale;
  for (int k = 0; k < groups; ++k) signs[k] = uint8_t(~signs[k] & mask);
  return -scale;
}

// The 8 weights of one codebook point (byte j: position of weight j) times dl, with sign bits `signs`.
void decode8(uint64_t point, uint8_t signs, float dl, float* y) {
  for (int j = 0; j < 8; ++j) {
    const float g = float((point >> (8 * j)) & 0xFF);
    y[j] = dl * g * ((signs >> j) & 1 ? -1.f : 1.f);
  }
}

// d (0.5 + s) / 4: the scale of a sub-block with 4-bit code s.
float sub_scale(float d, unsigned s) { return d * (0.5f + float(s)) * 0.25f; }

}  // namespace

// ---- IQ2_XXS: 32-weight sub-blocks, 8-bit indices, scale and signs packed in one u32 -------------

void quantize_row_iq2_xxs(const float* x, void* dst, int64_t n, const float* imatrix) {
  QL_ASSERT(imatrix != nullptr, "IQ2_XXS needs an importance matrix");
  const Lattice& lat = lattice(GgmlType::IQ2_XXS);
  auto* y = static_cast<BlockIQ2_XXS*>(dst);
  float w[32], waux[32], xval[32], scales[kQK_K / 32];
  int8_t L[32];
  uint8_t signs[4];
  for (int64_t ibl = 0; ibl < n / kQK_K; ++ibl, x += kQK_K) {
    uint32_t q[2 * (kQK_K / 32)] = {};  // per sub-block: the 4 indices; the signs (and later the scale)
    const float sigma2 = sum_squares(x, kQK_K) / float(kQK_K);
    float max_scale = 0;
    for (int ib = 0; ib < kQK_K / 32; ++ib) {
      const float* xb = x + 32 * ib;
      fit_weights(xb, imatrix + ibl * kQK_K + 32 * ib, sigma2, 32, w);
      for (int i = 0; i < 32; ++i) waux[i] = std::sqrt(w[i]);
      split_signs(xb, w, 4, true, xval, signs);
      scales[ib] = 0;
      if (max_of(xval, 32) < kGroupMaxEps) continue;
      // Start from the positive-grid fit of llama.cpp's make_qp_quants (levels 0..3), whose largest
      // level sets the reference of 13 trial scales; then re-round all four groups.
      float scale = fit_positive(32, kMaxLevel + 2, xval, reinterpret_cast<uint8_t*>(L), w);
      const float eff_max = scale * float(kMaxLevel + 1);
      if (eff_max <= 0) continue;
      const SubBlock b{lat, 4, xval, w, waux};
      scale = best_trial(b, eff_max, 6, scale, L, nullptr);
      if (scale > 0) {
        const bool all[4] = {true, true, true, true};
        scale = refit(b, scale, all, L);
      }
      scale = make_positive(scale, signs, 4, 127);
      for (int k = 0; k < 4; ++k) {
        q[2 * ib] |= uint32_t(point_of(lat, L + 8 * k)) << (8 * k);
        q[2 * ib + 1] |= uint32_t(signs[k]) << (7 * k);
      }
      QL_ASSERT(scale >= 0, "IQ2_XXS: negative sub-block scale");
      scales[ib] = scale;
      max_scale = max_scale > scale ? max_scale : scale;
    }
    BlockIQ2_XXS& out = y[ibl];
    if (max_scale == 0) {
      out.d = to_fp16(0.f);
      std::memset(out.qs, 0, sizeof out.qs);
      continue;
    }
    const float d = max_scale / 31;
    out.d = to_fp16(d);
    const float id = 1 / d;
    for (int ib = 0; ib < kQK_K / 32; ++ib) q[2 * ib + 1] |= uint32_t(scale_code(id, scales[ib])) << 28;
    std::memcpy(out.qs, q, sizeof out.qs);
  }
}

void dequantize_row_iq2_xxs(const void* src, float* y, int64_t n) {
  const auto* blocks = static_cast<const BlockIQ2_XXS*>(src);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float d = from_fp16(blocks[i].d);
    for (int ib = 0; ib < kQK_K / 32; ++ib) {
      uint32_t aux[2];
      std::memcpy(aux, blocks[i].qs + 4 * ib, sizeof aux);
      const float db = sub_scale(d, aux[1] >> 28);
      for (int k = 0; k < 4; ++k, y += 8)
        decode8(kIq2xxsGrid[(aux[0] >> (8 * k)) & 0xFF], kIq2Signs[(aux[1] >> (7 * k)) & 127], db, y);
    }
  }
}

// ---- IQ2_XS: 16-weight sub-blocks, u16 per 8 weights (9-bit index, 7 sign bits) -------------------

void quantize_row_iq2_xs(const float* x, void* dst, int64_t n, const float* imatrix) {
  QL_ASSERT(imatrix != nullptr, "IQ2_XS needs an importance matrix");
  const Lattice& lat = lattice(GgmlType::IQ2_XS);
  auto* y = static_cast<BlockIQ2_XS*>(dst);
  float w[16], waux[16], xval[16], scales[kQK_K / 16];
  int8_t L[16];
  uint8_t signs[2];
  for (int64_t ibl = 0; ibl < n / kQK_K; ++ibl, x += kQK_K) {
    BlockIQ2_XS& out = y[ibl];
    std::memset(&out, 0, sizeof out);
    const float sigma2 = sum_squares(x, kQK_K) / float(kQK_K);
    for (int ib = 0; ib < kQK_K / 16; ++ib) {
      const float* xb = x + 16 * ib;
      fit_weights(xb, imatrix + ibl * kQK_K + 16 * ib, sigma2, 16, w);
      for (int i = 0; i < 16; ++i) waux[i] = std::sqrt(w[i]);
      split_signs(xb, w, 2, true, xval, signs);
      const float max = max_of(xval, 16);
      scales[ib] = 0;
      if (max < kGroupMaxEps) continue;  // an all-zero sub-block stores nothing
      float scale = solve16(SubBlock{lat, 2, xval, w, waux}, max, L);
      scale = make_positive(scale, signs, 2, 127);
      for (int k = 0; k < 2; ++k)
        out.qs[2 * ib + k] = uint16_t(point_of(lat, L + 8 * k) | (signs[k] << 9));
      QL_ASSERT(scale >= 0, "IQ2_XS: negative sub-block scale");
      scales[ib] = scale;
    }
    const float d = pack_scales16(scales, out.scales);
    if (d == 0) {
      std::memset(out.qs, 0, sizeof out.qs);
      continue;
    }
    out.d = to_fp16(d);
  }
}

void dequantize_row_iq2_xs(const void* src, float* y, int64_t n) {
  const auto* blocks = static_cast<const BlockIQ2_XS*>(src);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const BlockIQ2_XS& b = blocks[i];
    const float d = from_fp16(b.d);
    for (int ib = 0; ib < kQK_K / 32; ++ib) {
      const float db[2] = {sub_scale(d, b.scales[ib] & 0xF), sub_scale(d, b.scales[ib] >> 4)};
      for (int k = 0; k < 4; ++k, y += 8) {
        const uint16_t q = b.qs[4 * ib + k];
        decode8(kIq2xsGrid[q & 511], kIq2Signs[q >> 9], db[k / 2], y);
      }
    }
  }
}

// ---- IQ2_S: 16-weight sub-blocks, 10-bit indices, free sign bytes ---------------------------------

void quantize_row_iq2_s(const float* x, void* dst, int64_t n, const float* imatrix) {
  const Lattice& lat = lattice(GgmlType::IQ2_S);
  auto* y = static_cast<BlockIQ2_S*>(dst);
  float w[16], waux[16], xval[16], scales[kQK_K / 16];
  int8_t L[16];
  uint8_t signs[2];
  for (int64_t ibl = 0; ibl < n / kQK_K; ++ibl, x += kQK_K) {
    BlockIQ2_S& out = y[ibl];
    std::memset(&out, 0, sizeof out);
    const float sigma2 = 2 * sum_squares(x, kQK_K) / float(kQK_K);
    for (int ib = 0; ib < kQK_K / 16; ++ib) {
      const float* xb = x + 16 * ib;
      if (imatrix) {
        fit_weights(xb, imatrix + ibl * kQK_K + 16 * ib, sigma2, 16, w);
      } else {
        for (int i = 0; i < 16; ++i) w[i] = 0.25f * sigma2 + xb[i] * xb[i];
      }
      for (int i = 0; i < 16; ++i) waux[i] = std::sqrt(w[i]);
      split_signs(xb, w, 2, false, xval, signs);
      const float max = max_of(xval, 16);
      scales[ib] = 0;
      if (max < kIq2sMaxEps) continue;
      float scale = solve16(SubBlock{lat, 2, xval, w, waux}, max, L);
      scale = make_positive(scale, signs, 2, 0xFF);
      for (int k = 0; k < 2; ++k) {
        const int i8 = 2 * ib + k, p = point_of(lat, L + 8 * k);
        out.qs[i8] = uint8_t(p & 0xFF);
        out.qh[i8 / 4] = uint8_t(out.qh[i8 / 4] | ((p >> 8) << (2 * (i8 % 4))));
        out.qs[kQK_K / 8 + i8] = signs[k];
      }
      QL_ASSERT(scale >= 0, "IQ2_S: negative sub-block scale");
      scales[ib] = scale;
    }
    const float d = pack_scales16(scales, out.scales);
    // The stored super-block scale is shrunk by 0.9875 (the codes above are against the unshrunk one).
    if (d != 0) out.d = to_fp16(d * 0.9875f);
  }
}

void dequantize_row_iq2_s(const void* src, float* y, int64_t n) {
  const auto* blocks = static_cast<const BlockIQ2_S*>(src);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const BlockIQ2_S& b = blocks[i];
    const float d = from_fp16(b.d);
    const uint8_t* signs = b.qs + kQK_K / 8;
    for (int ib = 0; ib < kQK_K / 32; ++ib) {
      const float db[2] = {sub_scale(d, b.scales[ib] & 0xF), sub_scale(d, b.scales[ib] >> 4)};
      for (int k = 0; k < 4; ++k, y += 8) {
        const int p = b.qs[4 * ib + k] | (((b.qh[ib] >> (2 * k)) & 3) << 8);
        decode8(kIq2sGrid[size_t(p)], signs[4 * ib + k], db[k / 2], y);
      }
    }
  }
}

}  // namespace quantllm::ggml::detail
