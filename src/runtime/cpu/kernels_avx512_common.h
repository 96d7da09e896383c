// The AVX-512 level's shared pieces (included only by kernels_avx512.cpp and kernels_avx512_bf16.cpp, both
// compiled with the AVX-512 flags): the weight loaders and the per-format decoders into kernels.h's
// w = α·u − β form, the integer dot-product loop, and small register helpers. Everything is in an
// anonymous namespace: each file keeps its own copies, so no AVX-512 instruction can end up in a
// function the linker picks for another level.
#pragma once

#include "runtime/cpu/kernels.h"


#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512DQ__) && \
    defined(__AVX512VNNI__)

#include "quant/ggml/blocks.h"

#include <immintrin.h>

#include <cstdlib>
#include <cstring>
#include <type_traits>


namespace quantllm::cpu {

using namespace quantllm::ggml;

namespace {

inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

// [lo | hi]: two 256-bit halves into one register.
inline __m512i join(__m256i lo, __m256i hi) { return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); }

// ---------------------------------------------------------------- float weights

// Loads 16 weights starting at element i as fp32, the lanes outside `mask` zero.
struct LoadF32 {
  static constexpr int kBytes = 4;  // per weight
  __m512 operator()(const uint8_t* w, int64_t i, __mmask16 m) const {
    return _mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(w) + i);
  }
};
struct LoadF16 {
  static constexpr int kBytes = 2;
  __m512 operator()(const uint8_t* w, int64_t i, __mmask16 m) const {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(w) + i));
  }
};
struct LoadBF16 {
  static constexpr int kBytes = 2;
  __m512 operator()(const uint8_t* w, int64_t i, __mmask16 m) const {
    const __m512i v = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(w) + i));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
  }
};

// Several activation rows (short prompts): each weight vector loaded once for all of them.
template <typename Load>
void dot_float_many(const uint8_t* w, const ActRow* act, int na, const RowParams& p, float* out) {
  const Load load;
  const int64_t n = p.n, n64 = n / 64 * 64;
  const __mmask16 all = 0xffff;
  __m512 acc[kMaxActRows][4];
  for (int a = 0; a < na; ++a)
    for (int u = 0; u < 4; ++u) acc[a][u] = _mm512_setzero_ps();
  for (int64_t i = 0; i < n64; i += 64) {
    // 4 KB ahead, as in the integer generation loop (int_row)
    for (int b = 0; b < 64 * Load::kBytes; b += 64)
      _mm_prefetch(reinterpret_cast<const char*>(w) + i * Load::kBytes + 4096 + b, _MM_HINT_T0);
    __m512 wv[4];
    for (int u = 0; u < 4; ++u) wv[u] = load(w, i + 16 * u, all);
    for (int a = 0; a < na; ++a)
      for (int u = 0; u < 4; ++u) acc[a][u] = _mm512_fmadd_ps(wv[u], _mm512_loadu_ps(act[a].x + i + 16 * u), acc[a][u]);
  }
  for (int64_t i = n64; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? all : __mmask16((1u << (n - i)) - 1);
    const __m512 wv = load(w, i, m);
    for (int a = 0; a < na; ++a) acc[a][0] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, act[a].x + i), acc[a][0]);
  }
  for (int a = 0; a < na; ++a)
    out[a] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[a][0], acc[a][1]), _mm512_add_ps(acc[a][2], acc[a][3])));
}

// ---------------------------------------------------------------- integer formats

// [a ×8 | b ×8]
inline __m512 halves(float a, float b) { return _mm512_insertf32x8(_mm512_set1_ps(a), _mm256_set1_ps(b), 1); }
// 16 lanes: lane l takes element idx[l] of v.
inline __m512 lanes(__m512 v, __m512i idx) { return _mm512_permutexvar_ps(idx, v); }

