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

// A "synth:" source serves the same tensors as the checkpoint `synth` writes (values from the seed), so a
// method run on it writes the same bytes — without the weights on disk.
TEST(SynthSource, SameTensorsAndQuantizedBytesAsTheWrittenCheckpoint) {
  test::TempDir dir;
  const std::string tok = test::model_dir("gutenberg-llama-33m").string();
  const std::string out = (dir / "m").string();
  auto r = test::run_quantllm("synth --shape qwen2.5-0.5b --layers 2 --hidden 128 --heads 4 --kv-heads 2 --ffn 256 "
                              "--vocab 16384 --seed 5 --tokenizer-from " + tok + " --out " + out);
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string spec = "'synth:qwen2.5-0.5b,layers=2,hidden=128,heads=4,kv_heads=2,ffn=256,vocab=16384,seed=5,tokenizer=" + tok + "'";
  r = test::run_quantllm("inspect " + spec + " --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = json::parse(r.out);
  EXPECT_EQ(j["kind"], "synth");
  EXPECT_EQ(j["hyperparameters"]["num_hidden_layers"], 2);
  const std::string calib = " --method gptq --bits 4 --calib " + test::data_file("gutenberg-calib.txt").string() +
                            " --nsamples 4 --seqlen 64 --out ";
  r = test::run_quantllm("quantize --model " + out + calib + (dir / "from-disk").string());
  ASSERT_EQ(r.status, 0) << r.err;
  r = test::run_quantllm("quantize --model " + spec + calib + (dir / "from-seed").string());
  ASSERT_EQ(r.status, 0) << r.err;
  // Every tensor (the packed layers, the untouched embeddings, norms and biases) byte for byte.
  EXPECT_EQ(test::read_all(dir / "from-disk" / "model.safetensors"), test::read_all(dir / "from-seed" / "model.safetensors"));
  r = test::run_quantllm("inspect 'synth:qwen2.5-0.5b,layers=x'");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(test::count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("layers=x"), std::string::npos) << r.err;
}
