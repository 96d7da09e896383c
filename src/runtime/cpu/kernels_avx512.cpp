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
#include "runtime/cpu/kernels_avx512_common.h"
#include "runtime/cpu/kernels_lowbit.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512DQ__) && \
    defined(__AVX512VNNI__)

namespace quantllm::cpu {

namespace {

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

// The low-bit types (kernels_lowbit.h): the portable decoder's unsigned codes go to vpdpbusd as they
// are (no saturation), so the decoded-row tile above serves them unchanged; dot is a tile of one row.
template <DecodeFn kDecode>
void dot_lowbit(const uint8_t* w, const ActRow* act, int na, const RowParams& p, float* out) {
  dot_decoded(kDecode, gemm_tile, w, act, na, p, out);
}

const Kernels kAvx512 = {
    Isa::Avx512,
    {dot_float<LoadF32>, dot_float<LoadF16>, dot_float<LoadBF16>, dot_blocks<DecQ8_0, DecQ8_0x4>,
     dot_blocks<DecQ4_0, DecQ4_0x4>,
     dot_simple<DecQ45K<false>>, dot_simple<DecQ45K<true>>, dot_simple<DecQ6K>, dot_gq4, dot_simple<DecIQ4NL>,
     dot_simple<DecIQ4XS>, dot_lowbit<decode_iq2_xxs>, dot_lowbit<decode_iq2_xs>, dot_lowbit<decode_iq2_s>,
     dot_lowbit<decode_iq3_xxs>, dot_lowbit<decode_iq3_s>, dot_lowbit<decode_iq1_s>, dot_lowbit<decode_iq1_m>,
     dot_lowbit<decode_tq1_0>, dot_lowbit<decode_tq2_0>, dot_lowbit<decode_mxfp4>},
    {gemv_float<LoadF32>, gemv_float<LoadF16>, gemv_float<LoadBF16>, gemv_blocks<DecQ8_0, DecQ8_0x4>,
     gemv_blocks<DecQ4_0, DecQ4_0x4>, gemv_simple<DecQ45K<false>>, gemv_simple<DecQ45K<true>>, gemv_simple<DecQ6K>,
     gemv_gq4, gemv_simple<DecIQ4NL>, gemv_simple<DecIQ4XS>},
    quantize_act,
    {nullptr, nullptr, nullptr, decode_simple<DecQ8_0>, decode_simple<DecQ4_0>, decode_simple<DecQ45K<false>>,
     decode_simple<DecQ45K<true>>, decode_simple<DecQ6K>, decode_gq4, decode_simple<DecIQ4NL>,
     decode_simple<DecIQ4XS>, decode_iq2_xxs, decode_iq2_xs, decode_iq2_s, decode_iq3_xxs, decode_iq3_s, decode_iq1_s,
     decode_iq1_m, decode_tq1_0, decode_tq2_0, decode_mxfp4},
    {nullptr, nullptr, nullptr, gemm_tile, gemm_tile, gemm_tile, gemm_tile, gemm_tile, gemm_tile, gemm_tile, gemm_tile,
     gemm_tile, gemm_tile, gemm_tile, gemm_tile, gemm_tile, gemm_tile, gemm_tile, gemm_tile, gemm_tile, gemm_tile},
    {float_panel<LoadF32>, float_panel<LoadF16>, float_panel<LoadBF16>, int_float_panel<DecQ8_0>,
     int_float_panel<DecQ4_0>, int_float_panel<DecQ45K<false>>, int_float_panel<DecQ45K<true>>, int_float_panel<DecQ6K>,
     int_float_panel<DecGQ4>, int_float_panel<DecIQ4NL>, int_float_panel<DecIQ4XS>},
    float_tile,
    softmax,
    silu_mul,
};

}  // namespace

const Kernels& kernels_avx512() { return kAvx512; }

}  // namespace quantllm::cpu

#else  // built without the flags (not x86-64): never selected, detected_isa() is lower

namespace quantllm::cpu {
const Kernels& kernels_avx512() { return kernels_scalar(); }
}  // namespace quantllm::cpu

#endif
