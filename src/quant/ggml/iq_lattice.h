// The search structure of the IQ1/IQ2/IQ3 quantizers over a codebook (iq_grids.h): a group of 8 (or 4)
// weights is first rounded on its own to levels 0..2 (0..7), giving a level code; if that code is a grid
// point it is used, otherwise the quantizer picks the best of the code's nearest grid points. Which
// points count as nearest is part of the format's reference quantizer, so this follows llama.cpp's
// ggml_quantize_init exactly: for every code off the grid, the grid points whose squared distance
// (in positions 2·level + 1) is among the `nwant` smallest distinct distances, in order of (distance,
// index). nwant: IQ2_XXS, IQ2_XS, IQ3_XXS 2; IQ2_S 1; IQ1_S, IQ1_M, IQ3_S 3.
// Built once per codebook on first use (thread-safe). Codes with a level above what the quantizers
// produce (3 for IQ1/IQ2) have no neighbours.
#pragma once

#include "quant/ggml/types.h"

#include <cstdint>
#include <span>
#include <vector>

namespace quantllm::ggml::detail {

struct Lattice {
  int size = 0;  // grid points
  int dim = 0;   // weights a point: 8 or 4
  int bits = 0;  // bits a level in a code: 2 or 3
  std::vector<int8_t> pos;           // [size × dim]: 2·level + 1 of each point
  std::vector<int32_t> point_of;     // [1 << dim·bits]: the grid index of a code, or −1
  std::vector<uint32_t> first;       // [1 << dim·bits + 1]: the code's neighbours are nb[first[c] .. first[c+1])
  std::vector<uint16_t> nb;

  // The grid index of a level code, or −1 when the code is not a grid point.
  int point(uint32_t code) const { return point_of[code]; }
  std::span<const uint16_t> neighbours(uint32_t code) const {
    return {nb.data() + first[code], nb.data() + first[code + 1]};
  }
  // Among the neighbours of `code`, the point minimizing Σ weight·(scale·pos − xval)² (the first of
  // equals); writes its levels to L[0..dim) and returns its index.
  int best_neighbour(uint32_t code, const float* xval, const float* weight, float scale, int8_t* L) const;
};

// Σ w·x·q and Σ w·q² of n weights at positions q = 2·L + 1, summed in index order (the least-squares
// scale of a choice of points is sumqx / sumq2).
void fit_sums(const int8_t* L, const float* xval, const float* w, int n, float& sumqx, float& sumq2);

// |x| of `octets` runs of 8 weights into xval, the signs into signs[k] (bit i: weight i negative). With
// `even` (the IQ2/IQ3 types whose sign byte keeps 7 bits, the eighth being the parity), an octet with an odd
// count of negatives gives its least important weight (smallest w·x², the first of equals) the wrong sign:
// its xval turns negative and its bit toggles.
void split_signs(const float* x, const float* w, int octets, bool even, float* xval, uint8_t* signs);

// The lattice of an IQ type's codebook (IQ1_S and IQ1_M share one).
const Lattice& lattice(GgmlType type);

}  // namespace quantllm::ggml::detail