// Decoders: kStep codes per step in kChunks registers of 64 (u) with lane scales α (lane l covers
// codes 4l … 4l+3), and the step's offsets β, one per 16 codes, as a vector (Beta: __m128 for 64-code
// steps, __m512 for 256).
// The two 32-weight blocks of a 64-code step: α = [a0 ×8 | a1 ×8], β = offset·[a0 a0 a1 a1].
inline void pair_scales(float a0, float a1, float offset, __m512* alpha, __m128& beta) {
  alpha[0] = halves(a0, a1);
  beta = _mm_mul_ps(_mm_set_ps(a1, a1, a0, a0), _mm_set1_ps(offset));
}
// 64 codes of two 32-weight nibble blocks (Q4_0 / IQ4 layout: byte j holds weights j and j + 16 of its
// block): [lo0 lo1 hi0 hi1] → [lo0 hi0 lo1 hi1], block 0's weights 0–15, 16–31, then block 1's.
inline __m512i nibble_blocks(const uint8_t* qs0, const uint8_t* qs1) {
  const __m256i bytes = _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs0))),
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs1)), 1);
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  const __m512i z = join(_mm256_and_si256(bytes, m4), _mm256_and_si256(_mm256_srli_epi16(bytes, 4), m4));
  return _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0));
}
// α of 64-code chunk c from per-32-code values in lanes: [v[2c] ×8 | v[2c+1] ×8] (K-quant and IQ4_XS
// super-blocks).
inline __m512 chunk_alpha(__m512 v, int c) {
  return lanes(v, _mm512_set_epi32(2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1,
                                   2 * c + 1, 2 * c, 2 * c, 2 * c, 2 * c, 2 * c, 2 * c, 2 * c, 2 * c));
}

struct DecQ8_0 {
  static constexpr int kStep = 64, kChunks = 1, kStepBytes = 2 * sizeof(BlockQ8_0);
  using Beta = __m128;
  const uint8_t* w;
  void decode(int64_t s, __m512i* u, __m512* alpha, Beta& beta) const {
    const auto* blk = reinterpret_cast<const BlockQ8_0*>(w) + 2 * s;
    const float d0 = h2f(blk[0].d), d1 = h2f(blk[1].d);
    const __m512i q = join(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk[0].qs)),
                           _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk[1].qs)));
    u[0] = _mm512_xor_si512(q, _mm512_set1_epi8(char(0x80)));  // q + 128 as unsigned
    pair_scales(d0, d1, 128.0f, alpha, beta);
  }
};

struct DecQ4_0 {
  static constexpr int kStep = 64, kChunks = 1, kStepBytes = 2 * sizeof(BlockQ4_0);
  using Beta = __m128;
  const uint8_t* w;
  void decode(int64_t s, __m512i* u, __m512* alpha, Beta& beta) const {
    const auto* blk = reinterpret_cast<const BlockQ4_0*>(w) + 2 * s;
    u[0] = nibble_blocks(blk[0].qs, blk[1].qs);
    pair_scales(h2f(blk[0].d), h2f(blk[1].d), 8.0f, alpha, beta);
  }
};

// IQ4_NL / IQ4_XS: Q4_0's nibble layout (nibble_blocks), the codes looked up among the 16 levels (+128:
// unsigned codes for vpdpbusd) by vpshufb within each 128-bit lane.
inline __m512i iq4_codes(__m512i idx) {
  const __m128i levels = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues));
  return _mm512_shuffle_epi8(_mm512_broadcast_i32x4(_mm_xor_si128(levels, _mm_set1_epi8(char(0x80)))), idx);
}
struct DecIQ4NL {
  static constexpr int kStep = 64, kChunks = 1, kStepBytes = 2 * sizeof(BlockIQ4_NL);
  using Beta = __m128;
  const uint8_t* w;
  void decode(int64_t s, __m512i* u, __m512* alpha, Beta& beta) const {
    const auto* blk = reinterpret_cast<const BlockIQ4_NL*>(w) + 2 * s;
    u[0] = iq4_codes(nibble_blocks(blk[0].qs, blk[1].qs));
    pair_scales(h2f(blk[0].d), h2f(blk[1].d), 128.0f, alpha, beta);
  }
};

