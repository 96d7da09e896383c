// AVX2 + FMA + F16C kernels (compiled with -mavx2 -mfma -mf16c, called only when isa.h says so):
// the level of CPUs without AVX-512 VNNI.
//
// Same structure as kernels_avx512.cpp (kernels.h's form w = α·u − β, a decoder per format, one dot
// loop), in 256-bit registers of 32 codes. Without vpdpbusd the products are vpmaddubsw (pairs of
// unsigned × signed codes into int16) then vpmaddwd with ones (into int32). vpmaddubsw saturates
// above 32767, which codes up to 63 (Q6_K) never reach (2·63·127 = 16002); Q8_0's signed codes use
// the sign trick instead of an offset: |w|·(sign(w)·x), at most 2·127·127 = 32258 (IQ4's signed levels too).
//
// No standard-library templates or shared inline functions are used here: a copy compiled with
// AVX2 could be the one the linker keeps for the whole program.
#include "runtime/cpu/kernels.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#include "quant/ggml/blocks.h"
#include "runtime/cpu/kernels_lowbit.h"

#include <immintrin.h>

#include <cstring>
#include <type_traits>

namespace quantllm::cpu {

using namespace quantllm::ggml;

namespace {

inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline int hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

// ---------------------------------------------------------------- activations

// Blocks of 4 (kernels.h), 32 values a step: per register of 8, the two block maxima by in-lane
// shuffles, scales and codes by the scalar reference's very operations, dsum16 added block by block.
static_assert(kActBlock == 4, "the SIMD activation quantizers are written for blocks of 4");
void quantize_act(const float* x, int64_t n, int8_t* q, float* d, float* dsum16, float* dexp) {
  const __m256 sign = _mm256_set1_ps(-0.0f), k127 = _mm256_set1_ps(127.0f);
  for (int64_t g = 0; g < n / 32; ++g) {
    __m256i iv[4];
    float p[8];  // d·Σq of the 8 blocks
    for (int k = 0; k < 4; ++k) {
      const __m256 xv = _mm256_loadu_ps(x + 32 * g + 8 * k);
      const __m256 a = _mm256_andnot_ps(sign, xv);
      __m256 m = _mm256_max_ps(a, _mm256_permute_ps(a, _MM_SHUFFLE(2, 3, 0, 1)));
      m = _mm256_max_ps(m, _mm256_permute_ps(m, _MM_SHUFFLE(1, 0, 3, 2)));  // each lane: its block's max|x|
      const __m256 nonzero = _mm256_cmp_ps(m, _mm256_setzero_ps(), _CMP_GT_OQ);
      const __m256 id = _mm256_and_ps(_mm256_div_ps(k127, m), nonzero);
      const __m256 dv = _mm256_div_ps(m, k127);
      iv[k] = _mm256_cvtps_epi32(_mm256_mul_ps(xv, id));  // round to nearest even, as std::nearbyint
      __m256i sum = _mm256_add_epi32(iv[k], _mm256_shuffle_epi32(iv[k], _MM_SHUFFLE(2, 3, 0, 1)));
      sum = _mm256_add_epi32(sum, _mm256_shuffle_epi32(sum, _MM_SHUFFLE(1, 0, 3, 2)));
      const __m256 pv = _mm256_mul_ps(_mm256_cvtepi32_ps(sum), dv);
      const int64_t b = (32 * g + 8 * k) / 4;
      d[b] = dexp[b] = _mm256_cvtss_f32(dv);
      d[b + 1] = dexp[b + 1] = _mm_cvtss_f32(_mm256_extractf128_ps(dv, 1));
      p[2 * k] = _mm256_cvtss_f32(pv);
      p[2 * k + 1] = _mm_cvtss_f32(_mm256_extractf128_ps(pv, 1));
    }
    dsum16[2 * g] = ((p[0] + p[1]) + p[2]) + p[3];
    dsum16[2 * g + 1] = ((p[4] + p[5]) + p[6]) + p[7];
    // Pack 32 int32 to int8: the lane-wise packs interleave 4-value pieces; the permute restores order.
    const __m256i p01 = _mm256_packs_epi32(iv[0], iv[1]), p23 = _mm256_packs_epi32(iv[2], iv[3]);
    const __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p01, p23), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + g * 32), bytes);
  }
}

