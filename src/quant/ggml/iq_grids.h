// The lattice codebooks of llama.cpp's IQ1/IQ2/IQ3 types: each entry is one grid point of 8 (IQ1, IQ2)
// or 4 (IQ3) weights, the points a block's groups are rounded to. They are facts of the formats
// (ggml-common.h's iq2xxs_grid … iq1s_grid, in the same order, so an index in a file means the same
// point). Two forms of each:
//   k…Index: the point as level numbers, 2 bits a weight (IQ1, IQ2: levels 0..2) or 3 bits (IQ3: 0..7),
//            weight i in bits [b·i, b·i + b) — the form the quantizers search in (a weight's position
//            on the grid is 2·level + 1);
//   k…Grid:  the point as the bytes dequantization multiplies with, byte i weight i: IQ2 levels 8, 25, 43;
//            IQ3_XXS 4, 12, …, 52, 62; IQ3_S 1, 3, …, 15; IQ1_S int8 −1, 0, 1.
// kIq2Signs: the 128 sign patterns of 8 weights with an even number of minus signs, indexed by the
// first 7 sign bits (bit 7 is their parity), as IQ2_XXS / IQ2_XS / IQ3_XXS store them.
#pragma once

#include <array>
#include <cstdint>

namespace quantllm::ggml {

extern const std::array<uint16_t, 256> kIq2xxsIndex;
extern const std::array<uint16_t, 512> kIq2xsIndex;
extern const std::array<uint16_t, 1024> kIq2sIndex;
extern const std::array<uint16_t, 256> kIq3xxsIndex;
extern const std::array<uint16_t, 512> kIq3sIndex;
extern const std::array<uint16_t, 2048> kIq1sIndex;

extern const std::array<uint64_t, 256> kIq2xxsGrid;
extern const std::array<uint64_t, 512> kIq2xsGrid;
extern const std::array<uint64_t, 1024> kIq2sGrid;
extern const std::array<uint32_t, 256> kIq3xxsGrid;
extern const std::array<uint32_t, 512> kIq3sGrid;
extern const std::array<uint64_t, 2048> kIq1sGrid;

extern const std::array<uint8_t, 128> kIq2Signs;

}  // namespace quantllm::ggml
