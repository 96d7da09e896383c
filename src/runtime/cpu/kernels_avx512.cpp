// AVX-512 + VNNI kernels (compiled with -mavx512f/bw/vl/dq/vnni, called only when isa.h says so).
//
// The integer formats are all computed in kernels.h's form w = α·u − β: a decoder per format turns
// a step of the row (64 or 256 weights) into 64-code registers of unsigned codes u with a register of
// 16 lane scales α each (lane l covers codes 4l … 4l+3, the lanes of vpdpbusd) and a vector of the
// step's offsets β, one per 16 codes. The dot-product loops then do, per 64 codes and activation row:
// vpdpbusd (64 exact products into 16 int32 lanes), conversion to fp32, and one multiply-add with
// α·d (d, the activation scales per lane, ActRow::dexp); per step, one multiply-add of β with
// ActRow::dsum16. A step is decoded once for all activation rows of a call; prompts decode each
// weight row once per product (decode_with) and multiply 4 × 4 tiles of rows and tokens.
// No standard-library templates or shared inline functions are used here: a copy compiled with
// AVX-512 could be the one the linker keeps for the whole program.
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

// ---------------------------------------------------------------- activations

// Blocks of 4 (kernels.h): per register of 16 values, the four block maxima by two in-lane
// shuffles, scales and codes by the scalar reference's very operations (IEEE division, round to
// nearest even), and dsum16 as the reference adds it: block by block, left to right.
static_assert(kActBlock == 4, "the SIMD activation quantizers are written for blocks of 4");
void quantize_act(const float* x, int64_t n, int8_t* q, float* d, float* dsum16, float* dexp) {
  const __m512 sign = _mm512_set1_ps(-0.0f), k127 = _mm512_set1_ps(127.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __m512 xv = _mm512_loadu_ps(x + i);
    const __m512 a = _mm512_andnot_ps(sign, xv);
    __m512 m = _mm512_max_ps(a, _mm512_permute_ps(a, _MM_SHUFFLE(2, 3, 0, 1)));
    m = _mm512_max_ps(m, _mm512_permute_ps(m, _MM_SHUFFLE(1, 0, 3, 2)));  // each lane: its block's max|x|
    const __mmask16 nonzero = _mm512_cmp_ps_mask(m, _mm512_setzero_ps(), _CMP_GT_OQ);
    const __m512 id = _mm512_maskz_div_ps(nonzero, k127, m);
    const __m512 dv = _mm512_div_ps(m, k127);
    const __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(xv, id));  // round to nearest even, as std::nearbyint
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + i), _mm512_cvtsepi32_epi8(v));
    _mm512_mask_compressstoreu_ps(d + i / 4, 0x1111, dv);
    _mm512_mask_compressstoreu_ps(dexp + i / 4, 0x1111, dv);
    __m512i sum = _mm512_add_epi32(v, _mm512_shuffle_epi32(v, _MM_PERM_CDAB));
    sum = _mm512_add_epi32(sum, _mm512_shuffle_epi32(sum, _MM_PERM_BADC));  // each lane: its block's Σq
    alignas(64) float p[16];
    _mm512_store_ps(p, _mm512_mul_ps(_mm512_cvtepi32_ps(sum), dv));
    dsum16[i / 16] = ((p[0] + p[4]) + p[8]) + p[12];
  }
}

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

// ---------------------------------------------------------------- generation: row ranges
// Generation multiplies every weight row with one activation row. Each row's product is first left as
// a vector whose 16 lanes sum to it (float_row / int_row), and the vectors of 16 rows are then summed
// at once by a transposing tree (sum16): 45 shuffles and adds for 16 rows instead of two horizontal
// reductions and a call per row, which on 512-wide rows (the 33M model: four 128-code steps a row)
// cost about as much as the products. Every row's lanes are added in the same order wherever it sits
// among the 16, so a row's result does not depend on the range it was computed in (thread split;
// dot with na = 1 is a range of one row).

