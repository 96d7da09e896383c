// Block layouts of the llama.cpp (ggml) weight formats, byte for byte as they appear in GGUF files.
//
// A tensor row of n weights is stored as n / block_size consecutive blocks. Scales are IEEE fp16
// (kept here as raw uint16_t bits), multi-byte fields are little-endian, and no block has padding:
// each struct has alignment 1, 2 or 4 and a static_assert pins its size to the format's.
#pragma once

#include <cstdint>

namespace quantllm::ggml {

// Weights per block of the "legacy" formats (Q4_0 … Q8_0) and of IQ4_NL.
inline constexpr int kQK = 32;
// Weights per super-block of the K-quants and IQ4_XS.
inline constexpr int kQK_K = 256;

// Q4_0: 32 weights, w = d * (q - 8), q in [0, 15].
// qs[j] holds weight j in its low nibble and weight j + 16 in its high nibble.
struct BlockQ4_0 {
  uint16_t d;            // fp16 scale
  uint8_t qs[kQK / 2];   // 4-bit quants
};
static_assert(sizeof(BlockQ4_0) == 18);

// Q4_1: 32 weights, w = d * q + m, q in [0, 15]; nibbles as in Q4_0.
struct BlockQ4_1 {
  uint16_t d;            // fp16 scale
  uint16_t m;            // fp16 offset (the block minimum)
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ4_1) == 20);

// Q5_0: 32 weights, w = d * (q - 16), q in [0, 31]. Low 4 bits as the nibbles of Q4_0; bit 4 of
// weight j is bit j of the little-endian 32-bit word qh.
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];         // fifth bits
  uint8_t qs[kQK / 2];   // low nibbles
};
static_assert(sizeof(BlockQ5_0) == 22);

// Q5_1: 32 weights, w = d * q + m, q in [0, 31]; bits as in Q5_0.
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ5_1) == 24);

// Q8_0: 32 weights, w = d * q, q in [-127, 127].
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK];
};
static_assert(sizeof(BlockQ8_0) == 34);

// Q2_K: 256 weights in 16 groups of 16. Group g: w = d * (scales[g] & 15) * q - dmin * (scales[g] >> 4),
// q in [0, 3]. Within each half of 128 weights, qs byte l (0..31) holds weights l, l+32, l+64, l+96
// in bits 0-1, 2-3, 4-5, 6-7.
struct BlockQ2_K {
  uint8_t scales[kQK_K / 16];  // 4-bit scale (low) and 4-bit min (high) per group
  uint8_t qs[kQK_K / 4];
  uint16_t d;                  // fp16 scale of the scales
  uint16_t dmin;               // fp16 scale of the mins
};
static_assert(sizeof(BlockQ2_K) == 84);

// Q3_K: 256 weights in 16 groups of 16. Group g: w = d * (s_g - 32) * (q - 4), q in [0, 7], s_g a
// 6-bit scale. Low 2 bits of q in qs as in Q2_K; bit 2 of weight j is bit (j / 32) of hmask[j % 32].
// The 6-bit scales: low nibbles of s_0..s_7 in scales[0..7] bits 0-3, of s_8..s_15 in scales[0..7]
// bits 4-7; the high 2 bits of s_g in scales[8 + g % 4] at bit position 2 * (g / 4).
struct BlockQ3_K {
  uint8_t hmask[kQK_K / 8];
  uint8_t qs[kQK_K / 4];
  uint8_t scales[12];
  uint16_t d;
};
static_assert(sizeof(BlockQ3_K) == 110);

// Q4_K: 256 weights in 8 groups of 32. Group g: w = d * sc_g * q - dmin * m_g, q in [0, 15], sc and m
// 6-bit. Packing of the 12 scale bytes: for g < 4, sc_g = scales[g] & 63 and m_g = scales[g+4] & 63;
// for g >= 4, sc_g = (scales[g+4] & 15) | (scales[g-4] >> 6) << 4 and
// m_g = (scales[g+4] >> 4) | (scales[g] >> 6) << 4. Each 64 weights share 32 qs bytes: the first
// 32 weights in the low nibbles, the next 32 in the high nibbles.
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ4_K) == 144);

