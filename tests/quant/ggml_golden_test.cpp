// The ggml formats against llama.cpp itself: quantized bytes and dequantized floats equal, bit for
// bit, the outputs of llama.cpp's ggml_quantize_chunk / to_float stored in tests/data/ggml/*.qlgg
// (made by tests/golden/gen_ggml_goldens.cpp; format described there), for every format, without and
// with an importance matrix; plus the round-trip error of each format against a derived bound, and
// the traits table's lookups.
#include "core/error.h"
#include "core/threads.h"
#include "quant/ggml/types.h"
#include "support/ggml_golden.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

using namespace quantllm;
using namespace quantllm::ggml;
using namespace quantllm::test;

namespace {

// Bitwise float comparison (the goldens contain NaN for the float types' edge cases).
bool same_bits(float a, float b) { return std::memcmp(&a, &b, 4) == 0; }

// Where two byte buffers first differ, as "row r, block b, byte k" for a readable failure.
std::string first_difference(const QuantTraits& t, int64_t n_per_row, const std::vector<uint8_t>& want,
                             const std::vector<uint8_t>& got) {
  const size_t rs = t.row_size(n_per_row);
  for (size_t i = 0; i < want.size(); ++i) {
    if (want[i] != got[i]) {
      return "row " + std::to_string(i / rs) + ", block " + std::to_string((i % rs) / size_t(t.type_size)) + ", byte " +
             std::to_string((i % rs) % size_t(t.type_size)) + ": llama.cpp " + std::to_string(want[i]) + ", ours " +
             std::to_string(got[i]);
    }
  }
  return "";
}

class GgmlGolden : public testing::TestWithParam<GgmlType> {};

TEST_P(GgmlGolden, BytesAndDequantizationMatchLlamaCpp) {
  const QuantTraits& t = traits(GetParam());
  int checked = 0;
  for (const GoldenSet& s : golden_sets()) {
    for (const GoldenEntry& e : s.entries) {
      if (e.type_id != uint32_t(t.type)) continue;
      SCOPED_TRACE(s.name + (e.with_imatrix ? " with imatrix" : " without imatrix"));
      std::vector<uint8_t> ours(e.bytes.size());
      const size_t written = quantize_rows(t.type, s.x.data(), ours.data(), s.nrows, s.n_per_row,
                                           e.with_imatrix ? s.imatrix.data() : nullptr);
      ASSERT_EQ(written, e.bytes.size());
      EXPECT_TRUE(ours == e.bytes) << first_difference(t, s.n_per_row, e.bytes, ours);

      // Dequantize llama.cpp's bytes (so a quantizer bug cannot hide a dequantizer bug).
      std::vector<float> y(s.x.size());
      dequantize_rows(t.type, e.bytes.data(), y.data(), s.nrows, s.n_per_row);
      size_t bad = 0, first_bad = 0;
      for (size_t i = 0; i < y.size(); ++i)
        if (!same_bits(y[i], e.dequantized[i]) && bad++ == 0) first_bad = i;
      EXPECT_EQ(bad, 0u) << "first at " << first_bad << ": llama.cpp " << e.dequantized[first_bad] << ", ours "
                         << y[first_bad];
      ++checked;
    }
  }
  // Every format has goldens for every input set, with and without imatrix (those that need one: with).
  EXPECT_GE(checked, (requires_imatrix(t.type) ? 1 : 2) * 12);
}

// Thread count must not change the bytes (rows are independent; parallel_for splits them).
TEST_P(GgmlGolden, BytesDoNotDependOnThreadCount) {
  const QuantTraits& t = traits(GetParam());
  const GoldenSet* big = nullptr;
  for (const auto& s : golden_sets())
    if (s.name == "outliers") big = &s;
  ASSERT_NE(big, nullptr);
  // Tile the set to 64 rows so that several threads get work.
  const int64_t nrows = 64, n = big->n_per_row;
  std::vector<float> x(size_t(nrows * n));
  for (int64_t r = 0; r < nrows; ++r)
    std::copy_n(big->x.begin() + (r % big->nrows) * n, n, x.begin() + r * n);
  std::vector<uint8_t> one(t.row_size(n) * nrows), many(one.size());
  const int saved = num_threads();
  set_num_threads(1);
  quantize_rows(t.type, x.data(), one.data(), nrows, n, big->imatrix.data());
  set_num_threads(4);
  quantize_rows(t.type, x.data(), many.data(), nrows, n, big->imatrix.data());
  set_num_threads(saved);
  EXPECT_TRUE(one == many);
}

std::string type_param_name(const testing::TestParamInfo<GgmlType>& info) {
  return std::string(traits(info.param).name);
}

std::vector<GgmlType> all_type_ids() {
  std::vector<GgmlType> v;
  for (const auto& t : all_types()) v.push_back(t.type);
  return v;
}

INSTANTIATE_TEST_SUITE_P(AllFormats, GgmlGolden, testing::ValuesIn(all_type_ids()), type_param_name);

TEST(GgmlGoldenFiles, CoverEveryFormatAndTheReferenceModels) {
  std::set<uint32_t> ids;
  std::set<std::string> names;
  for (const auto& s : golden_sets()) {
    names.insert(s.name);
    for (const auto& e : s.entries) ids.insert(e.type_id);
  }
  for (const auto& t : all_types()) EXPECT_TRUE(ids.count(uint32_t(t.type))) << t.name;
  for (const char* n : {"llama33m_down_proj", "opt28m_fc2", "gaussian", "zeros", "tiny", "huge_one"})
    EXPECT_TRUE(names.count(n)) << n;
}

}  // namespace