// v[0..15] → lane r = Σ of v[r]'s lanes: within each 128-bit quarter (l0 + l2) + (l1 + l3), then the
// quarters (q0 + q1) + (q2 + q3).
inline __m512 sum16(const __m512* v) {
  __m512 p[8], q[4], h[2];
  for (int i = 0; i < 8; ++i)  // [a0+a2 b0+b2 a1+a3 b1+b3] per quarter
    p[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  for (int i = 0; i < 4; ++i) {  // [a b c d] per quarter: rows 4i … 4i+3, each its quarter's sum
    const __m512d x = _mm512_castps_pd(p[2 * i]), y = _mm512_castps_pd(p[2 * i + 1]);
    q[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
  }
  for (int i = 0; i < 2; ++i)  // [q0: Q0+Q1, Q2+Q3 | q1: Q0+Q1, Q2+Q3] for q = q[2i], q[2i+1]
    h[i] = _mm512_add_ps(_mm512_shuffle_f32x4(q[2 * i], q[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(q[2 * i], q[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm512_add_ps(_mm512_shuffle_f32x4(h[0], h[1], _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_f32x4(h[0], h[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

// y[r] = Σ of row_vec(row r)'s lanes for r in [r0, r1); row r at data + (map ? map[r] : r)·row_bytes.
template <typename RowVec>
void gemv_range(const RowVec& row_vec, const uint8_t* data, size_t row_bytes, const int32_t* map, int64_t r0,
                int64_t r1, float* y) {
  __m512 v[16];
  for (int64_t b = r0; b < r1; b += 16) {
    const int nr = int(r1 - b < 16 ? r1 - b : 16);
    for (int i = 0; i < 16; ++i)
      v[i] = i < nr ? row_vec(data + size_t(map ? map[b + i] : b + i) * row_bytes) : _mm512_setzero_ps();
    _mm512_mask_storeu_ps(y + b, __mmask16(nr == 16 ? 0xffff : (1u << nr) - 1), sum16(v));
  }
}

template <typename Load>
__m512 float_row(const uint8_t* w, const float* x, int64_t n) {
  const Load load;
  const int64_t n64 = n / 64 * 64;
  const __mmask16 all = 0xffff;
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  for (int64_t i = 0; i < n64; i += 64) {
    for (int b = 0; b < 64 * Load::kBytes; b += 64)  // 4 KB ahead, as int_row
      _mm_prefetch(reinterpret_cast<const char*>(w) + i * Load::kBytes + 4096 + b, _MM_HINT_T0);
    for (int u = 0; u < 4; ++u) acc[u] = _mm512_fmadd_ps(load(w, i + 16 * u, all), _mm512_loadu_ps(x + i + 16 * u), acc[u]);
  }
  for (int64_t i = n64; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? all : __mmask16((1u << (n - i)) - 1);
    acc[0] = _mm512_fmadd_ps(load(w, i, m), _mm512_maskz_loadu_ps(m, x + i), acc[0]);
  }
  return _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
}

inline __m512 widen(__m128 v) { return _mm512_zextps128_ps512(v); }
inline __m512 widen(__m256 v) { return _mm512_zextps256_ps512(v); }
inline __m512 widen(__m512 v) { return v; }

// One weight row against one activation row, as a vector of partial sums (the offsets subtracted).
// The activation loads are hoisted out of the decode (about 8% faster than dot_int with na = 1);
// interleaving 2–4 rows to share them measured 30–50% slower on Zen 5.
template <typename Dec>
__m512 int_row(const Dec& dec, const ActRow& act, int64_t n) {
  using Beta = typename Dec::Beta;
  constexpr int kAcc = Dec::kChunks >= 4 ? 4 : 2;
  __m512 acc[kAcc];
  for (int k = 0; k < kAcc; ++k) acc[k] = _mm512_setzero_ps();
  Beta off;
  if constexpr (sizeof(Beta) == 16) off = _mm_setzero_ps();
  else if constexpr (sizeof(Beta) == 32) off = _mm256_setzero_ps();
  else off = _mm512_setzero_ps();
  // Prefetch 4 KB ahead: the rows stream from memory and one row is short (0.3–5 KB), so the hardware
  // prefetcher alone leaves the start of every row waiting.
  constexpr int64_t kAhead = (4096 + Dec::kStepBytes - 1) / Dec::kStepBytes;
  for (int64_t s = 0; s < n / Dec::kStep; ++s) {
    __m512i q[Dec::kChunks];
    __m512 dx[Dec::kChunks];
    for (int c = 0; c < Dec::kChunks; ++c) {
      const int64_t i0 = s * Dec::kStep + 64 * c;
      q[c] = _mm512_loadu_si512(act.q + i0);
      dx[c] = _mm512_loadu_ps(act.dexp + i0 / 4);
    }
    const char* next = reinterpret_cast<const char*>(dec.w) + (s + kAhead) * Dec::kStepBytes;
    for (int64_t b = 0; b < Dec::kStepBytes; b += 64) _mm_prefetch(next + b, _MM_HINT_T0);
    __m512i u[Dec::kChunks];
    __m512 alpha[Dec::kChunks];
    Beta beta;
    dec.decode(s, u, alpha, beta);
    for (int c = 0; c < Dec::kChunks; ++c) {
      const __m512i prod = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u[c], q[c]);
      const int k = int((s * Dec::kChunks + c) % kAcc);
      acc[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(prod), _mm512_mul_ps(alpha[c], dx[c]), acc[k]);
    }
    off = offset_fma(beta, act.dsum16 + s * (Dec::kStep / 16), off);
  }
  __m512 t = acc[0];
  for (int k = 1; k < kAcc; ++k) t = _mm512_add_ps(t, acc[k]);
  return _mm512_sub_ps(t, widen(off));
}

// Kernels::gemv per format: the 128-code decoders where the rows allow.
template <typename Load>
void gemv_float(const uint8_t* data, size_t row_bytes, const int32_t* map, int64_t r0, int64_t r1, const ActRow& act,
                const RowParams& p, float* y) {
  gemv_range([&](const uint8_t* w) { return float_row<Load>(w, act.x, p.n); }, data, row_bytes, map, r0, r1, y);
}
template <typename Dec>
void gemv_simple(const uint8_t* data, size_t row_bytes, const int32_t* map, int64_t r0, int64_t r1, const ActRow& act,
                 const RowParams& p, float* y) {
  gemv_range([&](const uint8_t* w) { return int_row(Dec{w}, act, p.n); }, data, row_bytes, map, r0, r1, y);
}
template <typename Dec, typename Dec4>
void gemv_blocks(const uint8_t* data, size_t row_bytes, const int32_t* map, int64_t r0, int64_t r1, const ActRow& act,
                 const RowParams& p, float* y) {
  if (p.n % 128 == 0) gemv_range([&](const uint8_t* w) { return int_row(Dec4{w}, act, p.n); }, data, row_bytes, map, r0, r1, y);
  else gemv_range([&](const uint8_t* w) { return int_row(Dec{w}, act, p.n); }, data, row_bytes, map, r0, r1, y);
}
void gemv_gq4(const uint8_t* data, size_t row_bytes, const int32_t* map, int64_t r0, int64_t r1, const ActRow& act,
              const RowParams& p, float* y) {
  if (p.n % 128 == 0)
    gemv_range([&](const uint8_t* w) { return int_row(DecGQ4x2{w, p.n, p.group_size, p.group_shift}, act, p.n); },
               data, row_bytes, map, r0, r1, y);
  else
    gemv_range([&](const uint8_t* w) { return int_row(DecGQ4{w, p.n, p.group_size, p.group_shift}, act, p.n); },
               data, row_bytes, map, r0, r1, y);
}

// Kernels::dot: one activation row is a gemv range of one row (the same numbers as generation);
// several rows (short prompts) decode each step once for all of them (dot_int).
template <GemvFn kGemv>
void dot_one_or(const uint8_t* w, const ActRow* act, int na, const RowParams& p, float* out, DotFn many) {
  if (na == 1) kGemv(w, 0, nullptr, 0, 1, act[0], p, out);
  else many(w, act, na, p, out);
}
template <typename Load>
void dot_float(const uint8_t* w, const ActRow* act, int na, const RowParams& p, float* out) {
  dot_one_or<gemv_float<Load>>(w, act, na, p, out, dot_float_many<Load>);
}
template <typename Dec>
void dot_simple(const uint8_t* w, const ActRow* act, int na, const RowParams& p, float* out) {
  dot_one_or<gemv_simple<Dec>>(w, act, na, p, out, [](const uint8_t* w, const ActRow* act, int na, const RowParams& p, float* out) {
    dot_int(Dec{w}, act, na, p.n, out);
  });
}
template <typename Dec, typename Dec4>
void dot_blocks(const uint8_t* w, const ActRow* act, int na, const RowParams& p, float* out) {
  dot_one_or<gemv_blocks<Dec, Dec4>>(w, act, na, p, out, [](const uint8_t* w, const ActRow* act, int na, const RowParams& p, float* out) {
    dot_int(Dec{w}, act, na, p.n, out);
  });
}
void dot_gq4(const uint8_t* w, const ActRow* act, int na, const RowParams& p, float* out) {
  dot_one_or<gemv_gq4>(w, act, na, p, out, [](const uint8_t* w, const ActRow* act, int na, const RowParams& p, float* out) {
    dot_int(DecGQ4{w, p.n, p.group_size, p.group_shift}, act, na, p.n, out);
  });
}

// ---------------------------------------------------------------- prompt processing

template <typename Dec>
void decode_with(const Dec& dec, int64_t n, const DecodedRow& out) {
  for (int64_t s = 0; s < n / Dec::kStep; ++s) {
    __m512i u[Dec::kChunks];
    __m512 alpha[Dec::kChunks];
    typename Dec::Beta beta;
    dec.decode(s, u, alpha, beta);
    store_beta(out.beta + s * (Dec::kStep / 16), beta);
    for (int c = 0; c < Dec::kChunks; ++c) {
      const int64_t i0 = s * Dec::kStep + 64 * c;
      _mm512_storeu_si512(out.u + i0, u[c]);
      _mm512_storeu_ps(out.alpha + i0 / 4, alpha[c]);
    }
  }
}
template <typename Dec>
void decode_simple(const uint8_t* w, const RowParams& p, const DecodedRow& out) {
  decode_with(Dec{w}, p.n, out);
}
void decode_gq4(const uint8_t* w, const RowParams& p, const DecodedRow& out) {
  decode_with(DecGQ4{w, p.n, p.group_size, p.group_shift}, p.n, out);
}

// NR decoded weight rows × NA activation rows: per 64 codes and pair, vpdpbusd, conversion and one
// multiply-add with α·d; the offsets β·dsum16 are folded into the same accumulators every 256 codes
// (16 offsets a register), so each pair ends in one horizontal sum.
template <int NR, int NA>
void gemm_tile_t(const DecodedRow* w, const ActRow* act, int64_t n, float* out, int64_t ldo) {
  __m512 acc[NR][NA];
  for (int r = 0; r < NR; ++r)
    for (int a = 0; a < NA; ++a) acc[r][a] = _mm512_setzero_ps();
  auto chunk = [&](int64_t i) {
    __m512i q[NA];
    __m512 dx[NA];
    for (int a = 0; a < NA; ++a) q[a] = _mm512_loadu_si512(act[a].q + i), dx[a] = _mm512_loadu_ps(act[a].dexp + i / 4);
    for (int r = 0; r < NR; ++r) {
      const __m512i u = _mm512_loadu_si512(w[r].u + i);
      const __m512 al = _mm512_loadu_ps(w[r].alpha + i / 4);
      for (int a = 0; a < NA; ++a) {
        const __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, q[a]);
        acc[r][a] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(al, dx[a]), acc[r][a]);
      }
    }
  };
  auto offsets = [&](int64_t h, __mmask16 m) {
    __m512 ds[NA];
    for (int a = 0; a < NA; ++a) ds[a] = _mm512_maskz_loadu_ps(m, act[a].dsum16 + h);
    for (int r = 0; r < NR; ++r) {
      const __m512 be = _mm512_maskz_loadu_ps(m, w[r].beta + h);
      for (int a = 0; a < NA; ++a) acc[r][a] = _mm512_fnmadd_ps(be, ds[a], acc[r][a]);
    }
  };
  int64_t i = 0;
  for (; i + 256 <= n; i += 256) {
    for (int c = 0; c < 4; ++c) chunk(i + 64 * c);
    offsets(i / 16, 0xffff);
  }
  for (; i < n; i += 64) {
    chunk(i);
    offsets(i / 16, 0x000f);
  }
  for (int r = 0; r < NR; ++r)
    for (int a = 0; a < NA; ++a) out[a * ldo + r] = _mm512_reduce_add_ps(acc[r][a]);
}

using TileFn = void (*)(const DecodedRow*, const ActRow*, int64_t, float*, int64_t);
template <int NR>
constexpr TileFn tiles_of[4] = {gemm_tile_t<NR, 1>, gemm_tile_t<NR, 2>, gemm_tile_t<NR, 3>, gemm_tile_t<NR, 4>};
constexpr const TileFn* kTiles[4] = {tiles_of<1>, tiles_of<2>, tiles_of<3>, tiles_of<4>};

void gemm_tile(const DecodedRow* w, int nr, const ActRow* act, int na, int64_t n, float* out, int64_t ldo) {
  kTiles[nr - 1][na - 1](w, act, n, out, ldo);
}

// ---------------------------------------------------------------- float formats, prompts

// 16×16 transpose in registers: r[i] holds row i on entry, column i on exit.
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

template <typename Load>
void float_panel(const uint8_t* const* w, int nr, const RowParams&, int64_t k0, int64_t kn, float* panel) {
  const Load load;
  for (int64_t k = 0; k < kn; k += 16) {
    const __mmask16 m = kn - k >= 16 ? __mmask16(0xffff) : __mmask16((1u << (kn - k)) - 1);
    __m512 r[16];
    for (int i = 0; i < 16; ++i) r[i] = i < nr ? load(w[i], k0 + k, m) : _mm512_setzero_ps();
    transpose16(r);
    for (int i = 0; i < 16 && k + i < kn; ++i) _mm512_storeu_ps(panel + (k + i) * 16, r[i]);
  }
}

// Integer formats widened exactly (w = α·u − β, kernels.h) for the fp32 tiles: each row's columns
// [k0, k0 + kn) decoded step by step into fp32, then 16 × 16 transposes into the panel.
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

template <typename Dec>
void int_float_panel(const uint8_t* const* w, int nr, const RowParams& p, int64_t k0, int64_t kn, float* panel) {
  constexpr int64_t kMaxK = 512;
  alignas(64) float rows[16][kMaxK];
  for (int r = 0; r < 16; ++r) {
    if (r >= nr) {
      for (int64_t k = 0; k < kn; k += 16) _mm512_store_ps(rows[r] + k, _mm512_setzero_ps());
      continue;
    }
    const Dec dec = make_dec<Dec>(w[r], p);
    for (int64_t s = k0 / Dec::kStep; s < (k0 + kn) / Dec::kStep; ++s) {
      __m512i u[Dec::kChunks];
      __m512 alpha[Dec::kChunks];
      typename Dec::Beta beta;
      dec.decode(s, u, alpha, beta);
      for (int c = 0; c < Dec::kChunks; ++c)
        for (int j = 0; j < 4; ++j) {  // 16 codes: lanes 4j … 4j+3 of α, β of 16-piece 4c + j of the step
          const __m512 codes = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(u[c], j)));
          const __m512 a = _mm512_permutexvar_ps(
              _mm512_set_epi32(4 * j + 3, 4 * j + 3, 4 * j + 3, 4 * j + 3, 4 * j + 2, 4 * j + 2, 4 * j + 2, 4 * j + 2,
                               4 * j + 1, 4 * j + 1, 4 * j + 1, 4 * j + 1, 4 * j, 4 * j, 4 * j, 4 * j),
              alpha[c]);
          const float b = beta_at(beta, 4 * c + j);
          _mm512_store_ps(rows[r] + s * Dec::kStep - k0 + 64 * c + 16 * j,
                          _mm512_fmsub_ps(a, codes, _mm512_set1_ps(b)));
        }
    }
  }
  for (int64_t k = 0; k < kn; k += 16) {
    __m512 t[16];
    for (int i = 0; i < 16; ++i) t[i] = _mm512_load_ps(rows[i] + k);
    transpose16(t);
    for (int i = 0; i < 16; ++i) _mm512_storeu_ps(panel + (k + i) * 16, t[i]);
  }
}

// NA activation rows × two panels of 16 rows (in the lanes): per k, two panel loads and 2·NA FMAs
// with the activation broadcast from memory (24 accumulators: loads stay below the FMA rate).
template <int NA>
void float_tile_t(const float* panel0, const float* panel1, __mmask16 m0, __mmask16 m1, const float* const* x,
                  int64_t kn, float* out, int64_t ldo, bool accumulate) {
  __m512 acc0[NA], acc1[NA];
  for (int a = 0; a < NA; ++a) {
    acc0[a] = accumulate ? _mm512_maskz_loadu_ps(m0, out + a * ldo) : _mm512_setzero_ps();
    acc1[a] = accumulate ? _mm512_maskz_loadu_ps(m1, out + a * ldo + 16) : _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < kn; ++k) {
    const __m512 w0 = _mm512_loadu_ps(panel0 + k * 16), w1 = _mm512_loadu_ps(panel1 + k * 16);
    for (int a = 0; a < NA; ++a) {
      const __m512 xa = _mm512_set1_ps(x[a][k]);
      acc0[a] = _mm512_fmadd_ps(w0, xa, acc0[a]);
      acc1[a] = _mm512_fmadd_ps(w1, xa, acc1[a]);
    }
  }
  for (int a = 0; a < NA; ++a) {
    _mm512_mask_storeu_ps(out + a * ldo, m0, acc0[a]);
    if (m1) _mm512_mask_storeu_ps(out + a * ldo + 16, m1, acc1[a]);
  }
}

using FloatTileT = void (*)(const float*, const float*, __mmask16, __mmask16, const float* const*, int64_t, float*,
                            int64_t, bool);
constexpr FloatTileT kFloatTiles[kFloatTileRows] = {
    float_tile_t<1>, float_tile_t<2>, float_tile_t<3>, float_tile_t<4>,  float_tile_t<5>,  float_tile_t<6>,
    float_tile_t<7>, float_tile_t<8>, float_tile_t<9>, float_tile_t<10>, float_tile_t<11>, float_tile_t<12>};

// nr ≤ 32 rows: the first panel at `panel`, the second (rows 16 … 31) at panel + 16·kn.
void float_tile(const float* panel, int nr, const float* const* x, int na, int64_t kn, float* out, int64_t ldo,
                bool accumulate) {
  auto mask = [](int r) { return r >= 16 ? __mmask16(0xffff) : r <= 0 ? __mmask16(0) : __mmask16((1u << r) - 1); };
  kFloatTiles[na - 1](panel, panel + 16 * kn, mask(nr), mask(nr - 16), x, kn, out, ldo, accumulate);
}

// ---------------------------------------------------------------- softmax (kernels.h)

// exp(x) for x ≤ 0 (scores minus their maximum): x = k·ln 2 + r with |r| ≤ ln 2 / 2 (ln 2 in two
// parts, so k·ln2_hi is exact for |k| < 2⁸), exp(r) by its Taylor polynomial to degree 7 (truncation
// < 6e-9 relative), times 2^k by vscalefps (which underflows gracefully to 0 below −104).
inline __m512 exp_nonpositive(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));  // also −inf → −104
  const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693145751953125f), x);  // ln2_hi: 16 significant bits
  r = _mm512_fnmadd_ps(k, _mm512_set1_ps(1.4286068202862268e-06f), r);    // ln2 − ln2_hi
  __m512 p = _mm512_set1_ps(1.0f / 5040);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, k);
}

inline __mmask16 tail_mask(int64_t left) { return left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1); }

void softmax(float* row, int64_t lo, int64_t hi, int64_t n) {
  __m512 mx = _mm512_set1_ps(-__builtin_inff());
  for (int64_t p = lo; p < hi; p += 16)
    mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(mx, tail_mask(hi - p), row + p));
  const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
  __m512 sum = _mm512_setzero_ps();
  for (int64_t p = lo; p < hi; p += 16) {
    const __mmask16 k = tail_mask(hi - p);
    const __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, row + p), m));
    _mm512_mask_storeu_ps(row + p, k, e);
    sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(k, e));
  }
  alignas(64) float parts[16];
  _mm512_store_ps(parts, sum);
  double total = 0;
  for (float v : parts) total += double(v);
  const __m512 inv = _mm512_set1_ps(float(1.0 / total));
  for (int64_t p = lo; p < hi; p += 16) {
    const __mmask16 k = tail_mask(hi - p);
    _mm512_mask_storeu_ps(row + p, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, row + p), inv));
  }
  std::memset(row, 0, size_t(lo) * sizeof(float));
  std::memset(row + hi, 0, size_t(n - hi) * sizeof(float));
}