// ---------------------------------------------------------------- float weights

struct LoadF32 {
  __m256 operator()(const uint8_t* w, int64_t i) const { return _mm256_loadu_ps(reinterpret_cast<const float*>(w) + i); }
  float one(const uint8_t* w, int64_t i) const {
    float v;
    std::memcpy(&v, w + 4 * i, 4);
    return v;
  }
};
struct LoadF16 {
  __m256 operator()(const uint8_t* w, int64_t i) const {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2 * i)));
  }
  float one(const uint8_t* w, int64_t i) const {
    uint16_t h;
    std::memcpy(&h, w + 2 * i, 2);
    return h2f(h);
  }
};
struct LoadBF16 {
  __m256 operator()(const uint8_t* w, int64_t i) const {
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2 * i)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
  }
  float one(const uint8_t* w, int64_t i) const {
    uint16_t h;
    std::memcpy(&h, w + 2 * i, 2);
    const uint32_t bits = uint32_t(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
};

// Several activation rows (short prompts): each weight vector loaded once for all of them.
template <typename Load>
void dot_float_many(const uint8_t* w, const ActRow* act, int na, const RowParams& p, float* out) {
  const Load load;
  const int64_t n = p.n, n32 = n / 32 * 32;
  __m256 acc[kMaxActRows][4];
  for (int a = 0; a < na; ++a)
    for (int u = 0; u < 4; ++u) acc[a][u] = _mm256_setzero_ps();
  for (int64_t i = 0; i < n32; i += 32) {
    __m256 wv[4];
    for (int u = 0; u < 4; ++u) wv[u] = load(w, i + 8 * u);
    for (int a = 0; a < na; ++a)
      for (int u = 0; u < 4; ++u) acc[a][u] = _mm256_fmadd_ps(wv[u], _mm256_loadu_ps(act[a].x + i + 8 * u), acc[a][u]);
  }
  for (int a = 0; a < na; ++a) {
    float s = hsum(_mm256_add_ps(_mm256_add_ps(acc[a][0], acc[a][1]), _mm256_add_ps(acc[a][2], acc[a][3])));
    for (int64_t i = n32; i < n; ++i) s += load.one(w, i) * act[a].x[i];
    out[a] = s;
  }
}

// ---------------------------------------------------------------- integer formats

// Decoders: kStep codes per step in kChunks registers of 32 (u), with lane scales α (lane l covers
// codes 4l … 4l+3) and offsets beta[0 … kStep/16). kSigned: u holds signed codes (Q8_0), multiplied
// by the sign trick, and β is zero.
struct DecQ8_0 {
  static constexpr int kStep = 32, kChunks = 1;
  static constexpr bool kSigned = true;
  const uint8_t* w;
  void decode(int64_t s, __m256i* u, __m256* alpha, float* beta) const {
    const BlockQ8_0& blk = reinterpret_cast<const BlockQ8_0*>(w)[s];
    u[0] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qs));
    alpha[0] = _mm256_set1_ps(h2f(blk.d));
    beta[0] = beta[1] = 0.0f;
  }
};

// The 32 codes of a nibble block (Q4_0 / IQ4 layout: byte j holds weights j and j + 16).
inline __m256i nibbles32(const uint8_t* qs) {
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i m4 = _mm_set1_epi8(0x0f);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(bytes, 4), m4), _mm_and_si128(bytes, m4));
}

