// The 1.5-bit lattice formats IQ1_S and IQ1_M: every 8 weights are one point of the 2048-point
// codebook kIq1sGrid (levels −1, 0, 1 each), moved by a shift of ±kIq1Delta and multiplied by a
// 3-bit odd sub-block scale (2s + 1) times an fp16 super-block scale. IQ1_S has a scale and a shift
// sign per 32 weights; IQ1_M a scale per 16 and a shift sign per 8 (layouts in blocks.h).
//
// The quantizers follow llama.cpp's quantize_row_iq1_s_impl / quantize_row_iq1_m_impl. Per sub-block
// the three shifted levels (−1, 0, 1) + δ are fitted exactly: the weights are sorted, and every pair of
// cut points (i1 ≤ i2) splitting them into levels 0 | 1 | 2 is scored by weighted least squares from
// prefix sums, for each choice of shift signs. Each 8-weight group whose levels are not a grid point
// moves to its nearest grid neighbour (iq_lattice.h) under that scale; then the scale is refitted.
// The sub-block scales are rounded against max/15, and the super-block scale gets a fudge factor
// (IQ1_M: after a weighted refit against the rounded sub-block scales).
// IQ1_S needs an importance matrix; IQ1_M uses x² as weights without one.
#include "quant/ggml/internal.h"  // first: its pragmas must precede every inline function

#include "core/error.h"
#include "quant/ggml/iq_grids.h"
#include "quant/ggml/iq_lattice.h"
#include "quant/ggml/types.h"

#include <cfloat>
#include <cmath>
#include <cstring>