// ---------------------------------------------------------------- SiLU (kernels.h)

void silu_mul(float* up, const float* gate, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f), sign = _mm512_set1_ps(-0.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = tail_mask(n - i);
    const __m512 g = _mm512_maskz_loadu_ps(k, gate + i);
    const __m512 e = exp_nonpositive(_mm512_or_ps(g, sign));  // e^−|g|
    const __mmask16 neg = _mm512_cmp_ps_mask(g, _mm512_setzero_ps(), _CMP_LT_OQ);
    // sigmoid(g) = 1/(1 + e) for g ≥ 0, e/(1 + e) for g < 0
    const __m512 sig = _mm512_div_ps(_mm512_mask_blend_ps(neg, one, e), _mm512_add_ps(one, e));
    _mm512_mask_storeu_ps(up + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, up + i), _mm512_mul_ps(g, sig)));
  }
}

const Kernels kAvx512 = {
    Isa::Avx512,
    {dot_float<LoadF32>, dot_float<LoadF16>, dot_float<LoadBF16>, dot_blocks<DecQ8_0, DecQ8_0x4>,
     dot_blocks<DecQ4_0, DecQ4_0x4>,
     dot_simple<DecQ45K<false>>, dot_simple<DecQ45K<true>>, dot_simple<DecQ6K>, dot_gq4, dot_simple<DecIQ4NL>,
     dot_simple<DecIQ4XS>},
    {gemv_float<LoadF32>, gemv_float<LoadF16>, gemv_float<LoadBF16>, gemv_blocks<DecQ8_0, DecQ8_0x4>,
     gemv_blocks<DecQ4_0, DecQ4_0x4>, gemv_simple<DecQ45K<false>>, gemv_simple<DecQ45K<true>>, gemv_simple<DecQ6K>,
     gemv_gq4, gemv_simple<DecIQ4NL>, gemv_simple<DecIQ4XS>},
    quantize_act,
    {nullptr, nullptr, nullptr, decode_simple<DecQ8_0>, decode_simple<DecQ4_0>, decode_simple<DecQ45K<false>>,
     decode_simple<DecQ45K<true>>, decode_simple<DecQ6K>, decode_gq4, decode_simple<DecIQ4NL>,
     decode_simple<DecIQ4XS>},
    {nullptr, nullptr, nullptr, gemm_tile, gemm_tile, gemm_tile, gemm_tile, gemm_tile, gemm_tile, gemm_tile, gemm_tile},
    {float_panel<LoadF32>, float_panel<LoadF16>, float_panel<LoadBF16>, int_float_panel<DecQ8_0>,
     int_float_panel<DecQ4_0>, int_float_panel<DecQ45K<false>>, int_float_panel<DecQ45K<true>>, int_float_panel<DecQ6K>,
     int_float_panel<DecGQ4>, int_float_panel<DecIQ4NL>, int_float_panel<DecIQ4XS>},
    float_tile,
    softmax,
    silu_mul,
};