// IQ4_XS: a step is a super-block of 256 codes, its eight 6-bit scales unpacked at once (lane g: low
// nibble at bit 4g of scales_l, high two bits at bit 2g of scales_h). A 64-code step with two scalar
// unpackings per step ran generation at about llama.cpp's speed; this form keeps the scale work per 256.
struct DecIQ4XS {
  static constexpr int kStep = 256, kChunks = 4, kStepBytes = sizeof(BlockIQ4_XS);
  using Beta = __m512;
  const uint8_t* w;
  void decode(int64_t s, __m512i* u, __m512* alpha, Beta& beta) const {
    const BlockIQ4_XS& blk = reinterpret_cast<const BlockIQ4_XS*>(w)[s];
    uint32_t lo4;
    std::memcpy(&lo4, blk.scales_l, 4);
    const __m256i g = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i lo = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(int(lo4)), _mm256_slli_epi32(g, 2)),
                                        _mm256_set1_epi32(15));
    const __m256i hi = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(blk.scales_h), _mm256_slli_epi32(g, 1)),
                                        _mm256_set1_epi32(3));
    const __m256i sc = _mm256_sub_epi32(_mm256_or_si256(lo, _mm256_slli_epi32(hi, 4)), _mm256_set1_epi32(32));
    // lanes 0–7: d·(s_g − 32)
    const __m512 a = _mm512_castps256_ps512(_mm256_mul_ps(_mm256_set1_ps(h2f(blk.d)), _mm256_cvtepi32_ps(sc)));
    beta = _mm512_mul_ps(lanes(a, _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0)),
                         _mm512_set1_ps(128.0f));
    for (int c = 0; c < 4; ++c) {
      u[c] = iq4_codes(nibble_blocks(blk.qs + 32 * c, blk.qs + 32 * c + 16));
      alpha[c] = chunk_alpha(a, c);
    }
  }
};

// Generation on Q8_0 / Q4_0 rows of a multiple of 128 weights: four blocks a step, their four scales
// converted at once (the 64-code decoders above spend a third of their instructions on the scales).
inline __m128 four_scales(const uint8_t* first_d, int stride) {
  uint16_t h[4];
  for (int i = 0; i < 4; ++i) std::memcpy(&h[i], first_d + i * stride, 2);
  return _mm_cvtph_ps(_mm_set_epi16(0, 0, 0, 0, short(h[3]), short(h[2]), short(h[1]), short(h[0])));
}
// α of chunk c (blocks 2c, 2c+1) and β per 16 codes (each block's scale twice), from the four scales.
inline void four_block_scales(__m128 d4, float offset, __m512* alpha, __m256& beta) {
  const __m512 d = _mm512_castps128_ps512(d4);
  alpha[0] = _mm512_permutexvar_ps(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0), d);
  alpha[1] = _mm512_permutexvar_ps(_mm512_set_epi32(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2), d);
  beta = _mm256_mul_ps(_mm256_permutexvar_ps(_mm256_set_epi32(3, 3, 2, 2, 1, 1, 0, 0), _mm256_castps128_ps256(d4)),
                       _mm256_set1_ps(offset));
}

struct DecQ8_0x4 {
  static constexpr int kStep = 128, kChunks = 2, kStepBytes = 4 * sizeof(BlockQ8_0);
  using Beta = __m256;
  const uint8_t* w;
  void decode(int64_t s, __m512i* u, __m512* alpha, Beta& beta) const {
    const auto* blk = reinterpret_cast<const BlockQ8_0*>(w) + 4 * s;
    four_block_scales(four_scales(reinterpret_cast<const uint8_t*>(&blk[0].d), sizeof(BlockQ8_0)), 128.0f, alpha, beta);
    for (int c = 0; c < 2; ++c) {
      const __m512i q = join(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk[2 * c].qs)),
                             _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk[2 * c + 1].qs)));
      u[c] = _mm512_xor_si512(q, _mm512_set1_epi8(char(0x80)));
    }
  }
};

struct DecQ4_0x4 {
  static constexpr int kStep = 128, kChunks = 2, kStepBytes = 4 * sizeof(BlockQ4_0);
  using Beta = __m256;
  const uint8_t* w;
  void decode(int64_t s, __m512i* u, __m512* alpha, Beta& beta) const {
    const auto* blk = reinterpret_cast<const BlockQ4_0*>(w) + 4 * s;
    four_block_scales(four_scales(reinterpret_cast<const uint8_t*>(&blk[0].d), sizeof(BlockQ4_0)), 8.0f, alpha, beta);
    for (int c = 0; c < 2; ++c) u[c] = nibble_blocks(blk[2 * c].qs, blk[2 * c + 1].qs);
  }
};

// 64 codes from 32 bytes: low nibbles (codes 0–31) in the lower half, high nibbles (32–63) in the upper.
inline __m512i nibbles64(const uint8_t* p) {
  const __m512i z = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_and_si512(_mm512_srlv_epi64(z, _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0)), _mm512_set1_epi8(0x0f));
}

