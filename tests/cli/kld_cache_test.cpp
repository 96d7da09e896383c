// eval kld keeps the base model's logits on disk (eval/base_logits.h): the second candidate against
// the same base and windows reads them back instead of running the base, with bit-identical results;
// other windows, the other engine, --no-cache and a size limit below the file's size bypass the cache.
#include "support/reference.h"
#include "support/run.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>

namespace quantllm::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

int cache_files(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return 0;
  return int(std::distance(fs::directory_iterator(dir), fs::directory_iterator{}));
}

TEST(KldCache, SecondRunReadsTheBaseFromTheCacheWithIdenticalResults) {
  TempDir tmp;
  ::setenv("XDG_CACHE_HOME", tmp.path.c_str(), 1);
  const fs::path dir = tmp / "quantllm/kld";
  const std::string model = model_dir("gutenberg-llama-33m").string();
  const fs::path cand = tmp / "q8.gguf";
  ASSERT_EQ(run_quantllm("quantize --model " + model + " --method gguf --type Q8_0 --out " + cand.string()).status, 0);
  const std::string args = "eval kld --base " + model + " --model " + cand.string() + " --data " +
                           data_file("wikitext2-test.raw").string() + " --json --max-windows ";

  const RunResult first = run_quantllm(args + "2");
  ASSERT_EQ(first.status, 0) << first.err;
  const json a = json::parse(first.out);
  EXPECT_FALSE(a["base_from_cache"].get<bool>());
  ASSERT_EQ(cache_files(dir), 1);
  // [2 windows, 511 scored positions, 8000 logits] fp32 + 40 header bytes.
  EXPECT_EQ(fs::file_size(fs::directory_iterator(dir)->path()), 2u * 511 * 8000 * 4 + 40);

  const RunResult second = run_quantllm(args + "2");
  ASSERT_EQ(second.status, 0) << second.err;
  const json b = json::parse(second.out);
  EXPECT_TRUE(b["base_from_cache"].get<bool>());
  for (const char* k : {"kld", "kld_p99", "top1_agreement", "ppl", "ppl_base"}) EXPECT_EQ(a[k], b[k]) << k;

  const json c = json::parse(run_quantllm(args + "3").out);  // other windows: computed, cached anew
  EXPECT_FALSE(c["base_from_cache"].get<bool>());
  EXPECT_EQ(cache_files(dir), 2);
  EXPECT_FALSE(json::parse(run_quantllm(args + "2 --no-cache").out)["base_from_cache"].get<bool>());
  // the other engine's logits differ in the last bits: not the cached ones, cached apart
  EXPECT_FALSE(json::parse(run_quantllm(args + "2 --engine fp32").out)["base_from_cache"].get<bool>());
  EXPECT_EQ(cache_files(dir), 3);

  ::setenv("QUANTLLM_KLD_CACHE_MB", "1", 1);  // 4 windows are 62 MiB: over the limit, nothing written
  EXPECT_FALSE(json::parse(run_quantllm(args + "4").out)["base_from_cache"].get<bool>());
  EXPECT_EQ(cache_files(dir), 3);
  ::unsetenv("QUANTLLM_KLD_CACHE_MB");
  ::unsetenv("XDG_CACHE_HOME");
}

}  // namespace
}  // namespace quantllm::test