struct DecQ4_0 {
  static constexpr int kStep = 32, kChunks = 1;
  static constexpr bool kSigned = false;
  const uint8_t* w;
  void decode(int64_t s, __m256i* u, __m256* alpha, float* beta) const {
    const BlockQ4_0& blk = reinterpret_cast<const BlockQ4_0*>(w)[s];
    const float d = h2f(blk.d);
    u[0] = nibbles32(blk.qs);
    alpha[0] = _mm256_set1_ps(d);
    beta[0] = beta[1] = 8.0f * d;
  }
};

struct DecGQ4 {
  static constexpr int kStep = 64, kChunks = 2;
  static constexpr bool kSigned = false;
  const uint8_t* w;
  int64_t n, gs;
  int shift;  // RowParams::group_shift
  void decode(int64_t s, __m256i* u, __m256* alpha, float* beta) const {
    const uint8_t* rec = w + n / 2 + 4 * (shift >= 0 ? (64 * s) >> shift : 64 * s / gs);
    uint16_t sh;
    std::memcpy(&sh, rec, 2);
    const float sc = h2f(sh), off = sc * float(rec[2]);
    const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 32 * s));
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    u[0] = _mm256_and_si256(bytes, m4);
    u[1] = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), m4);
    alpha[0] = alpha[1] = _mm256_set1_ps(sc);
    beta[0] = beta[1] = beta[2] = beta[3] = off;
  }
};

// IQ4_NL / IQ4_XS: Q4_0's nibble layout, the codes looked up among the 16 signed levels by vpshufb
// (signed codes: vpmaddubsw by the sign trick, as Q8_0; |level| ≤ 127), one 32-weight group a step.
inline __m256i iq4_codes(const uint8_t* qs) {
  const __m128i levels = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues));
  return _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(levels), nibbles32(qs));
}
struct DecIQ4NL {
  static constexpr int kStep = 32, kChunks = 1;
  static constexpr bool kSigned = true;
  const uint8_t* w;
  void decode(int64_t s, __m256i* u, __m256* alpha, float* beta) const {
    const BlockIQ4_NL& blk = reinterpret_cast<const BlockIQ4_NL*>(w)[s];
    u[0] = iq4_codes(blk.qs);
    alpha[0] = _mm256_set1_ps(h2f(blk.d));
    beta[0] = beta[1] = 0.0f;
  }
};
struct DecIQ4XS {
  static constexpr int kStep = 32, kChunks = 1;
  static constexpr bool kSigned = true;
  const uint8_t* w;
  void decode(int64_t s, __m256i* u, __m256* alpha, float* beta) const {
    const BlockIQ4_XS& blk = reinterpret_cast<const BlockIQ4_XS*>(w)[s / 8];
    const int g = int(s % 8);
    u[0] = iq4_codes(blk.qs + 16 * g);
    alpha[0] = _mm256_set1_ps(h2f(blk.d) * float(iq4_xs_scale(blk, g) - 32));
    beta[0] = beta[1] = 0.0f;
  }
};

template <bool kFive>
struct DecQ45K {
  using Block = std::conditional_t<kFive, BlockQ5_K, BlockQ4_K>;
  static constexpr int kStep = 256, kChunks = 8;
  static constexpr bool kSigned = false;
  const uint8_t* w;
  void decode(int64_t s, __m256i* u, __m256* alpha, float* beta) const {
    const Block& blk = reinterpret_cast<const Block*>(w)[s];
    const float d = h2f(blk.d), dmin = h2f(blk.dmin);
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      get_scale_min_k4(j, blk.scales, sc, m);
      alpha[j] = _mm256_set1_ps(d * float(sc));
      beta[2 * j] = beta[2 * j + 1] = dmin * float(m);
    }
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    __m256i qh;
    if constexpr (kFive) qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qh));
    for (int c = 0; c < 4; ++c) {
      const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qs + 32 * c));
      __m256i lo = _mm256_and_si256(bytes, m4), hi = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), m4);
      if constexpr (kFive) {
        const __m256i bit = _mm256_set1_epi8(0x10);
        lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * c), 4), bit));
        hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * c + 1), 4), bit));
      }
      u[2 * c] = lo;
      u[2 * c + 1] = hi;
    }
  }
};

