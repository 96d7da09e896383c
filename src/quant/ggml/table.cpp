// The traits table of the ggml formats, the lookups into it, and the row-parallel drivers.
//
// Adding a format means adding its block struct (blocks.h), its row functions and filling its row here
// (every llama.cpp type id has a row already, with its geometry).
// Rows are independent in every format (an imatrix is per column, and the row statistics some
// formats use are per row), so quantize_rows can hand any split of rows to any thread and the bytes
// never depend on the thread count.
#include "quant/ggml/internal.h"  // first: its pragmas must precede every inline function
#include "quant/ggml/types.h"

#include "core/error.h"
#include "core/threads.h"

#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

namespace quantllm::ggml {

namespace {

using namespace detail;

// clang-format off
// Ids and geometry of the types we do not implement: llama.cpp's ggml.h and ggml-common.h (QK_K = 256).
constexpr QuantTraits kTable[] = {
  // type             name       block  bytes                 quantized imatrix quantize             dequantize
  {GgmlType::F32,     "F32",     1,     4,                    false,    false,  quantize_row_f32,    dequantize_row_f32},
  {GgmlType::F16,     "F16",     1,     2,                    false,    false,  quantize_row_f16,    dequantize_row_f16},
  {GgmlType::Q4_0,    "Q4_0",    kQK,   sizeof(BlockQ4_0),    true,     true,   quantize_row_q4_0,   dequantize_row_q4_0},
  {GgmlType::Q4_1,    "Q4_1",    kQK,   sizeof(BlockQ4_1),    true,     true,   quantize_row_q4_1,   dequantize_row_q4_1},
  {GgmlType::Q5_0,    "Q5_0",    kQK,   sizeof(BlockQ5_0),    true,     true,   quantize_row_q5_0,   dequantize_row_q5_0},
  {GgmlType::Q5_1,    "Q5_1",    kQK,   sizeof(BlockQ5_1),    true,     true,   quantize_row_q5_1,   dequantize_row_q5_1},
  {GgmlType::Q8_0,    "Q8_0",    kQK,   sizeof(BlockQ8_0),    true,     false,  quantize_row_q8_0,   dequantize_row_q8_0},
  {GgmlType::Q8_1,    "Q8_1",    32,    36,                   true,     false,  nullptr,             nullptr},
  {GgmlType::Q2_K,    "Q2_K",    kQK_K, sizeof(BlockQ2_K),    true,     true,   quantize_row_q2_k,   dequantize_row_q2_k},
  {GgmlType::Q3_K,    "Q3_K",    kQK_K, sizeof(BlockQ3_K),    true,     true,   quantize_row_q3_k,   dequantize_row_q3_k},
  {GgmlType::Q4_K,    "Q4_K",    kQK_K, sizeof(BlockQ4_K),    true,     true,   quantize_row_q4_k,   dequantize_row_q4_k},
  {GgmlType::Q5_K,    "Q5_K",    kQK_K, sizeof(BlockQ5_K),    true,     true,   quantize_row_q5_k,   dequantize_row_q5_k},
  {GgmlType::Q6_K,    "Q6_K",    kQK_K, sizeof(BlockQ6_K),    true,     true,   quantize_row_q6_k,   dequantize_row_q6_k},
  {GgmlType::Q8_K,    "Q8_K",    256,   292,                  true,     false,  nullptr,             nullptr},
  {GgmlType::IQ2_XXS, "IQ2_XXS", kQK_K, sizeof(BlockIQ2_XXS), true,     true,   quantize_row_iq2_xxs, dequantize_row_iq2_xxs},
  {GgmlType::IQ2_XS,  "IQ2_XS",  kQK_K, sizeof(BlockIQ2_XS),  true,     true,   quantize_row_iq2_xs, dequantize_row_iq2_xs},
  {GgmlType::IQ3_XXS, "IQ3_XXS", kQK_K, sizeof(BlockIQ3_XXS), true,     true,   quantize_row_iq3_xxs, dequantize_row_iq3_xxs},
  {GgmlType::IQ1_S,   "IQ1_S",   kQK_K, sizeof(BlockIQ1_S),   true,     true,   quantize_row_iq1_s,  dequantize_row_iq1_s},
  {GgmlType::IQ4_NL,  "IQ4_NL",  kQK,   sizeof(BlockIQ4_NL),  true,     true,   quantize_row_iq4_nl, dequantize_row_iq4_nl},
  {GgmlType::IQ3_S,   "IQ3_S",   kQK_K, sizeof(BlockIQ3_S),   true,     true,   quantize_row_iq3_s,  dequantize_row_iq3_s},
  {GgmlType::IQ2_S,   "IQ2_S",   kQK_K, sizeof(BlockIQ2_S),   true,     true,   quantize_row_iq2_s,  dequantize_row_iq2_s},
  {GgmlType::IQ4_XS,  "IQ4_XS",  kQK_K, sizeof(BlockIQ4_XS),  true,     true,   quantize_row_iq4_xs, dequantize_row_iq4_xs},
  {GgmlType::I8,      "I8",      1,     1,                    false,    false,  nullptr,             nullptr},
  {GgmlType::I16,     "I16",     1,     2,                    false,    false,  nullptr,             nullptr},
  {GgmlType::I32,     "I32",     1,     4,                    false,    false,  nullptr,             nullptr},
  {GgmlType::I64,     "I64",     1,     8,                    false,    false,  nullptr,             nullptr},
  {GgmlType::F64,     "F64",     1,     8,                    false,    false,  nullptr,             nullptr},
  {GgmlType::IQ1_M,   "IQ1_M",   kQK_K, sizeof(BlockIQ1_M),   true,     true,   quantize_row_iq1_m,  dequantize_row_iq1_m},
  {GgmlType::BF16,    "BF16",    1,     2,                    false,    false,  quantize_row_bf16,   dequantize_row_bf16},
  {GgmlType::TQ1_0,   "TQ1_0",   kQK_K, sizeof(BlockTQ1_0),   true,     false,  quantize_row_tq1_0,  dequantize_row_tq1_0},
  {GgmlType::TQ2_0,   "TQ2_0",   kQK_K, sizeof(BlockTQ2_0),   true,     false,  quantize_row_tq2_0,  dequantize_row_tq2_0},
  {GgmlType::MXFP4,   "MXFP4",   kQK,   sizeof(BlockMXFP4),   true,     false,  quantize_row_mxfp4,  dequantize_row_mxfp4},
  {GgmlType::GQ4,     "GQ4",     64,    32,                   true,     false,  nullptr,             nullptr},
};
// clang-format on

bool same_name(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::toupper(static_cast<unsigned char>(x)) == std::toupper(static_cast<unsigned char>(y));
         });
}