// The 6-bit scale and min of group j of a Q4_K / Q5_K super-block, unpacked as described above.
// (static: every file, whatever instruction set it is compiled for, keeps its own copy.)
static inline void get_scale_min_k4(int j, const uint8_t* scales, uint8_t& sc, uint8_t& m) {
  if (j < 4) {
    sc = scales[j] & 63;
    m = scales[j + 4] & 63;
  } else {
    sc = uint8_t((scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4));
    m = uint8_t((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
  }
}

// Q5_K: Q4_K plus a fifth bit: for 64-weight chunk c, weight c*64 + l (l < 32) has its bit 4 in bit
// 2c of qh[l], weight c*64 + 32 + l in bit 2c + 1.
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ5_K) == 176);

// Q6_K: 256 weights in 16 groups of 16. Group g: w = d * scales[g] * (q - 32), q in [0, 63].
// Per half of 128 weights (ql advances 64 bytes, qh 32): weight l, l+32, l+64, l+96 (l < 32) have low
// nibbles in ql[l] low, ql[l+32] low, ql[l] high, ql[l+32] high, and top 2 bits in qh[l] bits 0-1,
// 2-3, 4-5, 6-7.
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210);

// Q8_K: the activation format of the K-quant dot products: w = d * q with an fp32 scale, plus sums of
// each 16 quants. Not a weight format; declared for completeness of the layouts.
struct BlockQ8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
};
static_assert(sizeof(BlockQ8_K) == 292);

// IQ4_NL: 32 weights, w = d * kIq4nlValues[q], q in [0, 15]; nibbles as in Q4_0.
struct BlockIQ4_NL {
  uint16_t d;
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockIQ4_NL) == 18);

// IQ4_XS: 256 weights in 8 groups of 32. Group g: w = d * (s_g - 32) * kIq4nlValues[q], s_g a 6-bit
// scale: low nibble in scales_l[g / 2] (bits 4 * (g % 2)), high 2 bits in scales_h bits 2g, 2g+1.
// Each group's 32 quants take 16 qs bytes as in IQ4_NL.
struct BlockIQ4_XS {
  uint16_t d;
  uint16_t scales_h;
  uint8_t scales_l[kQK_K / 64];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockIQ4_XS) == 136);

// The 6-bit scale s_g of group g of an IQ4_XS super-block (static, as get_scale_min_k4).
static inline int iq4_xs_scale(const BlockIQ4_XS& b, int g) {
  return ((b.scales_l[g / 2] >> (4 * (g % 2))) & 0xF) | (((b.scales_h >> (2 * g)) & 3) << 4);
}

// The 16 non-uniform levels of IQ4_NL / IQ4_XS (llama.cpp's kvalues_iq4nl).
inline constexpr int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};

// --- the low-bit types (issue 17); llama.cpp's ggml-common.h layouts -----------------------------

// MXFP4 (OCP microscaling): 32 weights, w = 2^(e - 128) * kMxfp4Values[q] (the e2m1 values doubled, so
// the scale is halved: e is the E8M0 exponent biased by 127, one more for the doubling); nibbles as Q4_0.
struct BlockMXFP4 {
  uint8_t e;
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockMXFP4) == 17);

// The e2m1 values of MXFP4, doubled (llama.cpp's kvalues_mxfp4): q's bit 3 is the sign.
inline constexpr int8_t kMxfp4Values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// TQ1_0: ternary weights w = d * t, t in {-1, 0, 1}, stored as t + 1 in base 3, five trits a byte
// (qs: 240 weights) and four in each qh byte (the last 16), each byte scaled to 256/243 so the top
// trit can be read off with a multiply.
struct BlockTQ1_0 {
  uint8_t qs[(kQK_K - 4 * kQK_K / 64) / 5];
  uint8_t qh[kQK_K / 64];
  uint16_t d;
};
static_assert(sizeof(BlockTQ1_0) == 54);

// TQ2_0: ternary weights w = d * (q - 1), q in [0, 2] in 2 bits; per 128 weights 32 bytes, weight
// 32 * k + l in bits 2k of byte l.
struct BlockTQ2_0 {
  uint8_t qs[kQK_K / 4];
  uint16_t d;
};
static_assert(sizeof(BlockTQ2_0) == 66);

// IQ2_XXS: 256 weights in 8 groups of 32 (4 × 8-weight grid points from kIq2xxsGrid each). Group g
// holds qs[4g .. 4g+3] as two u32: the first's bytes are the 4 grid indices, the second's 4 × 7 bits are
// the sign patterns (kIq2Signs) and its top 4 bits the scale s: w = d * (0.5 + s) / 4 * grid * sign.
struct BlockIQ2_XXS {
  uint16_t d;
  uint16_t qs[kQK_K / 8];
};
static_assert(sizeof(BlockIQ2_XXS) == 66);

