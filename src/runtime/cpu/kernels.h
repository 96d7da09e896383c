// Dot-product kernels over packed weight rows: the formats they read, the 8-bit activation blocks
// they multiply with, and one table of kernels per instruction-set level (isa.h).
//
// A linear layer y = x · Wᵀ is computed row by row of W without widening W: each kernel call takes
// one packed weight row and up to kMaxActRows activation rows and writes one output per activation
// row. Several activation rows per call let prompt processing decode a weight row once for four
// tokens; generation calls it with one.
//
// Activations. Integer formats multiply 8-bit weight codes with 8-bit activation codes (the way
// llama.cpp's fast path works: vpdpbusd / vpmaddubsw products, exact int32 sums). Each activation row
// is cut into blocks of kActBlock = 4 values; each block gets one fp32 scale d = max|x| / 127 and codes
// q = round(x / d) in [−127, 127]. The rounding moves each value by at most d/2, so a dot product moves
// by at most Σ_blocks d_b/2 · Σ_{i∈b} |w_i| (the bound tests/runtime/kernels_test.cpp checks, with its
// statistical size, next to the fp32 product of the dequantized row).
// Why blocks of 4 where llama.cpp uses 32 (Q8_0) or 256 (Q8_K): a handful of input channels of these
// models carry values tens of times larger than the rest (OPT's LayerNorm outputs, SwiGLU outputs),
// and each one coarsens the codes of its whole block. Perplexity through this engine against the fp32
// path (16 windows, both reference models, Q8_0 / Q4_K_M / Q5_K_M / GPTQ-4): blocks of 256 for the
// K-quants and the group size for GPTQ moved it by up to 0.3%, blocks of 32 by up to 0.1%, blocks of 4
// by at most 0.05% (docs/benchmarks-cpu.md). The kernels scale per 4-code lane anyway (ActRow::dexp),
// so smaller blocks cost nothing in the products, only a division per 4 values when quantizing.
// Float formats (F32/F16/BF16) multiply with the fp32 activations themselves.
//
// Every integer format is computed in one form: weight i = α_k·u_i − β_h, with u_i an unsigned 8-bit
// code, α_k a scale shared by a group of 16 or 32 weights and β_h an offset shared by 16:
//   Q8_0: u = q + 128, α = d, β = 128·d     Q4_0: u = q, α = d, β = 8·d
//   Q4_K/Q5_K: u = q, α = d·sc_j, β = dmin·m_j     Q6_K: u = q, α = d·sc_g, β = 32·d·sc_g
//   GQ4: u = q, α = scale_g, β = scale_g·zero_g
//   IQ4_NL / IQ4_XS: u = level(q) + 128 (the 16 signed levels), α = d (IQ4_XS: d·(s_g − 32)), β = 128·α
//   the low-bit types (IQ1_S, IQ1_M, IQ2_XXS/XS/S, IQ3_XXS/S, TQ1_0, TQ2_0, MXFP4): u = s + 128 with s the
//     signed grid value, trit or e2m1 value, β = 128·α (kernels_lowbit.h lists each one's s and α)
// so Σ_i w_i·x̂_i = Σ_b d_b·Σ_k α_k·(Σ_{i∈k} u_i·q_i) − Σ_h β_h·dsum16_h with exact integer inner sums
// (dsum16_h = d_b·Σ_{i∈h} q_i, h the 16-value pieces).

// Weight formats (W: [rows, n], each row stored contiguously):
//   F32, F16, BF16: plain arrays.
//   Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS and the low-bit types: ggml blocks exactly as in the
//     GGUF file (quant/ggml/blocks.h).
// The low-bit types have no SIMD decoder of their own: one portable decoder each (kernels_lowbit.cpp)
// writes the DecodedRow form, and every level multiplies it with its generic gemm_tile (prompts) and
// one-row tiles (dot, generation); they have no gemv, float_panel or bf16 panel entries.
//   GQ4: GPTQ / AWQ groups repacked at load time (runtime/cpu/qmatrix.cpp): per row, n/2 bytes of
//     4-bit codes, 64 weights per 32 bytes (byte j: weight j in the low nibble, weight j + 32 in the
//     high one, as in Q4_K), then per group a 4-byte record {fp16 scale, u8 zero, u8 0};
//     w = scale · (q − zero). Input columns are in group order (act-order permutes the activations).
#pragma once

#include "quant/ggml/types.h"
#include "runtime/cpu/isa.h"

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string_view>