// The group of code i (RowParams::group_shift: a 64-bit division per step cost a fifth of GQ4 generation).
inline int64_t gq4_group(int64_t i, int64_t gs, int shift) { return shift >= 0 ? i >> shift : i / gs; }

struct DecGQ4 {
  static constexpr int kStep = 64, kChunks = 1, kStepBytes = 32;
  using Beta = __m128;
  const uint8_t* w;
  int64_t n, gs;
  int shift;  // RowParams::group_shift
  void decode(int64_t s, __m512i* u, __m512* alpha, Beta& beta) const {
    const uint8_t* rec = w + n / 2 + 4 * gq4_group(64 * s, gs, shift);
    uint16_t sh;
    std::memcpy(&sh, rec, 2);
    const float sc = h2f(sh);
    u[0] = nibbles64(w + 32 * s);
    alpha[0] = _mm512_set1_ps(sc);
    beta = _mm_set1_ps(sc * float(rec[2]));
  }
};

// GQ4 generation on rows of a multiple of 128: two 64-code chunks a step (each its group's record).
struct DecGQ4x2 {
  static constexpr int kStep = 128, kChunks = 2, kStepBytes = 64;
  using Beta = __m256;
  const uint8_t* w;
  int64_t n, gs;
  int shift;  // RowParams::group_shift
  void decode(int64_t s, __m512i* u, __m512* alpha, Beta& beta) const {
    if (gs % 128 == 0) {  // both chunks in one group: one record
      const uint8_t* rec = w + n / 2 + 4 * gq4_group(128 * s, gs, shift);
      uint16_t sh;
      std::memcpy(&sh, rec, 2);
      const float sc = h2f(sh);
      u[0] = nibbles64(w + 64 * s);
      u[1] = nibbles64(w + 64 * s + 32);
      alpha[0] = alpha[1] = _mm512_set1_ps(sc);
      beta = _mm256_set1_ps(sc * float(rec[2]));
      return;
    }
    float sc[2], off[2];
    for (int c = 0; c < 2; ++c) {
      const uint8_t* rec = w + n / 2 + 4 * gq4_group(128 * s + 64 * c, gs, shift);
      uint16_t sh;
      std::memcpy(&sh, rec, 2);
      sc[c] = h2f(sh), off[c] = sc[c] * float(rec[2]);
      u[c] = nibbles64(w + 64 * s + 32 * c);
      alpha[c] = _mm512_set1_ps(sc[c]);
    }
    beta = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_set1_ps(off[0])), _mm_set1_ps(off[1]), 1);
  }
};

// Q4_K / Q5_K. The twelve scale bytes as three little-endian words w0 w1 w2 (blocks.h's packing):
// sc0–3 = w0 & 0x3f.., m0–3 = w1 & 0x3f.., sc4–7 = (w2 & 0x0f..) | ((w0 >> 6) & 0x03..) << 4,
// m4–7 = ((w2 >> 4) & 0x0f..) | ((w1 >> 6) & 0x03..) << 4 (per byte).
template <bool kFive>
struct DecQ45K {
  using Block = std::conditional_t<kFive, BlockQ5_K, BlockQ4_K>;
  static constexpr int kStep = 256, kChunks = 4, kStepBytes = sizeof(Block);
  using Beta = __m512;
  const uint8_t* w;
  void decode(int64_t s, __m512i* u, __m512* alpha, Beta& beta) const {
    const Block& blk = reinterpret_cast<const Block*>(w)[s];
    // The block's first 16 bytes: d, dmin (fp16), then the scale words w0 w1 w2 as dwords 1–3.
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&blk));
    const __m128i x = _mm_shuffle_epi32(raw, _MM_SHUFFLE(3, 3, 2, 1));  // [w0 w1 w2 w2]
    const __m128i y = _mm_shuffle_epi32(raw, _MM_SHUFFLE(2, 1, 2, 1));  // [w0 w1 w0 w1]
    const __m128i lo = _mm_and_si128(x, _mm_set1_epi32(0x3f3f3f3f));   // sc0–3, m0–3
    const __m128i hi = _mm_or_si128(  // lanes 2, 3: sc4–7, m4–7
        _mm_and_si128(_mm_srlv_epi32(x, _mm_set_epi32(4, 0, 0, 0)), _mm_set1_epi32(0x0f0f0f0f)),
        _mm_slli_epi32(_mm_and_si128(_mm_srli_epi32(y, 6), _mm_set1_epi32(0x03030303)), 4));
    const __m128i scm = _mm_shuffle_epi32(_mm_blend_epi32(lo, hi, 0b1100), _MM_SHUFFLE(3, 1, 2, 0));  // sc0–7, m0–7
    // lanes 0–7: d·sc_j, lanes 8–15: dmin·m_j
    const __m512 ddmin = _mm512_permutexvar_ps(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0),
                                               _mm512_castps128_ps512(_mm_cvtph_ps(raw)));
    const __m512 sm = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(scm)), ddmin);
    beta = lanes(sm, _mm512_set_epi32(15, 15, 14, 14, 13, 13, 12, 12, 11, 11, 10, 10, 9, 9, 8, 8));
    __m512i qh;
    if constexpr (kFive) qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qh)));
    for (int c = 0; c < 4; ++c) {
      u[c] = nibbles64(blk.qs + 32 * c);
      if constexpr (kFive) {
        // bit 2c of qh[l] is bit 4 of code l of group 2c, bit 2c+1 that of group 2c+1: rotate each
        // 64-bit lane so that the bit lands on bit 4 of its byte.
        const int64_t r0 = (4 - 2 * c) & 63, r1 = (3 - 2 * c) & 63;
        const __m512i hb = _mm512_rolv_epi64(qh, _mm512_set_epi64(r1, r1, r1, r1, r0, r0, r0, r0));
        u[c] = _mm512_or_si512(u[c], _mm512_and_si512(hb, _mm512_set1_epi8(0x10)));
      }
      alpha[c] = chunk_alpha(sm, c);
    }
  }
};