namespace quantllm::ggml::detail {

namespace {

constexpr int kSubS = 32;  // IQ1_S: weights per scale and shift
constexpr int kSubM = 16;  // IQ1_M: weights per scale (the shift is per 8)
constexpr int kGroup = 8;  // weights per grid point

// A sub-block whose largest |x| is below this is stored as zero (llama.cpp's GROUP_MAX_EPS_IQ1_S/_M).
constexpr float kEpsS = 1e-12f;
constexpr float kEpsM = 1e-7f;

// The three levels of a group with the shift up (+δ) or down (−δ).
constexpr float kUp[3] = {-1 + kIq1Delta, kIq1Delta, 1 + kIq1Delta};
constexpr float kDown[3] = {-1 - kIq1Delta, -kIq1Delta, 1 - kIq1Delta};

// ---- sorting and weights ------------------------------------------------------------------------

// Sorts order[0..n) by x[order[.]] ascending, equal values keeping their order. This is the top-down
// merge sort of glibc's qsort that llama.cpp's sort runs on (halves n/2 and n − n/2, the left element
// taken unless it compares greater), so even NaN, which compares equal to everything, sorts alike.
void merge_sort(const float* x, int* order, int n, int* tmp) {
  if (n <= 1) return;
  const int n1 = n / 2, n2 = n - n1;
  merge_sort(x, order, n1, tmp);
  merge_sort(x, order + n1, n2, tmp);
  int a = 0, b = n1, k = 0;
  while (a < n1 && b < n) tmp[k++] = x[order[a]] > x[order[b]] ? order[b++] : order[a++];
  while (a < n1) tmp[k++] = order[a++];
  std::memcpy(order, tmp, sizeof(int) * size_t(k));  // the rest of the right half is in place
}

// Indices 0..n-1 of x (n <= 32) by ascending value.
void sort_indices(const float* x, int n, int* order) {
  int tmp[kSubS];
  for (int j = 0; j < n; ++j) order[j] = j;
  merge_sort(x, order, n, tmp);
}

// Largest |x| as llama.cpp's MAX macro takes it (a NaN is dropped by the next comparison).
float abs_max(const float* x, int n) {
  float m = std::fabs(x[0]);
  for (int j = 1; j < n; ++j) m = m > std::fabs(x[j]) ? m : std::fabs(x[j]);
  return m;
}

// 2 · mean x² of a super-block.
float sigma2_of(const float* x) { return 2 * sum_squares(x, kQK_K) / float(kQK_K); }

// ---- grid points --------------------------------------------------------------------------------

// Level 0..2 of weight i of grid point k.
int level(const Lattice& lat, int k, int i) { return (lat.pos[size_t(k * kGroup + i)] - 1) / 2; }

// llama.cpp's iq1_find_best_neighbour2: among the neighbours of level code `code`, the point that
// minimizes Σ w (scale · v[level] − x)² (the first of equals); its levels go to L.
int nearest_neighbour(const Lattice& lat, uint32_t code, const float* x, const float* w, float scale,
                      const float* v, int8_t* L) {
  float best = FLT_MAX;
  int best_k = -1;
  for (uint16_t k : lat.neighbours(code)) {
    float d2 = 0;
    for (int i = 0; i < kGroup; ++i) {
      const float diff = scale * v[level(lat, k, i)] - x[i];
      d2 += w[i] * diff * diff;
    }
    if (d2 < best) {
      best = d2;
      best_k = k;
    }
  }
  QL_ASSERT(best_k >= 0, "IQ1: no grid neighbour of code {} beats FLT_MAX (NaN input?)", code);
  for (int i = 0; i < kGroup; ++i) L[i] = int8_t(level(lat, best_k, i));
  return best_k;
}

// The grid points of the ngroups groups of a sub-block with levels L (group g shifted by v[g]),
// moving the groups off the grid to their nearest neighbour under `scale`; then, if any moved, the
// least-squares scale of the points found (kept when positive). Writes the indices, returns the scale.
float snap_to_grid(const Lattice& lat, const float* x, const float* w, int8_t* L, int ngroups,
                   const float* const* v, float scale, uint16_t* index) {
  bool all_on_grid = true;
  for (int g = 0; g < ngroups; ++g) {
    uint32_t code = 0;
    for (int i = 0; i < kGroup; ++i) code |= uint32_t(L[g * kGroup + i]) << (2 * i);
    int k = lat.point(code);
    if (k < 0) {
      all_on_grid = false;
      k = nearest_neighbour(lat, code, x + g * kGroup, w + g * kGroup, scale, v[g], L + g * kGroup);
    }
    index[g] = uint16_t(k);
  }
  if (all_on_grid) return scale;
  float sumqx = 0, sumq2 = 0;
  for (int g = 0; g < ngroups; ++g) {
    for (int i = 0; i < kGroup; ++i) {
      const float wi = w[g * kGroup + i], q = v[g][level(lat, index[g], i)];
      sumqx += wi * q * x[g * kGroup + i];
      sumq2 += wi * q * q;
    }
  }
  return sumqx > 0 && sumq2 > 0 ? sumqx / sumq2 : scale;
}

// The levels of a split: the weights in sorted positions [0, i1) get level 0, [i1, i2) 1, the rest 2.
void split_levels(const int* order, int n, int i1, int i2, int8_t* L) {
  for (int j = 0; j < n; ++j) L[order[j]] = int8_t(j < i1 ? 0 : j < i2 ? 1 : 2);
}

// ---- IQ1_S --------------------------------------------------------------------------------------

// One sub-block of 32 fitted: scale (≥ 0; 0 for a zero block), shift (+1 up, −1 down), grid indices.
struct FitS {
  float scale = 0;
  int shift = 1;
  uint16_t index[kSubS / kGroup] = {};
  bool stored = false;  // false: the block is left zero
};

FitS fit_block_s(const Lattice& lat, const float* x, const float* w) {
  FitS f;
  const float max = abs_max(x, kSubS);
  if (max < kEpsS) return f;
  int order[kSubS];
  sort_indices(x, kSubS, order);
  float sx[kSubS + 1], sw[kSubS + 1];  // prefix sums of w·x and w in sorted order
  sx[0] = sw[0] = 0;
  for (int j = 0; j < kSubS; ++j) {
    sx[j + 1] = sx[j] + w[order[j]] * x[order[j]];
    sw[j + 1] = sw[j] + w[order[j]];
  }
  float best = -FLT_MAX, scale = max;
  int b1 = -1, b2 = -1, shift = 0;
  for (int i1 = 0; i1 <= kSubS; ++i1) {
    for (int i2 = i1; i2 <= kSubS; ++i2) {
      for (int s : {1, -1}) {
        const float* v = s == 1 ? kUp : kDown;
        const float sumqx = (sx[i1] - sx[0]) * v[0] + (sx[i2] - sx[i1]) * v[1] + (sx[kSubS] - sx[i2]) * v[2];
        const float sumq2 =
            (sw[i1] - sw[0]) * v[0] * v[0] + (sw[i2] - sw[i1]) * v[1] * v[1] + (sw[kSubS] - sw[i2]) * v[2] * v[2];
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
          scale = sumqx / sumq2;
          best = scale * sumqx;
          b1 = i1;
          b2 = i2;
          shift = s;
        }
      }
    }
  }
  if (b1 < 0 || b2 < 0 || shift == 0) return f;
  int8_t L[kSubS];
  split_levels(order, kSubS, b1, b2, L);
  if (scale < 0) {  // a negative scale is the mirrored split with the opposite shift
    for (int8_t& l : L) l = int8_t(2 - l);
    scale = -scale;
    shift = -shift;
  }
  const float* v = shift == 1 ? kUp : kDown;
  const float* vs[kSubS / kGroup] = {v, v, v, v};
  f.scale = snap_to_grid(lat, x, w, L, kSubS / kGroup, vs, scale, f.index);
  QL_ASSERT(f.scale >= 0, "IQ1_S: negative block scale {}", f.scale);
  f.shift = shift;
  f.stored = true;
  return f;
}

// 3-bit index s of a sub-block scale against the super-block unit d = 1/id: scale ≈ d (2s + 1).
int sub_scale(float id, float scale) {
  const int l = nearest_int(0.5f * (id * scale - 1));
  return l < 0 ? 0 : l > 7 ? 7 : l;
}

void quantize_superblock_s(const Lattice& lat, const float* x, const float* qw, BlockIQ1_S& b) {
  b.d = to_fp16(0.f);
  std::memset(b.qs, 0, sizeof b.qs);
  std::memset(b.qh, 0, sizeof b.qh);
  const float sigma2 = sigma2_of(x);
  float scales[kQK_K / kSubS], w[kSubS];
  int shifts[kQK_K / kSubS];
  float max_scale = 0;
  for (int ib = 0; ib < kQK_K / kSubS; ++ib) {
    fit_weights(x + ib * kSubS, qw + ib * kSubS, sigma2, kSubS, w);
    const FitS f = fit_block_s(lat, x + ib * kSubS, w);
    scales[ib] = f.scale;
    shifts[ib] = f.shift;
    if (!f.stored) continue;
    uint16_t h = 0;
    for (int g = 0; g < kSubS / kGroup; ++g) {
      b.qs[ib * (kSubS / kGroup) + g] = uint8_t(f.index[g] & 255);
      h = uint16_t(h | ((f.index[g] >> 8) << (3 * g)));
    }
    b.qh[ib] = h;
    max_scale = max_scale > f.scale ? max_scale : f.scale;
  }
  if (max_scale == 0) return;
  const float d = max_scale / 15;
  b.d = to_fp16(d * 1.125f);  // llama.cpp's empirical fudge factor
  const float id = 1 / d;
  for (int ib = 0; ib < kQK_K / kSubS; ++ib) {
    const int l = sub_scale(id, scales[ib]) | (shifts[ib] == -1 ? 8 : 0);
    b.qh[ib] = uint16_t(b.qh[ib] | (l << 12));
  }
}

// ---- IQ1_M --------------------------------------------------------------------------------------

// Shift choice k of an IQ1_M sub-block: bit 1 = first group down, bit 0 = second group down (llama.cpp's
// order: 0 = (+, +), 1 = (+, −), 2 = (−, +), 3 = (−, −)).
const float* shifted_levels(int k, int group) { return ((group == 0 ? k >> 1 : k) & 1) ? kDown : kUp; }

struct FitM {
  float scale = 0;
  int shifts = 0;
  uint16_t index[kSubM / kGroup] = {};
  bool stored = false;
};

// The best split and shift choice of a sub-block of 16, from prefix sums kept per half (each half has
// its own shift). Since v[0] − v[1] = v[1] − v[2] = −1 for either shift, Σ w·x·v of a split is
// T·v[2] − px[i1] − px[i2] and Σ w·v² is W·v[2]² + pw[i1]·(v[0]² − v[1]²) + pw[i2]·(v[1]² − v[2]²).
FitM search_m(const float* x, const float* w, const int* order, float max, int& b1, int& b2) {
  float px[2][kSubM + 1], pw[2][kSubM + 1];
  px[0][0] = px[1][0] = pw[0][0] = pw[1][0] = 0;
  for (int j = 0; j < kSubM; ++j) {
    const int i = order[j], h = i < kSubM / 2 ? 0 : 1;
    px[h][j + 1] = px[h][j] + w[i] * x[i];
    px[1 - h][j + 1] = px[1 - h][j];
    pw[h][j + 1] = pw[h][j] + w[i];
    pw[1 - h][j + 1] = pw[1 - h][j];
  }
  const float tx[2] = {px[0][kSubM], px[1][kSubM]}, tw[2] = {pw[0][kSubM], pw[1][kSubM]};
  const float up2 = kUp[2], down2 = kDown[2];
  const float cu1 = kUp[0] * kUp[0] - kUp[1] * kUp[1], cu2 = kUp[1] * kUp[1] - kUp[2] * kUp[2];
  const float cd1 = kDown[0] * kDown[0] - kDown[1] * kDown[1], cd2 = kDown[1] * kDown[1] - kDown[2] * kDown[2];
  FitM f;
  float best = -FLT_MAX, scale = max;
  int best_k = -1;
  b1 = b2 = -1;
  for (int i1 = 0; i1 <= kSubM; ++i1) {
    for (int i2 = i1; i2 <= kSubM; ++i2) {
      float qx_u[2], qx_d[2], q2_u[2], q2_d[2];
      for (int h = 0; h < 2; ++h) {
        const float s = px[h][i1] + px[h][i2];
        qx_u[h] = tx[h] * up2 - s;
        qx_d[h] = tx[h] * down2 - s;
        q2_u[h] = tw[h] * up2 * up2 + pw[h][i1] * cu1 + pw[h][i2] * cu2;
        q2_d[h] = tw[h] * down2 * down2 + pw[h][i1] * cd1 + pw[h][i2] * cd2;
      }
      const float sumqx[4] = {qx_u[0] + qx_u[1], qx_u[0] + qx_d[1], qx_d[0] + qx_u[1], qx_d[0] + qx_d[1]};
      const float sumq2[4] = {q2_u[0] + q2_u[1], q2_u[0] + q2_d[1], q2_d[0] + q2_u[1], q2_d[0] + q2_d[1]};
      for (int k = 0; k < 4; ++k) {
        if (sumq2[k] > 0 && sumqx[k] * sumqx[k] > best * sumq2[k]) {
          scale = sumqx[k] / sumq2[k];
          best = scale * sumqx[k];
          b1 = i1;
          b2 = i2;
          best_k = k;
        }
      }
    }
  }
  f.scale = scale;
  f.shifts = best_k;
  return f;
}

FitM fit_block_m(const Lattice& lat, const float* x, const float* w) {
  FitM none;
  const float max = abs_max(x, kSubM);
  if (max < kEpsM) return none;
  int order[kSubM];
  sort_indices(x, kSubM, order);
  int b1, b2;
  FitM f = search_m(x, w, order, max, b1, b2);
  if (b1 < 0 || b2 < 0 || f.shifts < 0) return none;
  int8_t L[kSubM];
  split_levels(order, kSubM, b1, b2, L);
  if (f.scale < 0) {  // mirrored split, both shifts flipped
    for (int8_t& l : L) l = int8_t(2 - l);
    f.scale = -f.scale;
    f.shifts = 3 - f.shifts;
  }
  const float* vs[kSubM / kGroup] = {shifted_levels(f.shifts, 0), shifted_levels(f.shifts, 1)};
  f.scale = snap_to_grid(lat, x, w, L, kSubM / kGroup, vs, f.scale, f.index);
  QL_ASSERT(f.scale >= 0, "IQ1_M: negative block scale {}", f.scale);
  f.stored = true;
  return f;
}

// The qh bits of IQ1_M's shift choice k: 0x08 first group down, 0x80 second group down.
uint8_t shift_bits(int k) { return uint8_t(((k >> 1) & 1 ? 0x08 : 0) | (k & 1 ? 0x80 : 0)); }

// Grid index of group g (0, 1) of IQ1_M sub-block ib.
int index_m(const BlockIQ1_M& b, int ib, int g) { return b.qs[2 * ib + g] | ((b.qh[ib] << (8 - 4 * g)) & 0x700); }

void quantize_superblock_m(const Lattice& lat, const float* x, const float* qw, BlockIQ1_M& b) {
  std::memset(&b, 0, sizeof b);
  const float sigma2 = sigma2_of(x);
  float scales[kQK_K / kSubM], w[kSubM];
  int shifts[kQK_K / kSubM];
  float max_scale = 0;
  for (int ib = 0; ib < kQK_K / kSubM; ++ib) {
    fit_weights(x + ib * kSubM, qw ? qw + ib * kSubM : nullptr, sigma2, kSubM, w);
    const FitM f = fit_block_m(lat, x + ib * kSubM, w);
    scales[ib] = f.scale;
    shifts[ib] = f.shifts;
    if (!f.stored) continue;
    b.qs[2 * ib] = uint8_t(f.index[0] & 255);
    b.qs[2 * ib + 1] = uint8_t(f.index[1] & 255);
    b.qh[ib] = uint8_t((f.index[0] >> 8) | ((f.index[1] >> 8) << 4));
    max_scale = max_scale > f.scale ? max_scale : f.scale;
  }
  if (max_scale == 0) return;
  // Sub-block scales against max/15, then the super-block scale refitted by weighted least squares
  // against the rounded sub-block scales and the chosen points.
  uint16_t sc[4] = {0, 0, 0, 0};
  float d = max_scale / 15;
  const float id = 1 / d;
  float sumqx = 0, sumq2 = 0;
  for (int ib = 0; ib < kQK_K / kSubM; ++ib) {
    const int l = sub_scale(id, scales[ib]);
    sc[ib / 4] = uint16_t(sc[ib / 4] | (l << (3 * (ib % 4))));
    b.qh[ib] = uint8_t(b.qh[ib] | shift_bits(shifts[ib]));
    const float* xb = x + ib * kSubM;
    fit_weights(xb, qw ? qw + ib * kSubM : nullptr, sigma2, kSubM, w);
    for (int g = 0; g < kSubM / kGroup; ++g) {
      const float* v = shifted_levels(shifts[ib], g);
      const int k = index_m(b, ib, g);
      for (int i = 0; i < kGroup; ++i) {
        const float wi = w[g * kGroup + i], q = v[level(lat, k, i)] * float(2 * l + 1);
        sumqx += wi * q * xb[g * kGroup + i];
        sumq2 += wi * q * q;
      }
    }
  }
  if (sumq2 > 0) d = sumqx / sumq2;
  const uint16_t dh = to_fp16(d * 1.1125f);  // llama.cpp's empirical fudge factor
  for (int i = 0; i < 4; ++i) {
    sc[i] = uint16_t(sc[i] | (((dh >> (4 * i)) & 0xF) << 12));
    b.scales[2 * i] = uint8_t(sc[i] & 0xFF);
    b.scales[2 * i + 1] = uint8_t(sc[i] >> 8);
  }
}

// The four u16 of IQ1_M's scales (little-endian bytes).
void scale_words(const BlockIQ1_M& b, uint16_t* sc) {
  for (int i = 0; i < 4; ++i) sc[i] = uint16_t(b.scales[2 * i] | (b.scales[2 * i + 1] << 8));
}

// Weight j of grid point k: −1, 0 or 1.
float grid_value(int k, int j) { return float(int8_t(uint8_t(kIq1sGrid[size_t(k)] >> (8 * j)))); }

}  // namespace

