// The low-bit GGML types (IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, TQ1_0, TQ2_0, MXFP4):
// portable decoders of their rows into kernels.h's DecodedRow form, shared by every instruction-set
// level, and the one-row dot product built on a level's decoder and gemm_tile.
//
// Why no SIMD decoder per type: each of the ten is a codebook or a trit packing whose decode is table
// lookups and bit fiddling, while the products after the decode are the same integer products as
// every other format's. So each level reuses its generic decoded-row machinery (gemm_tile for prompts,
// and decode + one-row gemm_tile for generation) and only the decode below is per type.
//
// All ten are symmetric (no minimum): weight i = α·s_i with s_i a small signed integer, written in the
// unsigned form of kernels.h, u_i = s_i + 128, β = 128·α per 16 codes:
//   IQ2_XXS, IQ2_XS, IQ2_S: s = ±grid byte (8, 25, 43), α = d·(0.5 + sc)/4 (per 32; XS and S per 16)
//   IQ3_XXS: s = ±grid byte (4 … 62), α = d·(0.5 + sc)/2 per 32
//   IQ3_S:   s = ±grid byte (1 … 15), α = d·(1 + 2·sc) per 32
//   IQ1_S / IQ1_M: w = d·(2·sc + 1)·(g ± 1/8) with g ∈ {−1, 0, 1}: s = 8·g ± 1, α = d·(2·sc + 1)/8
//            (per 32 / per 16; the ± shift per 32 / per 8 lives in s, not in α)
//   TQ1_0 / TQ2_0: s = t ∈ {−1, 0, 1}, α = d per 256
//   MXFP4:   s = the doubled e2m1 value (−12 … 12), α = 2^(e − 128) per 32
// |s| ≤ 62 for all of them, which lets a level multiply signed codes instead (AVX2's vpmaddubsw would
// saturate on unsigned codes near 255): it flips bit 7 of u (u − 128 as int8) and zeroes β.
#pragma once

#include "runtime/cpu/kernels.h"

namespace quantllm::cpu {

// Row w (p.n weights, a multiple of the type's block) into out: u[n], alpha[n/4] (per 4-code lane),
// beta[n/16] = 128·α.
void decode_iq2_xxs(const uint8_t* w, const RowParams& p, const DecodedRow& out);
void decode_iq2_xs(const uint8_t* w, const RowParams& p, const DecodedRow& out);
void decode_iq2_s(const uint8_t* w, const RowParams& p, const DecodedRow& out);
void decode_iq3_xxs(const uint8_t* w, const RowParams& p, const DecodedRow& out);
void decode_iq3_s(const uint8_t* w, const RowParams& p, const DecodedRow& out);
void decode_iq1_s(const uint8_t* w, const RowParams& p, const DecodedRow& out);
void decode_iq1_m(const uint8_t* w, const RowParams& p, const DecodedRow& out);
void decode_tq1_0(const uint8_t* w, const RowParams& p, const DecodedRow& out);
void decode_tq2_0(const uint8_t* w, const RowParams& p, const DecodedRow& out);
void decode_mxfp4(const uint8_t* w, const RowParams& p, const DecodedRow& out);

// Kernels::dot through the decoded form: row w decoded by `decode` into this thread's buffers, then
// multiplied with the na activation rows by `tile` as a tile of one row (out[a], a < na). decode and
// tile must be one level's pair; p.n must suit that tile (a multiple of 64 at AVX-512: qmatrix.cpp
// sends rows of an odd number of 32-weight blocks to the scalar level).
void dot_decoded(DecodeFn decode, GemmTileFn tile, const uint8_t* w, const ActRow* act, int na, const RowParams& p,
                 float* out);

}  // namespace quantllm::cpu
