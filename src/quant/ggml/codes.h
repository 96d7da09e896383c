// The per-weight codes inside GGML blocks, apart from the block headers (scales, mins) that fix what
// each code means: for the types whose blocks are a header plus one code per weight — the legacy types
// (Q4_0 … Q8_0), the K-quants (Q2_K … Q6_K) and IQ4_NL / IQ4_XS. A quantizer that chooses the header
// first and the codes afterwards (GPTQ's column-by-column rounding with error feedback, quant/ggml/
// gptq_grid.h) writes a block with llama.cpp's header fit, then its own codes into it.
//
// A code is the index of a weight's value among the values its block header allows, in the order of
// the stored integers: Q4_0's q in [0, 15] (w = d·(q − 8)), Q8_0's q + 127 for q in [−127, 127], Q3_K's
// low 2 bits + 4·its high bit, IQ4's index into kIq4nlValues. Layouts: blocks.h.
#pragma once

#include "quant/ggml/types.h"

#include <cstdint>
#include <vector>

namespace quantllm::ggml {

// How many codes a weight of `type` has; 0 for the types without separable codes (floats, the IQ1–IQ3
// lattice types, TQ, MXFP4).
int code_levels(GgmlType type);

// codes[block_size] written into the block's code bits (its header untouched) / read back from them.
// Every code must be below code_levels(type).
void set_codes(GgmlType type, void* block, const uint8_t* codes);
void get_codes(GgmlType type, const void* block, uint8_t* codes);

// What a block's header lets each of its weights be. Uniform types: value(i, k) = base[i] + step[i]·k
// (step may be 0 or negative); IQ4_NL / IQ4_XS: value(i, k) = scale[i]·kIq4nlValues[k] (base, step empty).
// Derived by dequantizing the block with every code 0 and every code 1 (IQ4: the code of value 1), so
// it is what llama.cpp's dequantization computes, up to float rounding of base + step·k.
struct BlockGrid {
  std::vector<float> base, step, scale;
  bool uniform() const { return scale.empty(); }
  // The code of the value nearest x at weight i (ties: the lower code) and that value.
  uint8_t nearest(int i, float x, int levels, float& value) const;
};
BlockGrid block_grid(GgmlType type, const void* block);
void block_grid(GgmlType type, const void* block, BlockGrid& g);  // into g, reusing its storage

}  // namespace quantllm::ggml