// Q6_K: per half of 128 weights the chunks q1 (weights l), q2 (l+32), q3 (l+64), q4 (l+96) of
// blocks.h; chunk k covers groups 2k and 2k+1 of 16.
struct DecQ6K {
  static constexpr int kStep = 256, kChunks = 8;
  static constexpr bool kSigned = false;
  const uint8_t* w;
  void decode(int64_t s, __m256i* u, __m256* alpha, float* beta) const {
    const BlockQ6_K& blk = reinterpret_cast<const BlockQ6_K*>(w)[s];
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(0x30);
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.ql + 64 * h));
      const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.ql + 64 * h + 32));
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qh + 32 * h));
      u[4 * h] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m2));
      u[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m2));
      u[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m2));
      u[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                     _mm256_and_si256(_mm256_srli_epi16(qh, 2), m2));
    }
    const float d = h2f(blk.d);
    float a16[16];
    for (int g = 0; g < 16; ++g) a16[g] = d * float(blk.scales[g]), beta[g] = 32.0f * a16[g];
    for (int k = 0; k < 8; ++k) alpha[k] = _mm256_set_m128(_mm_set1_ps(a16[2 * k + 1]), _mm_set1_ps(a16[2 * k]));
  }
};

// 8 int32 lanes of Σ u·q over 4 codes each.
template <bool kSigned>
inline __m256i dot32(__m256i u, __m256i q) {
  const __m256i ones = _mm256_set1_epi16(1);
  if constexpr (kSigned) return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(u, u), _mm256_sign_epi8(q, u)), ones);
  else return _mm256_madd_epi16(_mm256_maddubs_epi16(u, q), ones);
}

template <typename Dec>
void dot_int(const Dec& dec, const ActRow* act, int na, int64_t n, float* out) {
  constexpr int64_t kMaxN = 32768;
  alignas(32) float beta_stack[kMaxN / 16];
  float* beta = n <= kMaxN ? beta_stack : new float[size_t(n / 16)];
  __m256 acc[kMaxActRows][2];
  for (int a = 0; a < na; ++a) acc[a][0] = acc[a][1] = _mm256_setzero_ps();
  for (int64_t s = 0; s < n / Dec::kStep; ++s) {
    __m256i u[Dec::kChunks];
    __m256 alpha[Dec::kChunks];
    dec.decode(s, u, alpha, beta + s * (Dec::kStep / 16));
    for (int a = 0; a < na; ++a) {
      for (int c = 0; c < Dec::kChunks; ++c) {
        const int64_t i0 = s * Dec::kStep + 32 * c;
        const __m256i prod = dot32<Dec::kSigned>(u[c], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(act[a].q + i0)));
        const __m256 scale = _mm256_mul_ps(alpha[c], _mm256_loadu_ps(act[a].dexp + i0 / 4));
        const int k = (s * Dec::kChunks + c) & 1;
        acc[a][k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(prod), scale, acc[a][k]);
      }
    }
  }
  for (int a = 0; a < na; ++a) {
    float off = 0;
    if (!Dec::kSigned) {
      __m256 o = _mm256_setzero_ps();
      const int64_t nh = n / 16;
      int64_t h = 0;
      for (; h + 8 <= nh; h += 8) o = _mm256_fmadd_ps(_mm256_loadu_ps(beta + h), _mm256_loadu_ps(act[a].dsum16 + h), o);
      off = hsum(o);
      for (; h < nh; ++h) off += beta[h] * act[a].dsum16[h];
    }
    out[a] = hsum(_mm256_add_ps(acc[a][0], acc[a][1])) - off;
  }
  if (beta != beta_stack) delete[] beta;
}

