// Scale search for the ggml formats: given a group of weights (and per-weight importances), find the
// grid step and the integer quants that llama.cpp would find.
//
// These are llama.cpp's make_qx_quants (rmse_type 1), make_q3_quants, make_qkx2/3_quants and
// make_qp_quants, reorganised: fit_symmetric and fit_affine evaluate several trial grids at once,
// one per SSE4.1 vector lane, and compute only the winning grid's quants; the weights are always
// passed in (callers without an imatrix pass x^2, which is what llama.cpp computes inline). What
// must not change, in every lane is the arithmetic: every sum accumulates in
// float, in index order, with the same association ((w*x)*l, (w*l)*l), integer quants converted to
// float where llama.cpp converts them, and the same strict comparisons deciding ties.
#include "quant/ggml/internal.h"

#include <algorithm>
#include <cassert>
#include <cmath>

#if defined(__SSE4_1__)
#include <immintrin.h>  // after internal.h, so that the intrinsics fall under its no-contraction pragma
#define QL_GGML_SSE41 1
#endif

namespace quantllm::ggml::detail {

namespace {

// Largest |x| and the signed value that has it (the first one on ties).
void signed_absmax(int n, const float* x, float& amax, float& max) {
  amax = 0;
  max = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
}

}  // namespace

float fit_symmetric(int n, int nmax, const float* x, const float* w, int8_t* L) {
  float amax, max;
  signed_absmax(n, x, amax, max);
  if (amax < kGroupMaxEps) {
    std::fill(L, L + n, int8_t(0));
    return 0.f;
  }
  // The starting grid maps the extreme weight to -nmax; 18 trial grids are slightly finer and
  // coarser (steps -9..9, step 0 being the starting grid). Grid t: q_i = clamp(round(iscale_t x_i))
  // and the weighted least-squares scale for those q. The trials do not depend on one another, so
  // all 19 are summed side by side (one per vector lane, each lane accumulating in index order
  // exactly as a grid-at-a-time loop would); then the grids are compared in llama.cpp's order, and
  // only the winner's quants are computed.
  constexpr int kGrids = 19, kStart = 9;
  constexpr int kLanes = 20;  // kGrids rounded up to whole vectors; the last lane repeats grid 18
  alignas(16) float iscales[kLanes], sumlx[kLanes], suml2[kLanes];
  for (int t = 0; t < kLanes; ++t) {
    const int step = std::min(t, kGrids - 1) - kStart;
    iscales[t] = -(float(nmax) + 0.1f * float(step)) / max;  // step 0: -nmax / max, bit for bit
  }
#if QL_GGML_SSE41
  constexpr int kVec = kLanes / 4;
  __m128 is[kVec], sx[kVec], s2[kVec];
  for (int v = 0; v < kVec; ++v) {
    is[v] = _mm_load_ps(iscales + 4 * v);
    sx[v] = _mm_setzero_ps();
    s2[v] = _mm_setzero_ps();
  }
  const __m128 magic = _mm_set1_ps(12582912.f);  // nearest_int, lane-wise
  const __m128i mant = _mm_set1_epi32(0x007fffff), bias = _mm_set1_epi32(0x00400000);
  const __m128i lo = _mm_set1_epi32(-nmax), hi = _mm_set1_epi32(nmax - 1);
  for (int i = 0; i < n; ++i) {
    const __m128 xi = _mm_set1_ps(x[i]);
    const __m128 wi = _mm_set1_ps(w[i]);
    const __m128 wx = _mm_set1_ps(w[i] * x[i]);
    for (int v = 0; v < kVec; ++v) {
      const __m128 shifted = _mm_add_ps(_mm_mul_ps(is[v], xi), magic);
      __m128i l = _mm_sub_epi32(_mm_and_si128(_mm_castps_si128(shifted), mant), bias);
      l = _mm_min_epi32(_mm_max_epi32(l, lo), hi);
      const __m128 fl = _mm_cvtepi32_ps(l);
      sx[v] = _mm_add_ps(sx[v], _mm_mul_ps(wx, fl));
      s2[v] = _mm_add_ps(s2[v], _mm_mul_ps(_mm_mul_ps(wi, fl), fl));
    }
  }
  for (int v = 0; v < kVec; ++v) {
    _mm_store_ps(sumlx + 4 * v, sx[v]);
    _mm_store_ps(suml2 + 4 * v, s2[v]);
  }
#else
  for (int t = 0; t < kGrids; ++t) {
    float slx = 0, sl2 = 0;
    for (int i = 0; i < n; ++i) {
      const float l = float(std::clamp(nearest_int(iscales[t] * x[i]), -nmax, nmax - 1));
      slx += w[i] * x[i] * l;
      sl2 += w[i] * l * l;
    }
    sumlx[t] = slx;
    suml2[t] = sl2;
  }
#endif
  int best_t = kStart;
  float scale = suml2[kStart] != 0 ? sumlx[kStart] / suml2[kStart] : 0.0f;
  float best = scale * sumlx[kStart];
  for (int t = 0; t < kGrids; ++t) {
    if (t == kStart) continue;
    if (suml2[t] > 0 && sumlx[t] * sumlx[t] > best * suml2[t]) {
      scale = sumlx[t] / suml2[t];
      best = scale * sumlx[t];
      best_t = t;
    }
  }
  const float iscale = iscales[best_t];
  for (int i = 0; i < n; ++i) L[i] = int8_t(std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1) + nmax);
  return scale;
}