// Rows per parallel_for chunk: enough work (~64 K weights) that scheduling costs nothing.
int64_t min_rows_per_chunk(int64_t n_per_row) { return std::max<int64_t>(1, 65536 / std::max<int64_t>(1, n_per_row)); }

}  // namespace

size_t QuantTraits::row_size(int64_t n) const {
  QL_ASSERT(n % block_size == 0, "{}: row of {} weights is not a multiple of the block size {}", name, n,
            block_size);
  return size_t(n / block_size) * size_t(type_size);
}

namespace {
// The supported rows, in id order.
const std::vector<QuantTraits>& supported_rows() {
  static const std::vector<QuantTraits> v = [] {
    std::vector<QuantTraits> r;
    for (const auto& t : kTable)
      if (t.supported()) r.push_back(t);
    return r;
  }();
  return v;
}
}  // namespace

std::span<const QuantTraits> all_types() { return supported_rows(); }

const QuantTraits* type_info(uint32_t id) {
  for (const auto& t : kTable)
    if (uint32_t(t.type) == id) return &t;
  return nullptr;
}

const QuantTraits* find_type(std::string_view name) {
  for (const auto& t : kTable)
    if (t.supported() && same_name(t.name, name)) return &t;
  return nullptr;
}

const QuantTraits* find_type(uint32_t id) {
  const QuantTraits* t = type_info(id);
  return t && t->supported() ? t : nullptr;
}

const QuantTraits& traits(GgmlType type) {
  const QuantTraits* t = type_info(uint32_t(type));
  QL_ASSERT(t != nullptr, "ggml type {} has no traits row", uint32_t(type));
  return *t;
}

const QuantTraits& type_by_name(std::string_view name) {
  if (const QuantTraits* t = find_type(name)) return *t;
  std::string known;
  for (const auto& t : all_types()) {
    if (!known.empty()) known += ", ";
    known += t.name;
  }
  fail("unknown quantization type '{}' (known: {})", name, known);
}

size_t quantize_rows(GgmlType type, const float* src, void* dst, int64_t nrows, int64_t n_per_row,
                     const float* imatrix) {
  const QuantTraits& t = traits(type);
  QL_ASSERT(t.quantize != nullptr, "no quantizer for {}", t.name);
  const size_t row_bytes = t.row_size(n_per_row);
  auto* out = static_cast<uint8_t*>(dst);
  parallel_for(
      nrows,
      [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) t.quantize(src + r * n_per_row, out + size_t(r) * row_bytes, n_per_row, imatrix);
      },
      min_rows_per_chunk(n_per_row));
  return size_t(nrows) * row_bytes;
}

void dequantize_rows(GgmlType type, const void* src, float* dst, int64_t nrows, int64_t n_per_row) {
  const QuantTraits& t = traits(type);
  const size_t row_bytes = t.row_size(n_per_row);
  const auto* in = static_cast<const uint8_t*>(src);
  parallel_for(
      nrows,
      [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) t.dequantize(in + size_t(r) * row_bytes, dst + r * n_per_row, n_per_row);
      },
      min_rows_per_chunk(n_per_row));
}

}  // namespace quantllm::ggml
