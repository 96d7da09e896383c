// The llama.cpp (ggml) weight formats: one QuantTraits row per type id — the one table of what every
// type is (name, block geometry, whether it is quantized, its quantize / dequantize functions), that the
// GGUF reader sizes tensors by and that every backend's kernel table is keyed by (runtime/cpu/kernels.h:
// arrays indexed by the type id, as ggml's type_traits_cpu). Ids llama.cpp defines but we do not
// implement have geometry only (supported() false); GQ4, ours, is the CPU kernels' repacked GPTQ / AWQ
// groups and never appears in a file.
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

// llama.cpp's ggml_type ids (the values stored in GGUF tensor infos; ids 4, 5, 31–33, 36–38 were removed
// from ggml and are not valid in files), then GQ4.
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
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
  // Ours: GPTQ / AWQ groups repacked for the CPU kernels (runtime/cpu/kernels.h describes the layout).
  GQ4 = 40,
};
// Arrays keyed by a type id have this many entries.
inline constexpr int kNumGgmlTypes = 41;

// Quantizes one row of n weights (n a multiple of the block size) into n / block_size blocks.
// imatrix: n importance values or nullptr.
using QuantizeRowFn = void (*)(const float* x, void* dst, int64_t n, const float* imatrix);
// Expands one row of n weights back to f32.
using DequantizeRowFn = void (*)(const void* src, float* y, int64_t n);

struct QuantTraits {
  GgmlType type;
  std::string_view name;    // llama.cpp's spelling: "Q4_K", "IQ4_XS", "F16" …
  int block_size;           // weights per block (GQ4: 64, the packing unit of the codes)
  int type_size;            // bytes per block (GQ4: the codes only; the group records follow the row)
  bool is_quantized;        // false for the float and integer (I8 …) types
  bool uses_imatrix;        // whether an importance matrix changes the result
  QuantizeRowFn quantize;   // null: we do not write this type
  DequantizeRowFn dequantize;  // null: we do not read it

  // Whether this library writes and reads the type (a GGUF tensor of another type is refused).
  bool supported() const { return quantize != nullptr && dequantize != nullptr; }
  // Bytes of a row of n weights; n must be a multiple of block_size.
  size_t row_size(int64_t n) const;
};

// Every type we write and read, in type-id order.
std::span<const QuantTraits> all_types();

// Lookups. traits() asserts that the type has a row (GgmlType values are ours to pass);
// type_info() gives any known id's row (geometry), nullptr for an id that is not one;
// find_type() returns the supported type of a name / id, nullptr otherwise (e.g. one read from a file);
// type_by_name() throws quantllm::Error "unknown quantization type 'X' (known: …)". Names are
// case-insensitive.
const QuantTraits& traits(GgmlType type);
const QuantTraits* type_info(uint32_t id);
const QuantTraits* find_type(std::string_view name);
const QuantTraits* find_type(uint32_t id);
const QuantTraits& type_by_name(std::string_view name);

// The types llama.cpp refuses to quantize without an importance matrix (ggml_quantize_requires_imatrix:
// at under 2.4 bits a weight, rounding without one is too poor to be worth writing).
inline bool requires_imatrix(GgmlType type) {
  return type == GgmlType::IQ2_XXS || type == GgmlType::IQ2_XS || type == GgmlType::IQ1_S;
}

inline std::string_view type_name(GgmlType type) { return traits(type).name; }
inline size_t row_size(GgmlType type, int64_t n_per_row) { return traits(type).row_size(n_per_row); }

// Quantizes nrows rows, in parallel over rows with quantllm::parallel_for (results do not depend on
// the thread count). Returns the bytes written: nrows * row_size(type, n_per_row).
size_t quantize_rows(GgmlType type, const float* src, void* dst, int64_t nrows, int64_t n_per_row,
                     const float* imatrix);

// Expands nrows rows back to f32 (dst: [nrows, n_per_row]), in parallel over rows.
void dequantize_rows(GgmlType type, const void* src, float* dst, int64_t nrows, int64_t n_per_row);

}  // namespace quantllm::ggml
