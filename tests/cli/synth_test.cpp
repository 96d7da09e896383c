// `quantllm synth` as a user runs it: small variants of Llama, Qwen2 and OPT shapes open with
// `inspect`, and `eval ppl` on them is finite; a bad shape is a one-line user error.
#include "support/reference.h"
#include "support/run.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace quantllm;
using json = nlohmann::json;

class SynthCli : public ::testing::TestWithParam<const char*> {};

TEST_P(SynthCli, SmallVariantInspectsAndEvaluates) {
  test::TempDir dir;
  const std::string shape = GetParam();
  const std::string out = (dir / "m").string();
  const bool opt = shape.starts_with("opt");
  const std::string tok = test::model_dir(opt ? "gutenberg-opt-28m" : "gutenberg-llama-33m").string();
  auto r = test::run_quantllm("synth --shape " + shape + " --layers 2 --hidden 128 --heads 4 --kv-heads 2 --ffn 256 " +
                              "--vocab 16384 --tokenizer-from " + tok + " --out " + out + " --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto s = json::parse(r.out);
  EXPECT_EQ(s["out"], out);

  r = test::run_quantllm("inspect " + out + " --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = json::parse(r.out);
  EXPECT_EQ(j["hyperparameters"]["hidden_size"], 128);
  EXPECT_EQ(j["hyperparameters"]["num_hidden_layers"], 2);

  r = test::run_quantllm("eval ppl --model " + out + " --data " + test::data_file("wikitext2-test.raw").string() +
                         " --ctx 64 --max-windows 2 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const double ppl = json::parse(r.out)["ppl"].get<double>();
  EXPECT_TRUE(std::isfinite(ppl));
  // Random weights: close to guessing uniformly among 16384 tokens, far from a trained model.
  EXPECT_GT(ppl, 1000);
}

INSTANTIATE_TEST_SUITE_P(Shapes, SynthCli, ::testing::Values("llama-3.2-1b", "qwen2.5-0.5b", "opt-125m"));

TEST(SynthCliErrors, UnknownShapeIsAUserError) {
  test::TempDir dir;
  const auto r = test::run_quantllm("synth --shape llama-9000 --out " + (dir / "m").string());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("unknown shape 'llama-9000'"), std::string::npos) << r.err;
  EXPECT_EQ(test::count_lines(r.err), 1) << r.err;
}
