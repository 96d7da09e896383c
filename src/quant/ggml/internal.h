// Private to src/quant/ggml: the arithmetic helpers every format shares, the scale fitters, and the
// per-format row functions that table.cpp puts into the traits table.
//
// Byte-exactness with llama.cpp rests on doing the same float operations in the same order with
// the same rounding. Two things could silently break that, and this header rules both out for every
// file that includes it first:
//  - FMA contraction. llama.cpp's quantizers live in ggml-base, which its CMake compiles with
//    -O3 and no -m flags, so on x86-64 there is no FMA and every a*b+c is two rounded operations.
//    With -march=native (QUANTLLM_NATIVE) GCC would fuse them, so contraction is switched off here.
//  - fast-math. Never enabled for this folder; the fitters compare sums that reassociation changes.
// Include this header FIRST in every file of the folder: GCC does not inline a function defined
// before the pragma (say std::min from an earlier header) into one defined after it.
#pragma once

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "core/dtype.h"
#include "quant/ggml/blocks.h"

#include <cmath>
#include <cstdint>
#include <cstring>

namespace quantllm::ggml::detail {

// Below this a group's largest |x| counts as zero (llama.cpp's GROUP_MAX_EPS).
inline constexpr float kGroupMaxEps = 1e-15f;

// Σ x² of n values, summed in order in fp32 (the row statistic the imatrix fits start from).
inline float sum_squares(const float* x, int n) {
  float s = 0;
  for (int i = 0; i < n; ++i) s += x[i] * x[i];
  return s;
}

// llama.cpp's fit weights of n weights: imatrix · sqrt(sigma2 + x²), or x² without an imatrix (qw null).
inline void fit_weights(const float* x, const float* qw, float sigma2, int n, float* w) {
  for (int i = 0; i < n; ++i) w[i] = qw ? qw[i] * std::sqrt(sigma2 + x[i] * x[i]) : x[i] * x[i];
}

// fp32 -> fp16 as ggml's software conversion does it: round to nearest even, overflow to inf, and
// every NaN to the canonical quiet NaN 0x7e00 (with the sign kept).
inline uint16_t to_fp16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t(((bits >> 16) & 0x8000u) | 0x7e00u);
  return f32_to_f16(f);
}

// fp16 -> fp32, exact (every fp16 value is an fp32 value).
inline float from_fp16(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    const float sub = float(mant) * 5.9604644775390625e-08f;  // mant * 2^-24, exact
    std::memcpy(&bits, &sub, 4);
    bits |= sign;
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 112u) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Rounds to the nearest integer, ties to even, for |v| < 2^22: adding 1.5 * 2^23 pushes the fraction
// out of the mantissa, whose low 23 bits then hold the integer offset by 2^22. This is llama.cpp's
// nearest_int bit for bit, including the (deterministic) garbage it returns out of range, which
// matters for exactness on pathological inputs.
inline int nearest_int(float v) {
  const float shifted = v + 12582912.f;
  int32_t bits;
  std::memcpy(&bits, &shifted, 4);
  return (bits & 0x007fffff) - 0x00400000;
}

// --- scale fitters (fit.cpp) ----------------------------------------------------------------------
// Each searches a scale for one group of n weights and writes the group's quants into L. The float
// operations follow llama.cpp's make_*_quants one for one (see fit.cpp for which is which).

// Symmetric grid q in [-nmax, nmax-1], stored as L = q + nmax. Minimizes sum w (x - s q)^2 over 19
// trial grids. w: n weights (never null). Returns s (0 for an all-zero group).
float fit_symmetric(int n, int nmax, const float* x, const float* w, int8_t* L);

// Symmetric grid for Q3_K without an imatrix: weights x^2, then up to 5 rounds of moving single
// quants while that improves the fit. L = q + nmax.
float fit_symmetric_refined(int n, int nmax, const float* x, int8_t* L);

// Affine grid x ~ s * q - m with q in [0, nmax] and m >= 0: least squares (or least absolute error
// with use_mad) over nstep + 1 trial grids (rmin + rdelta * i + nmax) / (max - min).
// Returns s, stores m in *neg_min. w: n weights (n <= 32). Laux: n bytes of scratch.
float fit_affine(int n, int nmax, const float* x, const float* w, uint8_t* L, float* neg_min, uint8_t* Laux,
                 float rmin, float rdelta, int nstep, bool use_mad);

// Non-negative grid q in [0, nmax] for non-negative x (the sub-block scales of the K-quants with an
// imatrix): 9 trial grids, then single-quant refinement. Returns s.
float fit_positive(int n, int nmax, const float* x, uint8_t* L, const float* w);

// --- row functions (one per format; table.cpp lists them) -----------------------------------------
#define QL_GGML_ROW_FNS(name)                                                   \
  void quantize_row_##name(const float* x, void* dst, int64_t n, const float* imatrix); \
  void dequantize_row_##name(const void* src, float* y, int64_t n);

QL_GGML_ROW_FNS(f32)
QL_GGML_ROW_FNS(f16)
QL_GGML_ROW_FNS(bf16)
QL_GGML_ROW_FNS(q4_0)
QL_GGML_ROW_FNS(q4_1)
QL_GGML_ROW_FNS(q5_0)
QL_GGML_ROW_FNS(q5_1)
QL_GGML_ROW_FNS(q8_0)
QL_GGML_ROW_FNS(q2_k)
QL_GGML_ROW_FNS(q3_k)
QL_GGML_ROW_FNS(q4_k)
QL_GGML_ROW_FNS(q5_k)
QL_GGML_ROW_FNS(q6_k)
QL_GGML_ROW_FNS(iq4_nl)
QL_GGML_ROW_FNS(iq4_xs)
QL_GGML_ROW_FNS(iq2_xxs)
QL_GGML_ROW_FNS(iq2_xs)
QL_GGML_ROW_FNS(iq2_s)
QL_GGML_ROW_FNS(iq3_xxs)
QL_GGML_ROW_FNS(iq3_s)
QL_GGML_ROW_FNS(iq1_s)
QL_GGML_ROW_FNS(iq1_m)
QL_GGML_ROW_FNS(tq1_0)
QL_GGML_ROW_FNS(tq2_0)
QL_GGML_ROW_FNS(mxfp4)
#undef QL_GGML_ROW_FNS

}  // namespace quantllm::ggml::detail