// Q6_K: per half of 128 weights, chunk 0 = weights 0–63 ([q1 | q2] in blocks.h's naming: low nibbles
// of ql[0..63] with qh bits 0–1 resp. 2–3), chunk 1 = 64–127 ([q3 | q4]: high nibbles, qh bits 4–5 resp.
// 6–7); groups of 16, so lane l of chunk k takes scale 4k + l/4.
struct DecQ6K {
  static constexpr int kStep = 256, kChunks = 4, kStepBytes = sizeof(BlockQ6_K);
  using Beta = __m512;
  const uint8_t* w;
  void decode(int64_t s, __m512i* u, __m512* alpha, Beta& beta) const {
    const BlockQ6_K& blk = reinterpret_cast<const BlockQ6_K*>(w)[s];
    const __m512i m4 = _mm512_set1_epi8(0x0f), m2 = _mm512_set1_epi8(0x30);
    for (int h = 0; h < 2; ++h) {
      const __m512i ql = _mm512_loadu_si512(blk.ql + 64 * h);
      const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qh + 32 * h)));
      u[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, m4),
                                 _mm512_and_si512(_mm512_sllv_epi64(qh, _mm512_set_epi64(2, 2, 2, 2, 4, 4, 4, 4)), m2));
      u[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi64(ql, 4), m4),
                                     _mm512_and_si512(_mm512_srlv_epi64(qh, _mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0)), m2));
    }
    const __m512 a16 = _mm512_mul_ps(
        _mm512_set1_ps(h2f(blk.d)),
        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk.scales)))));
    beta = _mm512_mul_ps(a16, _mm512_set1_ps(32.0f));
    for (int k = 0; k < 4; ++k) {
      const int b = 4 * k;
      alpha[k] = lanes(a16, _mm512_set_epi32(b + 3, b + 3, b + 3, b + 3, b + 2, b + 2, b + 2, b + 2, b + 1, b + 1, b + 1,
                                             b + 1, b, b, b, b));
    }
  }
};

// The offsets of a step against the activations' dsum16: fused multiply-add into a vector of the
// decoder's Beta type.
inline __m128 offset_fma(__m128 beta, const float* dsum16, __m128 acc) { return _mm_fmadd_ps(beta, _mm_loadu_ps(dsum16), acc); }
inline __m512 offset_fma(__m512 beta, const float* dsum16, __m512 acc) {
  return _mm512_fmadd_ps(beta, _mm512_loadu_ps(dsum16), acc);
}
inline __m256 offset_fma(__m256 beta, const float* dsum16, __m256 acc) {
  return _mm256_fmadd_ps(beta, _mm256_loadu_ps(dsum16), acc);
}
inline float hsum(__m256 v) {
  __m128 t = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  t = _mm_add_ps(t, _mm_movehl_ps(t, t));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}
