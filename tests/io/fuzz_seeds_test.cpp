// The fuzzers' seed files (fuzz/seeds/*) must be valid inputs, so that fuzzing starts from deep
// inside each parser rather than at its first check.
#include "io/gguf.h"
#include "io/imatrix.h"
#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <filesystem>

using namespace quantllm;
namespace fs = std::filesystem;

namespace {
std::vector<fs::path> seeds(const std::string& kind) {
  std::vector<fs::path> out;
  const fs::path dir = fs::path(QUANTLLM_SOURCE_DIR) / "fuzz" / "seeds" / kind;
  if (fs::is_directory(dir))
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path());
  return out;
}
}  // namespace

TEST(FuzzSeeds, AllParse) {
  const auto st = seeds("safetensors");
  const auto gg = seeds("gguf");
  const auto im = seeds("imatrix");
  if (st.empty() && gg.empty() && im.empty()) GTEST_SKIP() << "no seeds";
  for (const auto& p : st) EXPECT_NO_THROW(SafetensorsFile f(p)) << p;
  for (const auto& p : gg) EXPECT_NO_THROW(GGUFFile f(p)) << p;
  for (const auto& p : im) EXPECT_NO_THROW(ImportanceMatrix::load(p)) << p;
  EXPECT_GT(GGUFFile(fs::path(QUANTLLM_SOURCE_DIR) / "fuzz/seeds/gguf/model.gguf").tensors().size(), 0u);
}
