// AVX-512 BF16 prompts (kernels.h Bf16Kernels): the integer formats' weights exact as bf16 numbers, the
// activations rounded to bf16, two products per 32-bit lane by vdpbf16ps. Compiled with the AVX-512 flags;
// the bf16 functions carry the avx512bf16 target themselves and run only when the CPU has it.
#include "runtime/cpu/kernels_avx512_common.h"

#include <cstdlib>
#include <cstring>

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512DQ__) && \
    defined(__AVX512VNNI__)

namespace quantllm::cpu {

namespace {

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
const Bf16Kernels* bf16_kernels() { return nullptr; }
void set_bf16_enabled(bool) {}
}  // namespace quantllm::cpu

#endif