namespace quantllm::cpu {

// The weight formats are the ggml types of the one type table (quant/ggml/types.h), GQ4 included; every
// kernel table below is keyed by the type id, as ggml's type_traits_cpu.
using ggml::GgmlType;
// The types the CPU kernels compute on, in the order the per-level tables (kernels_*.cpp) list them.
inline constexpr GgmlType kKernelTypes[] = {
    GgmlType::F32,     GgmlType::F16,    GgmlType::BF16,    GgmlType::Q8_0,  GgmlType::Q4_0,  GgmlType::Q4_K,
    GgmlType::Q5_K,    GgmlType::Q6_K,   GgmlType::GQ4,     GgmlType::IQ4_NL, GgmlType::IQ4_XS,
    // the low-bit types (kernels_lowbit.h)
    GgmlType::IQ2_XXS, GgmlType::IQ2_XS, GgmlType::IQ2_S,   GgmlType::IQ3_XXS, GgmlType::IQ3_S, GgmlType::IQ1_S,
    GgmlType::IQ1_M,   GgmlType::TQ1_0,  GgmlType::TQ2_0,   GgmlType::MXFP4};

// A table of one kernel per type id, filled from a listing in kKernelTypes order; null for the others.
template <typename Fn>
struct TypeTable {
  Fn at[ggml::kNumGgmlTypes] = {};
  constexpr TypeTable() = default;
  constexpr TypeTable(std::initializer_list<Fn> listed) {
    size_t i = 0;
    for (Fn f : listed) at[size_t(kKernelTypes[i++])] = f;
  }
  constexpr Fn operator[](GgmlType t) const { return at[size_t(t)]; }
};

// F32/F16/BF16 multiply with fp32 activations; the quantized types with 8-bit codes in blocks.
inline bool float_acts(GgmlType t) { return !ggml::traits(t).is_quantized; }

// Activation codes per scale. The scalar reference takes 4, 8, 16 or 32; the SIMD quantizers are
// written for 4. Rows must be a multiple of 32 values.
inline constexpr int kActBlock = 4;

// Bytes of one packed row of n weights (GQ4: codes + group records).
size_t packed_row_bytes(GgmlType f, int64_t n, int group_size = 0);

inline constexpr int kMaxActRows = 4;

// One activation row as the kernels read it. Integer formats: x[i] ≈ d[i / kActBlock]·q[i];
// dsum16[h] = Σ over the blocks b of the 16 values h (left to right) of d_b·Σ_{i∈b} q_i;
// dexp[j] = d[4j / kActBlock] (j < n/4): the scale of each 4-code lane, the layout the SIMD kernels
// multiply with (with blocks of 4, the same array as d). Float formats read x.
struct ActRow {
  const int8_t* q = nullptr;
  const float* d = nullptr;
  const float* dsum16 = nullptr;
  const float* dexp = nullptr;
  const float* x = nullptr;
};

struct RowParams {
  int64_t n = 0;        // weights per row
  int group_size = 0;   // GQ4
  // GQ4: the group of code i is i >> group_shift when group_shift ≥ 0 (power-of-two groups; 63 for
  // one group a row), else i / group_size. QMatrix::params() sets it once per matrix.
  int group_shift = -1;
};

// out[a] = Σ_i W_row[i] · act[a][i] for a < na (1 ≤ na ≤ kMaxActRows).
using DotFn = void (*)(const uint8_t* w_row, const ActRow* act, int na, const RowParams& p, float* out);
// Generation over a range of weight rows against one activation row: y[r] = Σ_i W_r[i]·act[i] for r in
// [r0, r1), row r stored at data + (row_map ? row_map[r] : r)·row_bytes. Equal to dot with na = 1 on
// each row (levels that have it compute that dot as a range of one row). Null where a level has none
// (the caller then calls dot row by row).
using GemvFn = void (*)(const uint8_t* data, size_t row_bytes, const int32_t* row_map, int64_t r0, int64_t r1,
                        const ActRow& act, const RowParams& p, float* y);
// Quantizes x[0, n) (n a multiple of 32): q[n], d[n/kActBlock], dsum16[n/16], dexp[n/4] as in ActRow.
using QuantizeActFn = void (*)(const float* x, int64_t n, int8_t* q, float* d, float* dsum16, float* dexp);

// Prompt processing decodes each weight row once per matrix product into this form (w_i =
// alpha[i/4]·u[i] − beta[i/16]: α repeated per 4-code lane, the SIMD layout) and then multiplies it
// with every activation row, instead of decoding it again for every four.
struct DecodedRow {
  uint8_t* u = nullptr;   // [n]
  float* alpha = nullptr; // [n/4]
  float* beta = nullptr;  // [n/16]
};
using DecodeFn = void (*)(const uint8_t* w_row, const RowParams& p, const DecodedRow& out);
// out[a·ldo + r] = Σ_i W_r[i]·act[a][i] for r < nr, a < na (both ≤ kMaxActRows), n a multiple of 64.
using GemmTileFn = void (*)(const DecodedRow* w, int nr, const ActRow* act, int na, int64_t n, float* out, int64_t ldo);

// Prompts on float formats: 16 weight rows, columns [k0, k0 + kn), widened to fp32 and transposed to
// k-major (panel[k·16 + r] = W_r[k0 + k]; rows past nr are zero). A tile multiplies up to 32 rows —
// two such panels, the second at panel + 16·kn — with activation rows:
// out[a·ldo + r] (+)= Σ_k W_r[k0 + k]·x[a][k] for r < nr ≤ 32, a < na ≤ kFloatTileRows.
inline constexpr int kFloatTileRows = 12;
using FloatPanelFn = void (*)(const uint8_t* const* w_rows, int nr, const RowParams& p, int64_t k0, int64_t kn,
                              float* panel);
using FloatTileFn = void (*)(const float* panel, int nr, const float* const* x, int na, int64_t kn, float* out,
                             int64_t ldo, bool accumulate);

// Attention's softmax over one row of scores: row[lo, hi) ← exp(row[i] − max) / Σ exp(row[j] − max)
// over [lo, hi); row[0, lo) and row[hi, n) ← 0 (the causal mask and the sliding window). The scalar
// reference (also the AVX2 level's) uses std::exp and a double sum; the AVX-512 level a degree-7
// polynomial after reduction by ln 2 (within 3 ulp of exp) and 16 fp32 partial sums.
using SoftmaxFn = void (*)(float* row, int64_t lo, int64_t hi, int64_t n);
void softmax_scalar(float* row, int64_t lo, int64_t hi, int64_t n);
// The gated FFN's SiLU: up[i] ← up[i] · g/(1 + e^−g), g = gate[i], i < n. Scalar reference (also the
// AVX2 level's): std::exp. AVX-512: e^−|g| by the softmax's polynomial, then g·1/(1 + e) for g ≥ 0 and
// g·e/(1 + e) below (no overflow for any g).
using SiluMulFn = void (*)(float* up, const float* gate, int64_t n);
void silu_mul_scalar(float* up, const float* gate, int64_t n);

struct Kernels {
  Isa isa;
  TypeTable<DotFn> dot;
  TypeTable<GemvFn> gemv;  // null entries: dot row by row
  QuantizeActFn quantize_act;
  // Integer formats only (null for F32/F16/BF16). A DecodedRow is only ever read by the gemm_tile of
  // the level and format that decoded it (Q8_0 at the AVX2 level keeps signed codes, for example).
  TypeTable<DecodeFn> decode;
  TypeTable<GemmTileFn> gemm_tile;
  // Prompts through fp32 tiles over widened panels, at levels with a tuned fp32 tile (AVX-512), for the
  // float formats and — exactly decoded, no activation rounding — the integer ones (k0 and kn then
  // multiples of 256); null elsewhere (float formats: widened panels and sgemm; integer formats: the
  // decode / gemm_tile path on 8-bit activations).
  TypeTable<FloatPanelFn> float_panel;
  FloatTileFn float_tile;
  SoftmaxFn softmax;
  SiluMulFn silu_mul;
};

// Prompts with bf16 dot products (AVX-512 BF16: vdpbf16ps, two products per 32-bit lane), a step
// beyond the fp32 tiles where the CPU has it, for the integer formats. The weights stay exact: integer
// codes u ≤ 255 are bf16 numbers; w = α·u − β is applied per group of 16 or 32 codes after the bf16
// sums. (The panel for BF16 weights exists, but qmatmul keeps bf16 checkpoints — the reference
// weights — on the fp32 tiles.) The activations are rounded to bf16 (round to nearest even, |x − x̂| ≤ 2⁻⁸|x|:
// about the size of the 8-bit activation rounding of the other paths, spread over every value).
//   act:   x[n] → pairs[n/2] (two bf16 a 32-bit word), xsum[n/16] (Σ of the rounded values per 16)
//   panel: 16 weight rows in the lanes, columns [k0, k0 + kn) (kn a multiple of 32, of 256 for
//          K-quants): pairs[kn/2][16], alpha[kn/16][16], beta[kn/16][16] (rows past nr zero)
//   tile:  out[a·ldo + r] (+)= Σ W_r[k0 + k]·x̂_a[k] for two panels (32 rows, the second at
//          +kn/2·16 pairs, +kn/16·16 α/β), a < na ≤ kBf16TileRows.
inline constexpr int kBf16TileRows = 6;
struct Bf16Kernels {
  void (*act)(const float* x, int64_t n, uint32_t* pairs, float* xsum);
  TypeTable<void (*)(const uint8_t* const* w_rows, int nr, const RowParams& p, int64_t k0, int64_t kn,
                     uint32_t* pairs, float* alpha, float* beta)>
      panel;
  // plain: BF16 weights (no α/β); else α/β per group of `group` (16 or 32) codes
  void (*tile)(const uint32_t* pairs, const float* alpha, const float* beta, int nr, const uint32_t* const* x,
               const float* const* xsum, int na, int64_t kn, int group, bool plain, float* out, int64_t ldo,
               bool accumulate);
};
// The bf16 kernels when the CPU has AVX-512 BF16 and the active level is AVX-512 (QUANTLLM_BF16=0
// turns them off); nullptr otherwise.
const Bf16Kernels* bf16_kernels();
// Turns the bf16 prompts off (tests compare both prompt paths); on again only where available.
void set_bf16_enabled(bool on);

const Kernels& kernels_scalar();
const Kernels& kernels_avx2();    // valid only when detected_isa() >= Avx2
const Kernels& kernels_avx512();  // valid only when detected_isa() == Avx512
// The table for a level (asserts the CPU supports it); kernels() is active_isa()'s.
const Kernels& kernels_for(Isa isa);
const Kernels& kernels();

}  // namespace quantllm::cpu