void quantize_row_iq1_s(const float* x, void* dst, int64_t n, const float* imatrix) {
  QL_ASSERT(imatrix != nullptr, "IQ1_S needs an importance matrix");
  const Lattice& lat = lattice(GgmlType::IQ1_S);
  auto* y = static_cast<BlockIQ1_S*>(dst);
  for (int64_t i = 0; i < n / kQK_K; ++i) quantize_superblock_s(lat, x + i * kQK_K, imatrix + i * kQK_K, y[i]);
}

void dequantize_row_iq1_s(const void* src, float* y, int64_t n) {
  const auto* blocks = static_cast<const BlockIQ1_S*>(src);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const BlockIQ1_S& b = blocks[i];
    const float d = from_fp16(b.d);
    for (int ib = 0; ib < kQK_K / kSubS; ++ib) {
      const int qh = b.qh[ib];
      const float dl = d * float(2 * ((qh >> 12) & 7) + 1);
      const float delta = (qh & 0x8000) ? -kIq1Delta : kIq1Delta;
      for (int g = 0; g < kSubS / kGroup; ++g, y += kGroup) {
        const int k = b.qs[4 * ib + g] | (((qh >> (3 * g)) & 7) << 8);
        for (int j = 0; j < kGroup; ++j) y[j] = dl * (grid_value(k, j) + delta);
      }
    }
  }
}