// ---------------------------------------------------------------- bf16 prompts (AVX-512 BF16)
// Compiled for the base flags plus avx512bf16 per function; called only when the CPU has it.

#define QL_BF16 __attribute__((target("avx512bf16")))

QL_BF16 void bf16_act(const float* x, int64_t n, uint32_t* pairs, float* xsum) {
  for (int64_t i = 0; i < n; i += 32) {
    const __m512 lo = _mm512_loadu_ps(x + i), hi = _mm512_loadu_ps(x + i + 16);
    const __m512i b = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo));  // 32 bf16 in order
    _mm512_storeu_si512(pairs + i / 2, b);
    // the rounded values back in fp32: low halves and high halves of each 32-bit word
    const __m512 even = _mm512_castsi512_ps(_mm512_slli_epi32(b, 16));
    const __m512 odd = _mm512_castsi512_ps(_mm512_and_si512(b, _mm512_set1_epi32(int(0xffff0000u))));
    const __m512 pairsum = _mm512_add_ps(even, odd);  // lane j: codes 2j, 2j+1
    xsum[i / 16] = _mm512_reduce_add_ps(_mm512_maskz_mov_ps(0x00ff, pairsum));
    xsum[i / 16 + 1] = _mm512_reduce_add_ps(_mm512_maskz_mov_ps(0xff00, pairsum));
  }
}