// ---------------------------------------------------------------- generation: row ranges
// As at AVX-512 (kernels_avx512.cpp): each row's product left as a vector whose 8 lanes sum to it, 8
// rows reduced together by a transposing tree, every row's lanes in the same order wherever it sits
// among the 8 (dot with na = 1 is a range of one row).

// v[0..7] → lane r = Σ of v[r]'s lanes: within each 128-bit half (l0 + l2) + (l1 + l3), then the halves.
inline __m256 sum8(const __m256* v) {
  __m256 p[4], q[2];
  for (int i = 0; i < 4; ++i)  // [a0+a2 b0+b2 a1+a3 b1+b3] per half
    p[i] = _mm256_add_ps(_mm256_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm256_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  for (int i = 0; i < 2; ++i) {  // [a b c d] per half: rows 4i … 4i+3, each its half's sum
    const __m256d x = _mm256_castps_pd(p[2 * i]), y = _mm256_castps_pd(p[2 * i + 1]);
    q[i] = _mm256_add_ps(_mm256_castpd_ps(_mm256_unpacklo_pd(x, y)), _mm256_castpd_ps(_mm256_unpackhi_pd(x, y)));
  }
  return _mm256_add_ps(_mm256_permute2f128_ps(q[0], q[1], 0x20), _mm256_permute2f128_ps(q[0], q[1], 0x31));
}

// y[r] = Σ of row_vec(row r)'s lanes for r in [r0, r1); row r at data + (map ? map[r] : r)·row_bytes.
template <typename RowVec>
void gemv_range(const RowVec& row_vec, const uint8_t* data, size_t row_bytes, const int32_t* map, int64_t r0,
                int64_t r1, float* y) {
  __m256 v[8];
  for (int64_t b = r0; b < r1; b += 8) {
    const int nr = int(r1 - b < 8 ? r1 - b : 8);
    for (int i = 0; i < 8; ++i)
      v[i] = i < nr ? row_vec(data + size_t(map ? map[b + i] : b + i) * row_bytes) : _mm256_setzero_ps();
    const __m256 sums = sum8(v);
    if (nr == 8) {
      _mm256_storeu_ps(y + b, sums);
    } else {
      const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
      _mm256_maskstore_ps(y + b, _mm256_cmpgt_epi32(_mm256_set1_epi32(nr), lane), sums);
    }
  }
}

// The n mod 8 values past the last full vector are multiplied one by one and added into lane 0.
template <typename Load>
__m256 float_row(const uint8_t* w, const float* x, int64_t n) {
  const Load load;
  const int64_t n32 = n / 32 * 32, n8 = n / 8 * 8;
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  for (int64_t i = 0; i < n32; i += 32)
    for (int u = 0; u < 4; ++u) acc[u] = _mm256_fmadd_ps(load(w, i + 8 * u), _mm256_loadu_ps(x + i + 8 * u), acc[u]);
  for (int64_t i = n32; i < n8; i += 8) acc[0] = _mm256_fmadd_ps(load(w, i), _mm256_loadu_ps(x + i), acc[0]);
  float tail = 0;
  for (int64_t i = n8; i < n; ++i) tail += load.one(w, i) * x[i];
  const __m256 t = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
  return _mm256_add_ps(t, _mm256_setr_ps(tail, 0, 0, 0, 0, 0, 0, 0));
}

// One weight row against one activation row; beta: scratch of n/16 floats (the decoders' offsets).
template <typename Dec>
__m256 int_row(const Dec& dec, const ActRow& act, int64_t n, float* beta) {
  __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
  for (int64_t s = 0; s < n / Dec::kStep; ++s) {
    __m256i u[Dec::kChunks];
    __m256 alpha[Dec::kChunks];
    dec.decode(s, u, alpha, beta + s * (Dec::kStep / 16));
    for (int c = 0; c < Dec::kChunks; ++c) {
      const int64_t i0 = s * Dec::kStep + 32 * c;
      const __m256i prod = dot32<Dec::kSigned>(u[c], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(act.q + i0)));
      const __m256 scale = _mm256_mul_ps(alpha[c], _mm256_loadu_ps(act.dexp + i0 / 4));
      const int k = int((s * Dec::kChunks + c) & 1);
      acc[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(prod), scale, acc[k]);
    }
  }
  __m256 t = _mm256_add_ps(acc[0], acc[1]);
  if constexpr (!Dec::kSigned) {  // − Σ_h β_h·dsum16_h, 8 pieces a vector (n/16 is even: masked tail)
    __m256 o = _mm256_setzero_ps();
    const int64_t nh = n / 16;
    int64_t h = 0;
    for (; h + 8 <= nh; h += 8) o = _mm256_fmadd_ps(_mm256_loadu_ps(beta + h), _mm256_loadu_ps(act.dsum16 + h), o);
    if (h < nh) {
      const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(nh - h)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
      o = _mm256_fmadd_ps(_mm256_maskload_ps(beta + h, m), _mm256_maskload_ps(act.dsum16 + h, m), o);
    }
    t = _mm256_sub_ps(t, o);
  }
  return t;
}

