// The streamed output (issue 19) as a user sees it: quantizing a model 8 times deeper does not take more
// memory (each block's shard is written as soon as the block is final, not held until the end), and an
// output written as shards with an index reads back exactly as the same output joined into one file —
// by quantllm and by the second reader (tests/reference/read_quantized.py).
#include "support/reference.h"
#include "support/run.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

using namespace quantllm;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

// GPTQ of a synth: Llama shape with `layers` blocks of hidden 1024, FFN 2816; returns peak RSS (bytes).
uint64_t gptq_peak_rss(const test::TempDir& tmp, int layers) {
  const std::string model = "synth:llama-2-7b,layers=" + std::to_string(layers) +
                            ",hidden=1024,ffn=2816,heads=8,kv_heads=8,vocab=32000,tokenizer=" +
                            test::model_dir("gutenberg-llama-33m").string();
  const auto r = test::run_quantllm("quantize --model " + model + " --method gptq --bits 4 --calib " +
                                    test::data_file("gutenberg-calib.txt").string() +
                                    " --nsamples 2 --seqlen 64 --threads 2 --json --out " +
                                    (tmp / ("d" + std::to_string(layers))).string());
  EXPECT_EQ(r.status, 0) << r.err;
  if (r.status != 0) return 0;
  return json::parse(r.out)["peak_rss_bytes"].get<uint64_t>();
}

}  // namespace

// Holding every finished layer until the end (the design before streaming) would add, per block, the
// codes (a byte a weight: 1024 × (4·1024 + 3·2816) = 12.8 MB) and their scales/zeros: 16 − 2 blocks, about
// 180 MB. Streamed, the deeper run may differ by noise only: less than a quarter of that.
TEST(Streaming, PeakMemoryDoesNotGrowWithDepth) {
  test::TempDir tmp;
  const uint64_t shallow = gptq_peak_rss(tmp, 2), deep = gptq_peak_rss(tmp, 16);
  ASSERT_GT(shallow, 0u);
  ASSERT_GT(deep, 0u);
  const double held_per_block = 1024.0 * (4 * 1024 + 3 * 2816);
  EXPECT_LT(double(deep), double(shallow) + 0.25 * 14 * held_per_block)
      << "2 blocks: " << shallow / 1048576 << " MiB, 16 blocks: " << deep / 1048576 << " MiB";
  // The sixteen blocks are all in the output (one file: far below 5 GB).
  EXPECT_TRUE(fs::exists(tmp / "d16" / "model.safetensors"));
  EXPECT_FALSE(fs::exists(tmp / "d16.resume"));
}

TEST(Streaming, ShardedOutputReadsBackAsTheJoinedOne) {
  test::TempDir tmp;
  const std::string args = "quantize --model " + test::model_dir("gutenberg-llama-33m").string() +
                           " --method gptq --bits 4 --act-order --calib " + test::data_file("gutenberg-calib.txt").string() +
                           " --nsamples 4 --seqlen 128 --threads 2 --out ";
  auto r = test::run_quantllm(args + (tmp / "one").string());
  ASSERT_EQ(r.status, 0) << r.err;
  r = test::run_command("QUANTLLM_SINGLE_FILE_MAX=1 " + std::string(QUANTLLM_BIN) + " " + args + (tmp / "sharded").string());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(fs::exists(tmp / "one" / "model.safetensors"));
  EXPECT_FALSE(fs::exists(tmp / "sharded" / "model.safetensors"));

  // The index: every tensor of the joined file, each in the shard of its block (8 blocks + the rest).
  const json index = json::parse(test::read_all(tmp / "sharded" / "model.safetensors.index.json"));
  const std::string joined = test::read_all(tmp / "one" / "model.safetensors");
  const uint64_t header_len = *reinterpret_cast<const uint64_t*>(joined.data());
  const json header = json::parse(joined.substr(8, header_len));
  uint64_t total = 0;
  for (const auto& [name, t] : header.items()) {
    if (name == "__metadata__") continue;
    ASSERT_TRUE(index["weight_map"].contains(name)) << name;
    const std::string shard = index["weight_map"][name];
    const auto dot = name.find("layers.");
    const std::string want = dot == std::string::npos
                                 ? "model-00009-of-00009.safetensors"
                                 : "model-0000" + std::to_string(std::stoi(name.substr(dot + 7)) + 1) + "-of-00009.safetensors";
    EXPECT_EQ(shard, want) << name;
    total += t["data_offsets"][1].get<uint64_t>() - t["data_offsets"][0].get<uint64_t>();
  }
  EXPECT_EQ(index["weight_map"].size(), header.size() - 1);
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), total);
  for (int s = 1; s <= 9; ++s)
    EXPECT_TRUE(fs::exists(tmp / "sharded" / ("model-0000" + std::to_string(s) + "-of-00009.safetensors"))) << s;

  // quantllm reads both the same: identical perplexity to the last digit.
  auto ppl = [&](const std::string& dir) {
    const auto e = test::run_quantllm("eval ppl --model " + (tmp / dir).string() + " --data " +
                                      test::data_file("gutenberg-heldout.txt").string() + " --max-windows 2 --json");
    EXPECT_EQ(e.status, 0) << e.err;
    return e.status == 0 ? json::parse(e.out)["ppl"].dump() : std::string("?");
  };
  EXPECT_EQ(ppl("one"), ppl("sharded"));

  // So does the second reader: the dense weights it dequantizes are the same bytes.
  const std::string py = (fs::exists("/usr/bin/python3") ? std::string("/usr/bin/python3") : std::string("python3")) + " " +
                         (fs::path(QUANTLLM_SOURCE_DIR) / "tests/reference/read_quantized.py").string() + " ";
  r = test::run_command(py + (tmp / "one").string() + " " + (tmp / "one-dense").string());
  ASSERT_EQ(r.status, 0) << r.err;
  r = test::run_command(py + (tmp / "sharded").string() + " " + (tmp / "sharded-dense").string());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(test::read_all(tmp / "one-dense" / "model.safetensors") ==
              test::read_all(tmp / "sharded-dense" / "model.safetensors"));
}