// Integer formats: codes u (exact in bf16: integers ≤ 255), α and β per 16 codes, 16 rows in lanes.
template <typename Dec>
QL_BF16 void bf16_int_panel(const uint8_t* const* w, int nr, const RowParams& p, int64_t k0, int64_t kn,
                            uint32_t* pairs, float* alpha, float* beta) {
  constexpr int64_t kMaxK = 512;
  alignas(64) uint32_t rows[16][kMaxK / 2];
  for (int r = 0; r < 16; ++r) {
    if (r >= nr) {
      for (int64_t k = 0; k < kn; k += 32) _mm512_store_si512(rows[r] + k / 2, _mm512_setzero_si512());
      for (int64_t h = 0; h < kn / 16; ++h) alpha[h * 16 + r] = beta[h * 16 + r] = 0.0f;
      continue;
    }
    const Dec dec = make_dec<Dec>(w[r], p);
    for (int64_t s = k0 / Dec::kStep; s < (k0 + kn) / Dec::kStep; ++s) {
      __m512i u[Dec::kChunks];
      __m512 al[Dec::kChunks];
      typename Dec::Beta be;
      dec.decode(s, u, al, be);
      const int64_t base = s * Dec::kStep - k0;
      for (int c = 0; c < Dec::kChunks; ++c) {
        for (int j = 0; j < 2; ++j) {  // 32 codes → 16 bf16 pairs
          const __m512 c0 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(u[c], 2 * j)));
          const __m512 c1 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(u[c], 2 * j + 1)));
          _mm512_store_si512(rows[r] + (base + 64 * c + 32 * j) / 2, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(c1, c0)));
        }
        alignas(64) float a16[16];
        _mm512_store_ps(a16, al[c]);
        for (int h = 0; h < 4; ++h) alpha[((base + 64 * c) / 16 + h) * 16 + r] = a16[4 * h];
        for (int h = 0; h < 4; ++h) beta[((base + 64 * c) / 16 + h) * 16 + r] = beta_at(be, 4 * c + h);
      }
    }
  }
  for (int64_t k = 0; k < kn / 2; k += 16) {  // 16 × 16 transposes of 32-bit pairs
    __m512 t[16];
    for (int i = 0; i < 16; ++i) t[i] = _mm512_castsi512_ps(_mm512_load_si512(rows[i] + k));
    transpose16(t);
    for (int i = 0; i < 16; ++i) _mm512_storeu_si512(pairs + (k + i) * 16, _mm512_castps_si512(t[i]));
  }
}

