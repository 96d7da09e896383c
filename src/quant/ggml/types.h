// The llama.cpp (ggml) weight formats: one QuantTraits row per format, and row-wise quantize /
// dequantize over whole tensors.
//
// This is the public entry point of src/quant/ggml for the GGUF writer and reader. Every quantizer
// produces the very bytes llama.cpp's ggml_quantize_chunk() produces for the same input, with and
// without an importance matrix (tests/quant/ggml_golden_test.cpp checks that against files made by
// llama.cpp itself); block layouts are in blocks.h.
//
//   src:     [nrows, n_per_row] f32, row-major
//   dst:     nrows * row_size(type, n_per_row) bytes
//   imatrix: [n_per_row] importance of each input column (llama.cpp's imatrix), or nullptr
#pragma once

#include "quant/ggml/blocks.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace quantllm::ggml {

// llama.cpp's ggml_type ids (the values stored in GGUF tensor infos). Q8_1 and Q8_K are the
// activation formats of llama.cpp's dot products; they are named here but have no row in the table.
enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ4_NL = 20,
  IQ4_XS = 23,
  BF16 = 30,
};

// Quantizes one row of n weights (n a multiple of the block size) into n / block_size blocks.
// imatrix: n importance values or nullptr.
using QuantizeRowFn = void (*)(const float* x, void* dst, int64_t n, const float* imatrix);
// Expands one row of n weights back to f32.
using DequantizeRowFn = void (*)(const void* src, float* y, int64_t n);

struct QuantTraits {
  GgmlType type;
  std::string_view name;    // llama.cpp's spelling: "Q4_K", "IQ4_XS", "F16" …
  int block_size;           // weights per block
  int type_size;            // bytes per block
  bool is_quantized;        // false for F32 / F16 / BF16
  bool uses_imatrix;        // whether an importance matrix changes the result
  QuantizeRowFn quantize;
  DequantizeRowFn dequantize;

  // Bytes of a row of n weights; n must be a multiple of block_size.
  size_t row_size(int64_t n) const;
};

// Every format we know, in type-id order.
std::span<const QuantTraits> all_types();

// Lookups. traits() asserts that the id is a known one (GgmlType values are ours to pass);
// find_type() returns nullptr for an unknown name / id (e.g. one read from a file); type_by_name()
// throws quantllm::Error "unknown quantization type 'X' (known: …)". Names are case-insensitive.
const QuantTraits& traits(GgmlType type);
const QuantTraits* find_type(std::string_view name);
const QuantTraits* find_type(uint32_t id);
const QuantTraits& type_by_name(std::string_view name);

inline std::string_view type_name(GgmlType type) { return traits(type).name; }
inline size_t row_size(GgmlType type, int64_t n_per_row) { return traits(type).row_size(n_per_row); }

// Quantizes nrows rows, in parallel over rows with quantllm::parallel_for (results do not depend on
// the thread count). Returns the bytes written: nrows * row_size(type, n_per_row).
size_t quantize_rows(GgmlType type, const float* src, void* dst, int64_t nrows, int64_t n_per_row,
                     const float* imatrix);

// Expands nrows rows back to f32 (dst: [nrows, n_per_row]), in parallel over rows.
void dequantize_rows(GgmlType type, const void* src, float* dst, int64_t nrows, int64_t n_per_row);

}  // namespace quantllm::ggml