// IQ2_XS: 32 u16 per block, each a 9-bit index into kIq2xsGrid and 7 sign bits; a 4-bit scale per 16
// weights (scales[g] low nibble: first half of group g): w = d * (0.5 + s) / 4 * grid * sign.
struct BlockIQ2_XS {
  uint16_t d;
  uint16_t qs[kQK_K / 8];
  uint8_t scales[kQK_K / 32];
};
static_assert(sizeof(BlockIQ2_XS) == 74);

// IQ2_S: 10-bit indices into kIq2sGrid, one per 8 weights: low 8 bits in qs[0..31], high 2 of index
// 4g + l in qh[g] bits 2l, 2l+1; one sign byte per 8 weights in qs[32..63] (bit j: weight j negative);
// 4-bit scales per 16 weights as IQ2_XS: w = d * (0.5 + s) / 4 * grid * sign.
struct BlockIQ2_S {
  uint16_t d;
  uint8_t qs[kQK_K / 4];
  uint8_t qh[kQK_K / 32];
  uint8_t scales[kQK_K / 32];
};
static_assert(sizeof(BlockIQ2_S) == 82);

// IQ3_XXS: 64 grid indices (4 weights each, kIq3xxsGrid), 8 per group of 32, in qs[0..63]; then per group
// a little-endian u32 in qs[64 + 4g..]: bits 7k..7k+6 index kIq2Signs (the signs of weights 8k..8k+7,
// an even number of minus signs), bits 28..31 the scale s: w = d * (0.5 + s) / 2 * grid * sign.
struct BlockIQ3_XXS {
  uint16_t d;
  uint8_t qs[3 * kQK_K / 8];
};
static_assert(sizeof(BlockIQ3_XXS) == 98);

// IQ3_S: 9-bit indices into kIq3sGrid, 8 per group g of 32 (low 8 bits in qs[8g + k], the ninth in bit k
// of qh[g]), one sign bit a weight (bit i of signs[4g + k]: weight 8k + i), a 4-bit scale s per group
// (scales[g / 2], even g in the low nibble): w = d * (1 + 2 s) * grid * sign.
struct BlockIQ3_S {
  uint16_t d;
  uint8_t qs[kQK_K / 4];
  uint8_t qh[kQK_K / 32];
  uint8_t signs[kQK_K / 8];
  uint8_t scales[kQK_K / 64];
};
static_assert(sizeof(BlockIQ3_S) == 110);

// IQ1_S: 11-bit indices into kIq1sGrid (8 weights in {-1, 0, 1} each), low 8 bits in qs[g] for group g
// of 8; qh[b] per 32 weights: bits 3k..3k+2 the high bits of its group k, bits 12..14 a scale s, bit 15
// the shift sign: w = d * (2 s + 1) * (grid + δ), δ = −kIq1Delta if bit 15 is set, else +kIq1Delta.
struct BlockIQ1_S {
  uint16_t d;
  uint8_t qs[kQK_K / 8];
  uint16_t qh[kQK_K / 32];
};
static_assert(sizeof(BlockIQ1_S) == 50);

// IQ1_M: as IQ1_S but with no d field, a shift sign per 8 weights and a 3-bit scale per 16. qs[g]: low 8
// index bits of group g; qh[b] per 16 weights (groups 2b, 2b + 1): bits 0..2 / 4..6 the high index bits,
// bit 3 / 7 the shift sign. scales read as four little-endian u16: u16 i holds the scales s of 16-weight
// blocks 4i..4i+3 in bits 0..11 (3 each) and, in bits 12..15, bits 4i..4i+3 of the fp16 super-block
// scale d (llama.cpp's iq1m_scale_t): w = d * (2 s + 1) * (grid ± kIq1Delta).
struct BlockIQ1_M {
  uint8_t qs[kQK_K / 8];
  uint8_t qh[kQK_K / 16];
  uint8_t scales[kQK_K / 32];
};
static_assert(sizeof(BlockIQ1_M) == 56);

// The shift of the IQ1 grids (llama.cpp's IQ1S_DELTA, IQ1M_DELTA).
inline constexpr float kIq1Delta = 0.125f;

}  // namespace quantllm::ggml