float fit_symmetric_refined(int n, int nmax, const float* x, int8_t* L) {
  float amax, max;
  signed_absmax(n, x, amax, max);
  if (amax < kGroupMaxEps) {
    std::fill(L, L + n, int8_t(0));
    return 0.f;
  }
  const float iscale = float(-nmax) / max;
  float sumlx = 0;
  float suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = int8_t(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * float(l);
    suml2 += w * float(l) * float(l);
  }
  // Coordinate descent: re-round one quant against the scale the others imply, keep it if the
  // weighted fit (sumlx^2 / suml2) improves.
  for (int round = 0; round < 5; ++round) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * float(L[i]);
      if (!(slx > 0)) continue;
      float sl2 = suml2 - w * float(L[i]) * float(L[i]);
      const int l = std::clamp(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
      if (l == L[i]) continue;
      slx += w * x[i] * float(l);
      sl2 += w * float(l) * float(l);
      if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
        L[i] = int8_t(l);
        sumlx = slx;
        suml2 = sl2;
        ++changed;
      }
    }
    if (changed == 0) break;
  }
  for (int i = 0; i < n; ++i) L[i] = int8_t(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

float fit_affine(int n, int nmax, const float* x, const float* w, uint8_t* L, float* neg_min, uint8_t* Laux,
                 float rmin, float rdelta, int nstep, bool use_mad) {
  float min = x[0];
  float max = x[0];
  float sum_w = w[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (min > 0) min = 0;  // the offset only ever shifts down: the grid always contains 0
  if (max <= min) {
    std::fill(L, L + n, uint8_t(0));
    *neg_min = -min;
    return 0.f;
  }
  auto error_of = [&](float scale, float offset, const uint8_t* q) {
    float err = 0;
    for (int i = 0; i < n; ++i) {
      float diff = scale * float(q[i]) + offset - x[i];
      diff = use_mad ? std::fabs(diff) : diff * diff;
      err += w[i] * diff;
    }
    return err;
  };
  // Note: once a trial wins, min moves, and later trial grids are laid over the new [min, max] (as
  // in llama.cpp; it matters for exactness).
  float iscale = float(nmax) / (max - min);
  float scale = 1 / iscale;
  for (int i = 0; i < n; ++i) L[i] = uint8_t(std::clamp(nearest_int(iscale * (x[i] - min)), 0, nmax));
  float best_error = error_of(scale, min, L);
#if QL_GGML_SSE41
  (void)Laux;
  // Trial grids are evaluated kChunk at a time, one per lane, each lane doing the scalar loop's
  // operations in the same order, all laid over the current min. The chunk's results are then
  // taken in step order; a win that moves min invalidates the grids after it, so evaluation
  // resumes right after the winner with the new min (wins are few, so most chunks are used whole).
  constexpr int kVec = 2, kChunk = 4 * kVec;
  float win_iscale = 0, win_min = 0;  // the winning grid, as it was laid (quants recomputed at the end)
  bool won = false;
  alignas(16) float lane_is[kChunk], lane_det[kChunk], lane_err[kChunk], lane_scale[kChunk], lane_min[kChunk];
  const __m128 magic = _mm_set1_ps(12582912.f);
  const __m128i mant = _mm_set1_epi32(0x007fffff), bias = _mm_set1_epi32(0x00400000);
  const __m128i zero_i = _mm_setzero_si128(), top = _mm_set1_epi32(nmax);
  const __m128 sign = _mm_set1_ps(-0.0f);
  assert(n <= 32);
  __m128 fl[32][kVec];  // the lanes' quants as floats, for the error pass
  for (int step = 0; step <= nstep;) {
    for (int t = 0; t < kChunk; ++t)
      lane_is[t] = (rmin + rdelta * float(std::min(step + t, nstep)) + float(nmax)) / (max - min);
    __m128 is[kVec], sl[kVec], sl2[kVec], sxl[kVec];
    for (int v = 0; v < kVec; ++v) {
      is[v] = _mm_load_ps(lane_is + 4 * v);
      sl[v] = sl2[v] = sxl[v] = _mm_setzero_ps();
    }
    for (int i = 0; i < n; ++i) {
      const __m128 xm = _mm_set1_ps(x[i] - min), xi = _mm_set1_ps(x[i]), wi = _mm_set1_ps(w[i]);
      for (int v = 0; v < kVec; ++v) {
        const __m128 shifted = _mm_add_ps(_mm_mul_ps(is[v], xm), magic);
        __m128i l = _mm_sub_epi32(_mm_and_si128(_mm_castps_si128(shifted), mant), bias);
        l = _mm_min_epi32(_mm_max_epi32(l, zero_i), top);
        const __m128 f = _mm_cvtepi32_ps(l);
        fl[i][v] = f;
        const __m128 wl = _mm_mul_ps(wi, f);
        sl[v] = _mm_add_ps(sl[v], wl);
        sl2[v] = _mm_add_ps(sl2[v], _mm_mul_ps(wl, f));
        sxl[v] = _mm_add_ps(sxl[v], _mm_mul_ps(wl, xi));
      }
    }
    // Weighted least squares for (scale, offset) given each lane's quants (lanes whose det is not
    // positive are computed too, and ignored).
    const __m128 vsw = _mm_set1_ps(sum_w), vsx = _mm_set1_ps(sum_x);
    __m128 sc[kVec], mn[kVec], er[kVec];
    for (int v = 0; v < kVec; ++v) {
      const __m128 det = _mm_sub_ps(_mm_mul_ps(vsw, sl2[v]), _mm_mul_ps(sl[v], sl[v]));
      __m128 this_scale = _mm_div_ps(_mm_sub_ps(_mm_mul_ps(vsw, sxl[v]), _mm_mul_ps(vsx, sl[v])), det);
      __m128 this_min = _mm_div_ps(_mm_sub_ps(_mm_mul_ps(sl2[v], vsx), _mm_mul_ps(sl[v], sxl[v])), det);
      const __m128 pos = _mm_cmpgt_ps(this_min, _mm_setzero_ps());
      this_min = _mm_andnot_ps(pos, this_min);
      this_scale = _mm_blendv_ps(this_scale, _mm_div_ps(sxl[v], sl2[v]), pos);
      sc[v] = this_scale;
      mn[v] = this_min;
      er[v] = _mm_setzero_ps();
      _mm_store_ps(lane_det + 4 * v, det);
    }
    for (int i = 0; i < n; ++i) {
      const __m128 xi = _mm_set1_ps(x[i]), wi = _mm_set1_ps(w[i]);
      for (int v = 0; v < kVec; ++v) {
        __m128 diff = _mm_sub_ps(_mm_add_ps(_mm_mul_ps(sc[v], fl[i][v]), mn[v]), xi);
        diff = use_mad ? _mm_andnot_ps(sign, diff) : _mm_mul_ps(diff, diff);
        er[v] = _mm_add_ps(er[v], _mm_mul_ps(wi, diff));
      }
    }
    for (int v = 0; v < kVec; ++v) {
      _mm_store_ps(lane_err + 4 * v, er[v]);
      _mm_store_ps(lane_scale + 4 * v, sc[v]);
      _mm_store_ps(lane_min + 4 * v, mn[v]);
    }
    int next = step + kChunk;
    for (int t = 0; t < kChunk && step + t <= nstep; ++t) {
      if (!(lane_det[t] > 0)) continue;
      if (lane_err[t] < best_error) {
        won = true;
        win_iscale = lane_is[t];
        win_min = min;
        best_error = lane_err[t];
        scale = lane_scale[t];
        const bool moved = std::memcmp(&lane_min[t], &min, sizeof min) != 0;
        min = lane_min[t];
        if (moved) {
          next = step + t + 1;
          break;
        }
      }
    }
    step = next;
  }
  if (won)
    for (int i = 0; i < n; ++i) L[i] = uint8_t(std::clamp(nearest_int(win_iscale * (x[i] - win_min)), 0, nmax));
#else
  for (int step = 0; step <= nstep; ++step) {
    iscale = (rmin + rdelta * float(step) + float(nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int(iscale * (x[i] - min)), 0, nmax);
      Laux[i] = uint8_t(l);
      sum_l += w[i] * float(l);
      sum_l2 += w[i] * float(l) * float(l);
      sum_xl += w[i] * float(l) * x[i];
    }
    // Weighted least squares for (scale, offset) given these quants.
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (!(det > 0)) continue;
    float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
    float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
    if (this_min > 0) {
      this_min = 0;
      this_scale = sum_xl / sum_l2;
    }
    const float err = error_of(this_scale, this_min, Laux);
    if (err < best_error) {
      std::copy(Laux, Laux + n, L);
      best_error = err;
      scale = this_scale;
      min = this_min;
    }
  }
#endif
  *neg_min = -min;
  return scale;
}

float fit_positive(int n, int nmax, const float* x, uint8_t* L, const float* w) {
  float max = 0;
  for (int i = 0; i < n; ++i) max = std::max(max, x[i]);
  if (max < kGroupMaxEps) {
    std::fill(L, L + n, uint8_t(0));
    return 0.f;
  }
  // llama.cpp keeps the quants in bytes (a negative x would wrap) and re-reads them from there; so
  // do we, to stay exact even on inputs it never expects.
  float iscale = float(nmax) / max;
  for (int i = 0; i < n; ++i) L[i] = uint8_t(nearest_int(iscale * x[i]));
  float scale = 1 / iscale;
  float best_mse = 0;
  for (int i = 0; i < n; ++i) {
    const float diff = x[i] - scale * float(L[i]);
    best_mse += w[i] * diff * diff;
  }
  for (int step = -4; step <= 4; ++step) {
    if (step == 0) continue;
    const float iscale_try = (0.1f * float(step) + float(nmax)) / max;
    const float scale_try = 1 / iscale_try;
    float mse = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::min(nmax, nearest_int(iscale_try * x[i]));
      const float diff = x[i] - scale_try * float(l);
      mse += w[i] * diff * diff;
    }
    if (mse < best_mse) {
      best_mse = mse;
      iscale = iscale_try;
    }
  }
  float sumlx = 0;
  float suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::min(nmax, nearest_int(iscale * x[i]));
    L[i] = uint8_t(l);
    sumlx += w[i] * x[i] * float(l);
    suml2 += w[i] * float(l) * float(l);
  }
  for (int round = 0; round < 5; ++round) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      float slx = sumlx - w[i] * x[i] * float(L[i]);
      float sl2 = suml2 - w[i] * float(L[i]) * float(L[i]);
      if (!(slx > 0 && sl2 > 0)) continue;
      const int l = std::min(nmax, nearest_int(x[i] * sl2 / slx));
      if (l == L[i]) continue;
      slx += w[i] * x[i] * float(l);
      sl2 += w[i] * float(l) * float(l);
      if (slx * slx * suml2 > sumlx * sumlx * sl2) {
        L[i] = uint8_t(l);
        sumlx = slx;
        suml2 = sl2;
        ++changed;
      }
    }
    if (changed == 0) break;
  }
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

}  // namespace quantllm::ggml::detail