// BF16 checkpoint weights: already bf16.
QL_BF16 void bf16_plain_panel(const uint8_t* const* w, int nr, const RowParams&, int64_t k0, int64_t kn,
                              uint32_t* pairs, float*, float*) {
  for (int64_t k = 0; k < kn / 2; k += 16) {
    __m512 t[16];
    for (int i = 0; i < 16; ++i)
      t[i] = i < nr ? _mm512_loadu_ps(reinterpret_cast<const float*>(w[i] + 2 * (k0 + 2 * k))) : _mm512_setzero_ps();
    transpose16(t);
    for (int i = 0; i < 16; ++i) _mm512_storeu_si512(pairs + (k + i) * 16, _mm512_castps_si512(t[i]));
  }
}

// Two panels (32 rows) × NA tokens. Per pair of codes: two panel loads, 2·NA vdpbf16ps with the token's
// pair broadcast; per group, the group sums scaled by α and the offsets β·Σx̂ taken out.
template <int NA, bool kPlain>
QL_BF16 void bf16_tile_t(const uint32_t* pairs, const float* alpha, const float* beta, __mmask16 m0, __mmask16 m1,
                         const uint32_t* const* x, const float* const* xsum, int64_t kn, int group, float* out,
                         int64_t ldo, bool accumulate) {
  const uint32_t* p1 = pairs + kn / 2 * 16;
  const float *a1 = alpha + kn / 16 * 16, *b1 = beta + kn / 16 * 16;
  __m512 acc0[NA], acc1[NA];
  for (int a = 0; a < NA; ++a) {
    acc0[a] = accumulate ? _mm512_maskz_loadu_ps(m0, out + a * ldo) : _mm512_setzero_ps();
    acc1[a] = accumulate ? _mm512_maskz_loadu_ps(m1, out + a * ldo + 16) : _mm512_setzero_ps();
  }
  const int64_t gp = kPlain ? kn / 2 : group / 2;  // pairs per group
  for (int64_t g0 = 0; g0 < kn / 2; g0 += gp) {
    __m512 s0[NA], s1[NA];
    for (int a = 0; a < NA; ++a) s0[a] = kPlain ? acc0[a] : _mm512_setzero_ps(), s1[a] = kPlain ? acc1[a] : _mm512_setzero_ps();
    for (int64_t k = g0; k < g0 + gp; ++k) {
      const __m512bh w0 = reinterpret_cast<__m512bh>(_mm512_loadu_si512(pairs + k * 16));
      const __m512bh w1 = reinterpret_cast<__m512bh>(_mm512_loadu_si512(p1 + k * 16));
      for (int a = 0; a < NA; ++a) {
        const __m512bh xa = reinterpret_cast<__m512bh>(_mm512_set1_epi32(int(x[a][k])));
        s0[a] = _mm512_dpbf16_ps(s0[a], w0, xa);
        s1[a] = _mm512_dpbf16_ps(s1[a], w1, xa);
      }
    }
    if constexpr (kPlain) {
      for (int a = 0; a < NA; ++a) acc0[a] = s0[a], acc1[a] = s1[a];
    } else {
      const int64_t h0 = 2 * g0 / 16;  // the group's first 16-code piece
      const __m512 al0 = _mm512_loadu_ps(alpha + h0 * 16), al1 = _mm512_loadu_ps(a1 + h0 * 16);
      for (int a = 0; a < NA; ++a) {
        acc0[a] = _mm512_fmadd_ps(s0[a], al0, acc0[a]);
        acc1[a] = _mm512_fmadd_ps(s1[a], al1, acc1[a]);
      }
      for (int64_t h = h0; h < h0 + group / 16; ++h) {
        const __m512 be0 = _mm512_loadu_ps(beta + h * 16), be1 = _mm512_loadu_ps(b1 + h * 16);
        for (int a = 0; a < NA; ++a) {
          const __m512 xs = _mm512_set1_ps(xsum[a][h]);
          acc0[a] = _mm512_fnmadd_ps(be0, xs, acc0[a]);
          acc1[a] = _mm512_fnmadd_ps(be1, xs, acc1[a]);
        }
      }
    }
  }
  for (int a = 0; a < NA; ++a) {
    _mm512_mask_storeu_ps(out + a * ldo, m0, acc0[a]);
    if (m1) _mm512_mask_storeu_ps(out + a * ldo + 16, m1, acc1[a]);
  }
}

