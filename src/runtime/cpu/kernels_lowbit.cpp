// Portable decoders of the low-bit GGML types into kernels.h's DecodedRow form (the forms are listed in
// kernels_lowbit.h), and the one-row dot through a level's decoder and gemm_tile. Compiled for the
// baseline ISA (on x86-64 that includes SSSE3, used for MXFP4's table lookups): every level calls these
// same functions, so none of them can pick up a wider instruction set through the linker.
//
// The bit layouts are blocks.h's; each decoder reads them independently of quant/ggml's dequantizers
// (tests/runtime/kernels_test.cpp holds the kernels to those dequantizers' products).
#include "runtime/cpu/kernels_lowbit.h"

#include "core/dtype.h"
#include "quant/ggml/blocks.h"
#include "quant/ggml/iq_grids.h"

#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <vector>

#if defined(__SSSE3__)
#include <tmmintrin.h>
#endif

namespace quantllm::cpu {

using namespace quantllm::ggml;

namespace {

// The `count` codes from code i on (count a multiple of 16, i of count) share the scale a.
void put_scale(const DecodedRow& out, int64_t i, int count, float a) {
  for (int l = 0; l < count / 4; ++l) out.alpha[i / 4 + l] = a;
  for (int h = 0; h < count / 16; ++h) out.beta[i / 16 + h] = 128.0f * a;
}

inline uint8_t code(int s) { return uint8_t(128 + s); }

inline uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Eight codes a step as one 64-bit word (a byte a weight, little-endian: weight j in byte j): the
// grids are tables of such words already, and byte-wise arithmetic on the word ("SWAR") costs a few
// instructions where a loop over the eight costs a few each (generation decodes every row per token).
static_assert(std::endian::native == std::endian::little, "the 8-code words are stored byte j = weight j");
constexpr uint64_t kBytes01 = 0x0101010101010101ull, kBytes7F = 0x7F7F7F7F7F7F7F7Full, kBytes80 = 0x8080808080808080ull;

// Sign masks: byte j of kSignMask[b] is 0xFF when bit j of b is set.
constexpr std::array<uint64_t, 256> make_sign_masks() {
  std::array<uint64_t, 256> m{};
  for (int b = 0; b < 256; ++b)
    for (int j = 0; j < 8; ++j)
      if ((b >> j) & 1) m[size_t(b)] |= uint64_t(0xFF) << (8 * j);
  return m;
}
constexpr std::array<uint64_t, 256> kSignMask = make_sign_masks();

inline void store8(uint8_t* u, uint64_t v) { std::memcpy(u, &v, 8); }

// Eight grid magnitudes g_j ≤ 127 (IQ2: 8, 25, 43; IQ3: up to 62) with sign bits `signs` (bit j:
// weight j negative) → u_j = 128 ± g_j. Per byte: 128 + g = g | 0x80, and 128 − g = (g ^ 0x7F) + 1,
// where (g ^ 0x7F) + 1 ≤ 0x80, so the additions never carry into the next byte.
inline void put_grid8(uint64_t point, unsigned signs, uint8_t* u) {
  const uint64_t neg = kSignMask[signs & 0xFF];
  const uint64_t plus = point | kBytes80, minus = (point ^ kBytes7F) + kBytes01;
  store8(u, (plus & ~neg) | (minus & neg));
}
// IQ3: two 4-weight grid points (weights 0–3, 4–7) under one sign byte.
inline void put_grid4x2(uint32_t lo, uint32_t hi, unsigned signs, uint8_t* u) {
  put_grid8(uint64_t(lo) | uint64_t(hi) << 32, signs, u);
}

// IQ2 sub-block scale: d·(0.5 + s)/4, the dequantizer's expression, so that α·s is its weight exactly.
inline float iq2_scale(float d, unsigned s) { return d * (0.5f + float(s)) * 0.25f; }

// IQ1: grid point bytes g_j ∈ {−1, 0, 1} (int8) and the shift ±1 (in eighths) → u_j = 128 + 8·g_j ± 1
// = 8·(g_j + 1) + 120 ± 1. g + 1 per byte without carries: ((g & 0x7F) + 1) ^ (g & 0x80) (0xFF → 0,
// 0 → 1, 1 → 2); then 8·(g + 1) ≤ 16 and + 121 ≤ 137 stay within their bytes.
inline void put_iq1_8(uint64_t point, int shift, uint8_t* u) {
  const uint64_t level = ((point & kBytes7F) + kBytes01) ^ (point & kBytes80);
  store8(u, (level << 3) + kBytes01 * uint64_t(120 + shift));
}

// TQ1_0: trit k (0: the most significant) of a byte holding five, stored scaled by 256/243 so that the
// top trit is ⌊3·byte / 256⌋; multiplying by 3^k (mod 256) brings trit k to the top.
inline int tq1_trit(uint8_t byte, int k) {
  static constexpr uint8_t kPow3[5] = {1, 3, 9, 27, 81};
  return (int(uint8_t(byte * kPow3[k])) * 3) >> 8;
}

}  // namespace

void decode_iq2_xxs(const uint8_t* w, const RowParams& p, const DecodedRow& out) {
  const auto* blocks = reinterpret_cast<const BlockIQ2_XXS*>(w);
  for (int64_t b = 0; b < p.n / kQK_K; ++b) {
    const auto* raw = reinterpret_cast<const uint8_t*>(&blocks[b]);
    const float d = f16_to_f32(load_u16(raw));
    for (int ib = 0; ib < 8; ++ib) {  // groups of 32: 4 grid indices, then 4 × 7 sign bits and the scale
      const uint32_t idx = load_u32(raw + 2 + 8 * ib), aux = load_u32(raw + 2 + 8 * ib + 4);
      const int64_t i0 = b * kQK_K + 32 * ib;
      for (int k = 0; k < 4; ++k)
        put_grid8(kIq2xxsGrid[(idx >> (8 * k)) & 0xFF], kIq2Signs[(aux >> (7 * k)) & 127], out.u + i0 + 8 * k);
      put_scale(out, i0, 32, iq2_scale(d, aux >> 28));
    }
  }
}

void decode_iq2_xs(const uint8_t* w, const RowParams& p, const DecodedRow& out) {
  const auto* blocks = reinterpret_cast<const BlockIQ2_XS*>(w);
  for (int64_t b = 0; b < p.n / kQK_K; ++b) {
    const BlockIQ2_XS& blk = blocks[b];
    const auto* raw = reinterpret_cast<const uint8_t*>(&blk);
    const float d = f16_to_f32(load_u16(raw));
    for (int k = 0; k < 32; ++k) {  // per 8 weights: 9-bit grid index, 7 sign bits
      const uint16_t q = load_u16(raw + 2 + 2 * k);
      put_grid8(kIq2xsGrid[q & 511], kIq2Signs[q >> 9], out.u + b * kQK_K + 8 * k);
    }
    for (int h = 0; h < 16; ++h)  // per 16 weights: low nibble first
      put_scale(out, b * kQK_K + 16 * h, 16, iq2_scale(d, (blk.scales[h / 2] >> (4 * (h % 2))) & 0xF));
  }
}

void decode_iq2_s(const uint8_t* w, const RowParams& p, const DecodedRow& out) {
  const auto* blocks = reinterpret_cast<const BlockIQ2_S*>(w);
  for (int64_t b = 0; b < p.n / kQK_K; ++b) {
    const BlockIQ2_S& blk = blocks[b];
    const float d = f16_to_f32(blk.d);
    for (int k = 0; k < 32; ++k) {  // per 8 weights: 10-bit index (2 high bits in qh), a sign byte
      const int index = blk.qs[k] | (((blk.qh[k / 4] >> (2 * (k % 4))) & 3) << 8);
      put_grid8(kIq2sGrid[size_t(index)], blk.qs[kQK_K / 8 + k], out.u + b * kQK_K + 8 * k);
    }
    for (int h = 0; h < 16; ++h)
      put_scale(out, b * kQK_K + 16 * h, 16, iq2_scale(d, (blk.scales[h / 2] >> (4 * (h % 2))) & 0xF));
  }
}

void decode_iq3_xxs(const uint8_t* w, const RowParams& p, const DecodedRow& out) {
  const auto* blocks = reinterpret_cast<const BlockIQ3_XXS*>(w);
  for (int64_t b = 0; b < p.n / kQK_K; ++b) {
    const BlockIQ3_XXS& blk = blocks[b];
    const float d = f16_to_f32(blk.d);
    for (int ib = 0; ib < 8; ++ib) {  // groups of 32: 8 grid indices; a u32 of 4 × 7 sign bits and the scale
      const uint32_t aux = load_u32(blk.qs + kQK_K / 4 + 4 * ib);
      const int64_t i0 = b * kQK_K + 32 * ib;
      for (int k = 0; k < 8; k += 2)  // sign pattern k/2 (7 bits) covers grid points k and k + 1
        put_grid4x2(kIq3xxsGrid[blk.qs[8 * ib + k]], kIq3xxsGrid[blk.qs[8 * ib + k + 1]],
                    kIq2Signs[(aux >> (7 * (k / 2))) & 127], out.u + i0 + 4 * k);
      put_scale(out, i0, 32, d * (0.5f + float(aux >> 28)) * 0.5f);
    }
  }
}

void decode_iq3_s(const uint8_t* w, const RowParams& p, const DecodedRow& out) {
  const auto* blocks = reinterpret_cast<const BlockIQ3_S*>(w);
  for (int64_t b = 0; b < p.n / kQK_K; ++b) {
    const BlockIQ3_S& blk = blocks[b];
    const float d = f16_to_f32(blk.d);
    for (int ib = 0; ib < 8; ++ib) {  // groups of 32: 8 indices of 9 bits, a sign bit a weight
      const int64_t i0 = b * kQK_K + 32 * ib;
      auto point = [&](int k) { return kIq3sGrid[size_t(blk.qs[8 * ib + k] | (((blk.qh[ib] >> k) & 1) << 8))]; };
      for (int k = 0; k < 8; k += 2)  // sign byte k/2 covers grid points k and k + 1
        put_grid4x2(point(k), point(k + 1), blk.signs[4 * ib + k / 2], out.u + i0 + 4 * k);
      put_scale(out, i0, 32, d * float(1 + 2 * ((blk.scales[ib / 2] >> (4 * (ib % 2))) & 0xF)));
    }
  }
}

void decode_iq1_s(const uint8_t* w, const RowParams& p, const DecodedRow& out) {
  const auto* blocks = reinterpret_cast<const BlockIQ1_S*>(w);
  for (int64_t b = 0; b < p.n / kQK_K; ++b) {
    const auto* raw = reinterpret_cast<const uint8_t*>(&blocks[b]);
    const BlockIQ1_S& blk = blocks[b];
    const float d = f16_to_f32(load_u16(raw));
    for (int ib = 0; ib < 8; ++ib) {  // per 32 weights: 3 high index bits per 8, scale, shift sign
      const unsigned qh = load_u16(raw + offsetof(BlockIQ1_S, qh) + 2 * ib);
      const int shift = (qh & 0x8000) ? -1 : 1;
      const int64_t i0 = b * kQK_K + 32 * ib;
      for (int g = 0; g < 4; ++g) {
        const int index = blk.qs[4 * ib + g] | int((qh >> (3 * g)) & 7) << 8;
        put_iq1_8(kIq1sGrid[size_t(index)], shift, out.u + i0 + 8 * g);
      }
      put_scale(out, i0, 32, d * float(2 * ((qh >> 12) & 7) + 1) * 0.125f);
    }
  }
}

void decode_iq1_m(const uint8_t* w, const RowParams& p, const DecodedRow& out) {
  const auto* blocks = reinterpret_cast<const BlockIQ1_M*>(w);
  for (int64_t b = 0; b < p.n / kQK_K; ++b) {
    const BlockIQ1_M& blk = blocks[b];
    uint16_t sc[4];  // 3-bit scales of 16-weight blocks 4i … 4i+3, the fp16 d in the top nibbles
    for (int i = 0; i < 4; ++i) sc[i] = load_u16(blk.scales + 2 * i);
    const float d = f16_to_f32(uint16_t((sc[0] >> 12) | ((sc[1] >> 8) & 0x00F0) | ((sc[2] >> 4) & 0x0F00) | (sc[3] & 0xF000)));
    for (int ib = 0; ib < 16; ++ib) {  // per 16 weights: two grid points, each its own shift sign
      const int64_t i0 = b * kQK_K + 16 * ib;
      for (int g = 0; g < 2; ++g) {
        const unsigned qh = unsigned(blk.qh[ib]) >> (4 * g);  // bits 0–2: high index bits, bit 3: shift sign
        const int index = blk.qs[2 * ib + g] | int(qh & 7) << 8;
        put_iq1_8(kIq1sGrid[size_t(index)], (qh & 8) ? -1 : 1, out.u + i0 + 8 * g);
      }
      put_scale(out, i0, 16, d * float(2 * ((sc[ib / 4] >> (3 * (ib % 4))) & 7) + 1) * 0.125f);
    }
  }
}

void decode_tq1_0(const uint8_t* w, const RowParams& p, const DecodedRow& out) {
  const auto* blocks = reinterpret_cast<const BlockTQ1_0*>(w);
  for (int64_t b = 0; b < p.n / kQK_K; ++b) {
    const BlockTQ1_0& blk = blocks[b];
    uint8_t* u = out.u + b * kQK_K;
    // Weights 32k + m from qs[m] (m < 32), 160 + 16k + m from qs[32 + m], 240 + 4k + j from qh[j].
    for (int k = 0; k < 5; ++k)
      for (int m = 0; m < 32; ++m) u[32 * k + m] = code(tq1_trit(blk.qs[m], k) - 1);
    for (int k = 0; k < 5; ++k)
      for (int m = 0; m < 16; ++m) u[160 + 16 * k + m] = code(tq1_trit(blk.qs[32 + m], k) - 1);
    for (int k = 0; k < 4; ++k)
      for (int j = 0; j < 4; ++j) u[240 + 4 * k + j] = code(tq1_trit(blk.qh[j], k) - 1);
    put_scale(out, b * kQK_K, kQK_K, f16_to_f32(load_u16(reinterpret_cast<const uint8_t*>(&blk.d))));
  }
}

void decode_tq2_0(const uint8_t* w, const RowParams& p, const DecodedRow& out) {
  const auto* blocks = reinterpret_cast<const BlockTQ2_0*>(w);
  for (int64_t b = 0; b < p.n / kQK_K; ++b) {
    const BlockTQ2_0& blk = blocks[b];
    uint8_t* u = out.u + b * kQK_K;
    for (int h = 0; h < 2; ++h)  // weight 128h + 32k + m in bits 2k, 2k+1 of qs[32h + m], stored t + 1
      for (int k = 0; k < 4; ++k)
        for (int m = 0; m < 32; ++m) u[128 * h + 32 * k + m] = code(((blk.qs[32 * h + m] >> (2 * k)) & 3) - 1);
    put_scale(out, b * kQK_K, kQK_K, f16_to_f32(load_u16(reinterpret_cast<const uint8_t*>(&blk.d))));
  }
}

void decode_mxfp4(const uint8_t* w, const RowParams& p, const DecodedRow& out) {
  const auto* blocks = reinterpret_cast<const BlockMXFP4*>(w);
  for (int64_t b = 0; b < p.n / kQK; ++b) {
    const BlockMXFP4& blk = blocks[b];
    uint8_t* u = out.u + b * kQK;
    // Q4_0's nibble order: byte j holds weights j and j + 16. A nibble → code table lookup is one
    // pshufb for 16 codes where the baseline has SSSE3 (x86-64-v2: always); a byte at a time elsewhere.
#if defined(__SSSE3__)
    const __m128i codes = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kMxfp4Values)),
                                        _mm_set1_epi8(char(0x80)));  // value + 128
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk.qs)), m4 = _mm_set1_epi8(0x0f);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(u), _mm_shuffle_epi8(codes, _mm_and_si128(bytes, m4)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(u + 16),
                     _mm_shuffle_epi8(codes, _mm_and_si128(_mm_srli_epi16(bytes, 4), m4)));
#else
    for (int j = 0; j < 16; ++j) {
      u[j] = code(kMxfp4Values[blk.qs[j] & 15]);
      u[j + 16] = code(kMxfp4Values[blk.qs[j] >> 4]);
    }
#endif
    // 2^(e − 128), exact for every e (2^−128 and 2^−127 are fp32 subnormals)
    put_scale(out, b * kQK, kQK, std::ldexp(1.0f, int(blk.e) - 128));
  }
}

void dot_decoded(DecodeFn decode, GemmTileFn tile, const uint8_t* w, const ActRow* act, int na, const RowParams& p,
                 float* out) {
  thread_local std::vector<uint8_t> u;
  thread_local std::vector<float> alpha, beta;
  u.resize(size_t(p.n));
  alpha.resize(size_t(p.n / 4));
  beta.resize(size_t(p.n / 16));
  const DecodedRow row{u.data(), alpha.data(), beta.data()};
  decode(w, p, row);
  tile(&row, 1, act, na, p.n, out, 1);
}

}  // namespace quantllm::cpu