inline float hsum(__m128 v) {
  v = _mm_add_ps(v, _mm_movehl_ps(v, v));
  return _mm_cvtss_f32(_mm_add_ss(v, _mm_movehdup_ps(v)));
}
inline float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }
inline void store_beta(float* p, __m128 v) { _mm_storeu_ps(p, v); }
inline void store_beta(float* p, __m512 v) { _mm512_storeu_ps(p, v); }

// Σ_i w_i·x̂_i = Σ_chunks Σ_lanes α·d·(Σ u·q) − Σ_h β_h·dsum16_h (kernels.h). Two accumulators per
// activation row (alternating chunks) so that consecutive multiply-adds do not wait on each other.
template <typename Dec>
void dot_int(const Dec& dec, const ActRow* act, int na, int64_t n, float* out) {
  using Beta = typename Dec::Beta;
  __m512 acc[kMaxActRows][2];
  Beta off[kMaxActRows];
  for (int a = 0; a < na; ++a) {
    acc[a][0] = acc[a][1] = _mm512_setzero_ps();
    if constexpr (sizeof(Beta) == 16) off[a] = _mm_setzero_ps();
    else off[a] = _mm512_setzero_ps();
  }
  // Prefetch a few hundred bytes ahead: the rows stream from memory and one row is short (1–5 KB),
  // so the hardware prefetcher alone leaves the start of every step waiting.
  constexpr int64_t kAhead = (4096 + Dec::kStepBytes - 1) / Dec::kStepBytes;
  for (int64_t s = 0; s < n / Dec::kStep; ++s) {
    const char* next = reinterpret_cast<const char*>(dec.w) + (s + kAhead) * Dec::kStepBytes;
    for (int64_t b = 0; b < Dec::kStepBytes; b += 64) _mm_prefetch(next + b, _MM_HINT_T0);
    __m512i u[Dec::kChunks];
    __m512 alpha[Dec::kChunks];
    Beta beta;
    dec.decode(s, u, alpha, beta);
    for (int a = 0; a < na; ++a) {
      for (int c = 0; c < Dec::kChunks; ++c) {
        const int64_t i0 = s * Dec::kStep + 64 * c;
        const __m512i prod = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u[c], _mm512_loadu_si512(act[a].q + i0));
        const __m512 scale = _mm512_mul_ps(alpha[c], _mm512_loadu_ps(act[a].dexp + i0 / 4));
        const int k = (s * Dec::kChunks + c) & 1;
        acc[a][k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(prod), scale, acc[a][k]);
      }
      off[a] = offset_fma(beta, act[a].dsum16 + s * (Dec::kStep / 16), off[a]);
    }
  }
  for (int a = 0; a < na; ++a) out[a] = _mm512_reduce_add_ps(_mm512_add_ps(acc[a][0], acc[a][1])) - hsum(off[a]);
}

inline void transpose16(__m512 r[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 4; ++g) {  // rows 4g … 4g+3: u[4g + m] lane j = those rows at column 4j + m
    u[4 * g] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xee);
    u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xee);
  }
  for (int m = 0; m < 4; ++m) {
    const __m512 xlo = _mm512_shuffle_f32x4(u[m], u[4 + m], 0x88), xhi = _mm512_shuffle_f32x4(u[m], u[4 + m], 0xdd);
    const __m512 ylo = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0x88), yhi = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0xdd);
    r[m] = _mm512_shuffle_f32x4(xlo, ylo, 0x88);
    r[8 + m] = _mm512_shuffle_f32x4(xlo, ylo, 0xdd);
    r[4 + m] = _mm512_shuffle_f32x4(xhi, yhi, 0x88);
    r[12 + m] = _mm512_shuffle_f32x4(xhi, yhi, 0xdd);
  }
}

inline float beta_at(__m128 b, int i) {
  alignas(16) float t[4];
  _mm_store_ps(t, b);
  return t[i];
}
inline float beta_at(__m512 b, int i) {
  alignas(64) float t[16];
  _mm512_store_ps(t, b);
  return t[i];
}

template <typename Dec>
Dec make_dec(const uint8_t* w, const RowParams& p) {
  if constexpr (std::is_same_v<Dec, DecGQ4>) return DecGQ4{w, p.n, p.group_size, p.group_shift};
  else return Dec{w};
}

}  // namespace
}  // namespace quantllm::cpu

#endif