// The decoders' offsets of one row (n/16 floats): on the stack up to rows of 32768.
struct BetaScratch {
  static constexpr int64_t kMaxN = 32768;
  alignas(32) float stack[kMaxN / 16];
  float* heap = nullptr;
  float* p;
  explicit BetaScratch(int64_t n) : p(n <= kMaxN ? stack : (heap = new float[size_t(n / 16)])) {}
  ~BetaScratch() { delete[] heap; }
  BetaScratch(const BetaScratch&) = delete;
  BetaScratch& operator=(const BetaScratch&) = delete;
};

template <typename Load>
void gemv_float(const uint8_t* data, size_t row_bytes, const int32_t* map, int64_t r0, int64_t r1, const ActRow& act,
                const RowParams& p, float* y) {
  gemv_range([&](const uint8_t* w) { return float_row<Load>(w, act.x, p.n); }, data, row_bytes, map, r0, r1, y);
}
template <typename Dec>
void gemv_simple(const uint8_t* data, size_t row_bytes, const int32_t* map, int64_t r0, int64_t r1, const ActRow& act,
                 const RowParams& p, float* y) {
  BetaScratch beta(p.n);
  gemv_range([&](const uint8_t* w) { return int_row(Dec{w}, act, p.n, beta.p); }, data, row_bytes, map, r0, r1, y);
}
void gemv_gq4(const uint8_t* data, size_t row_bytes, const int32_t* map, int64_t r0, int64_t r1, const ActRow& act,
              const RowParams& p, float* y) {
  BetaScratch beta(p.n);
  gemv_range([&](const uint8_t* w) { return int_row(DecGQ4{w, p.n, p.group_size, p.group_shift}, act, p.n, beta.p); },
             data, row_bytes, map, r0, r1, y);
}

// Kernels::dot: one activation row is a gemv range of one row (the numbers of generation); several
// rows (short prompts) decode each step once for all of them.
template <typename Load>
void dot_float(const uint8_t* w, const ActRow* act, int na, const RowParams& p, float* out) {
  if (na == 1) gemv_float<Load>(w, 0, nullptr, 0, 1, act[0], p, out);
  else dot_float_many<Load>(w, act, na, p, out);
}
template <typename Dec>
void dot_simple(const uint8_t* w, const ActRow* act, int na, const RowParams& p, float* out) {
  if (na == 1) gemv_simple<Dec>(w, 0, nullptr, 0, 1, act[0], p, out);
  else dot_int(Dec{w}, act, na, p.n, out);
}
void dot_gq4(const uint8_t* w, const ActRow* act, int na, const RowParams& p, float* out) {
  if (na == 1) gemv_gq4(w, 0, nullptr, 0, 1, act[0], p, out);
  else dot_int(DecGQ4{w, p.n, p.group_size, p.group_shift}, act, na, p.n, out);
}