using Bf16TileT = void (*)(const uint32_t*, const float*, const float*, __mmask16, __mmask16, const uint32_t* const*,
                           const float* const*, int64_t, int, float*, int64_t, bool);
template <bool kPlain>
constexpr Bf16TileT kBf16Tiles[kBf16TileRows] = {bf16_tile_t<1, kPlain>, bf16_tile_t<2, kPlain>, bf16_tile_t<3, kPlain>,
                                                 bf16_tile_t<4, kPlain>, bf16_tile_t<5, kPlain>, bf16_tile_t<6, kPlain>};

void bf16_tile(const uint32_t* pairs, const float* alpha, const float* beta, int nr, const uint32_t* const* x,
               const float* const* xsum, int na, int64_t kn, int group, bool plain, float* out, int64_t ldo,
               bool accumulate) {
  auto mask = [](int r) { return r >= 16 ? __mmask16(0xffff) : r <= 0 ? __mmask16(0) : __mmask16((1u << r) - 1); };
  (plain ? kBf16Tiles<true> : kBf16Tiles<false>)[na - 1](pairs, alpha, beta, mask(nr), mask(nr - 16), x, xsum, kn,
                                                         group, out, ldo, accumulate);
}

const Bf16Kernels kBf16 = {
    bf16_act,
    {nullptr, nullptr, bf16_plain_panel, bf16_int_panel<DecQ8_0>, bf16_int_panel<DecQ4_0>,
     bf16_int_panel<DecQ45K<false>>, bf16_int_panel<DecQ45K<true>>, bf16_int_panel<DecQ6K>, bf16_int_panel<DecGQ4>,
     bf16_int_panel<DecIQ4NL>, bf16_int_panel<DecIQ4XS>},
    bf16_tile,
};

}  // namespace

const Kernels& kernels_avx512() { return kAvx512; }

namespace {
bool bf16_default() {
  __builtin_cpu_init();
  const char* e = std::getenv("QUANTLLM_BF16");
  return __builtin_cpu_supports("avx512bf16") && !(e && std::strcmp(e, "0") == 0);
}
int g_bf16 = -1;  // -1: not decided yet
}  // namespace

const Bf16Kernels* bf16_kernels() {
  if (g_bf16 < 0) g_bf16 = bf16_default() ? 1 : 0;
  return g_bf16 == 1 && active_isa() == Isa::Avx512 ? &kBf16 : nullptr;
}

void set_bf16_enabled(bool on) {
  __builtin_cpu_init();
  g_bf16 = on && __builtin_cpu_supports("avx512bf16") ? 1 : 0;
}

}  // namespace quantllm::cpu

#else  // built without the flags (not x86-64): never selected, detected_isa() is lower

namespace quantllm::cpu {
const Kernels& kernels_avx512() { return kernels_scalar(); }
const Bf16Kernels* bf16_kernels() { return nullptr; }
void set_bf16_enabled(bool) {}
}  // namespace quantllm::cpu

#endif