void quantize_row_iq1_m(const float* x, void* dst, int64_t n, const float* imatrix) {
  const Lattice& lat = lattice(GgmlType::IQ1_M);
  auto* y = static_cast<BlockIQ1_M*>(dst);
  for (int64_t i = 0; i < n / kQK_K; ++i)
    quantize_superblock_m(lat, x + i * kQK_K, imatrix ? imatrix + i * kQK_K : nullptr, y[i]);
}

void dequantize_row_iq1_m(const void* src, float* y, int64_t n) {
  const auto* blocks = static_cast<const BlockIQ1_M*>(src);
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const BlockIQ1_M& b = blocks[i];
    uint16_t sc[4];
    scale_words(b, sc);
    const float d = from_fp16(uint16_t((sc[0] >> 12) | ((sc[1] >> 8) & 0xF0) | ((sc[2] >> 4) & 0xF00) | (sc[3] & 0xF000)));
    for (int ib = 0; ib < kQK_K / kSubM; ++ib) {
      const float dl = d * float(2 * ((sc[ib / 4] >> (3 * (ib % 4))) & 7) + 1);
      for (int g = 0; g < kSubM / kGroup; ++g, y += kGroup) {
        const float delta = (b.qh[ib] & (g == 0 ? 0x08 : 0x80)) ? -kIq1Delta : kIq1Delta;
        const int k = index_m(b, ib, g);
        for (int j = 0; j < kGroup; ++j) y[j] = dl * (grid_value(k, j) + delta);
      }
    }
  }
}

}  // namespace quantllm::ggml::detail