// ---------------------------------------------------------------- prompt processing

template <typename Dec>
void decode_with(const Dec& dec, int64_t n, const DecodedRow& out) {
  for (int64_t s = 0; s < n / Dec::kStep; ++s) {
    __m256i u[Dec::kChunks];
    __m256 alpha[Dec::kChunks];
    dec.decode(s, u, alpha, out.beta + s * (Dec::kStep / 16));
    for (int c = 0; c < Dec::kChunks; ++c) {
      const int64_t i0 = s * Dec::kStep + 32 * c;
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.u + i0), u[c]);
      _mm256_storeu_ps(out.alpha + i0 / 4, alpha[c]);
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

// NR × NA (≤ 2 × 2: sixteen 256-bit registers) decoded rows against activation rows; offsets folded
// in every 128 codes.
template <bool kSigned, int NR, int NA>
void tile_t(const DecodedRow* w, const ActRow* act, int64_t n, float* out, int64_t ldo) {
  __m256 acc[NR][NA];
  for (int r = 0; r < NR; ++r)
    for (int a = 0; a < NA; ++a) acc[r][a] = _mm256_setzero_ps();
  for (int64_t i = 0; i < n; i += 32) {
    __m256i q[NA];
    __m256 dx[NA];
    for (int a = 0; a < NA; ++a)
      q[a] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(act[a].q + i)), dx[a] = _mm256_loadu_ps(act[a].dexp + i / 4);
    for (int r = 0; r < NR; ++r) {
      const __m256i u = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[r].u + i));
      const __m256 al = _mm256_loadu_ps(w[r].alpha + i / 4);
      for (int a = 0; a < NA; ++a)
        acc[r][a] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot32<kSigned>(u, q[a])), _mm256_mul_ps(al, dx[a]), acc[r][a]);
    }
    if (!kSigned && (i % 128 == 96 || i + 32 == n)) {  // the offsets of the codes since the last fold
      const int64_t h0 = (i / 128) * 8, nh = (i + 32) / 16 - h0;
      const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(nh)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
      for (int r = 0; r < NR; ++r) {
        const __m256 be = _mm256_maskload_ps(w[r].beta + h0, mask);
        for (int a = 0; a < NA; ++a) acc[r][a] = _mm256_fnmadd_ps(be, _mm256_maskload_ps(act[a].dsum16 + h0, mask), acc[r][a]);
      }
    }
  }
  for (int r = 0; r < NR; ++r)
    for (int a = 0; a < NA; ++a) out[a * ldo + r] = hsum(acc[r][a]);
}

template <bool kSigned>
void gemm_tile(const DecodedRow* w, int nr, const ActRow* act, int na, int64_t n, float* out, int64_t ldo) {
  for (int r = 0; r < nr; r += 2)
    for (int a = 0; a < na; a += 2) {
      const DecodedRow* wr = w + r;
      const ActRow* aa = act + a;
      float* o = out + a * ldo + r;
      const bool r2 = r + 1 < nr, a2 = a + 1 < na;
      if (r2 && a2) tile_t<kSigned, 2, 2>(wr, aa, n, o, ldo);
      else if (r2) tile_t<kSigned, 2, 1>(wr, aa, n, o, ldo);
      else if (a2) tile_t<kSigned, 1, 2>(wr, aa, n, o, ldo);
      else tile_t<kSigned, 1, 1>(wr, aa, n, o, ldo);
    }
}

// The low-bit types (kernels_lowbit.h): the portable decoder writes unsigned codes u = s + 128, which
// vpmaddubsw would saturate on (2·190·127 > 32767 for IQ3_XXS); with |s| ≤ 62 the signed form is
// exact, so bit 7 is flipped back (u − 128 as int8) and β = 128·α dropped: gemm_tile<true> then takes
// them as it takes Q8_0's codes.
template <DecodeFn kDecode>
void decode_lowbit(const uint8_t* w, const RowParams& p, const DecodedRow& out) {
  kDecode(w, p, out);
  const __m256i flip = _mm256_set1_epi8(char(0x80));
  for (int64_t i = 0; i < p.n; i += 32) {
    __m256i* v = reinterpret_cast<__m256i*>(out.u + i);
    _mm256_storeu_si256(v, _mm256_xor_si256(_mm256_loadu_si256(v), flip));
  }
  for (int64_t h = 0; h < p.n / 16; ++h) out.beta[h] = 0.0f;
}
template <DecodeFn kDecode>
void dot_lowbit(const uint8_t* w, const ActRow* act, int na, const RowParams& p, float* out) {
  dot_decoded(decode_lowbit<kDecode>, gemm_tile<true>, w, act, na, p, out);
}

const Kernels kAvx2 = {
    Isa::Avx2,
    {dot_float<LoadF32>, dot_float<LoadF16>, dot_float<LoadBF16>, dot_simple<DecQ8_0>, dot_simple<DecQ4_0>,
     dot_simple<DecQ45K<false>>, dot_simple<DecQ45K<true>>, dot_simple<DecQ6K>, dot_gq4, dot_simple<DecIQ4NL>,
     dot_simple<DecIQ4XS>, dot_lowbit<decode_iq2_xxs>, dot_lowbit<decode_iq2_xs>, dot_lowbit<decode_iq2_s>,
     dot_lowbit<decode_iq3_xxs>, dot_lowbit<decode_iq3_s>, dot_lowbit<decode_iq1_s>, dot_lowbit<decode_iq1_m>,
     dot_lowbit<decode_tq1_0>, dot_lowbit<decode_tq2_0>, dot_lowbit<decode_mxfp4>},
    {gemv_float<LoadF32>, gemv_float<LoadF16>, gemv_float<LoadBF16>, gemv_simple<DecQ8_0>, gemv_simple<DecQ4_0>,
     gemv_simple<DecQ45K<false>>, gemv_simple<DecQ45K<true>>, gemv_simple<DecQ6K>, gemv_gq4, gemv_simple<DecIQ4NL>,
     gemv_simple<DecIQ4XS>},
    quantize_act,
    {nullptr, nullptr, nullptr, decode_simple<DecQ8_0>, decode_simple<DecQ4_0>, decode_simple<DecQ45K<false>>,
     decode_simple<DecQ45K<true>>, decode_simple<DecQ6K>, decode_gq4, decode_simple<DecIQ4NL>,
     decode_simple<DecIQ4XS>, decode_lowbit<decode_iq2_xxs>, decode_lowbit<decode_iq2_xs>,
     decode_lowbit<decode_iq2_s>, decode_lowbit<decode_iq3_xxs>, decode_lowbit<decode_iq3_s>,
     decode_lowbit<decode_iq1_s>, decode_lowbit<decode_iq1_m>, decode_lowbit<decode_tq1_0>,
     decode_lowbit<decode_tq2_0>, decode_lowbit<decode_mxfp4>},
    {nullptr, nullptr, nullptr, gemm_tile<true>, gemm_tile<false>, gemm_tile<false>, gemm_tile<false>, gemm_tile<false>,
     gemm_tile<false>, gemm_tile<true>, gemm_tile<true>, gemm_tile<true>, gemm_tile<true>, gemm_tile<true>,
     gemm_tile<true>, gemm_tile<true>, gemm_tile<true>, gemm_tile<true>, gemm_tile<true>, gemm_tile<true>,
     gemm_tile<true>},
    {},
    nullptr,
    softmax_scalar,
    silu_mul_scalar,
};

}  // namespace

const Kernels& kernels_avx2() { return kAvx2; }

}  // namespace quantllm::cpu

#else  // built without the flags (not x86-64): never selected, detected_isa() is lower

namespace quantllm::cpu {
const Kernels& kernels_avx2() { return kernels_scalar(); }
}  // namespace quantllm::cpu

#endif
