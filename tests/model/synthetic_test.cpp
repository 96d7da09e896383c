// Synthetic checkpoints (model/synthetic.h): the shape table against the published parameter counts
// of the real models, determinism (seed, threads, --layers prefix), the weights' distribution, and a
// small synthetic model that opens and runs to finite logits through every layer.
#include "core/error.h"
#include "formats/open.h"
#include "core/threads.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/synthetic.h"
#include "model/weights.h"
#include "runtime/forward.h"
#include "support/reference.h"
#include "support/run.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

using namespace quantllm;

namespace {

int64_t parameters(const ModelConfig& c) {
  int64_t n = 0;
  for (const auto& [name, shape] : expected_tensors(c)) n += shape_numel(shape);
  return n;
}

SynthOptions small(const std::filesystem::path& out, int64_t layers = 2) {
  SynthOptions o;
  o.shape = synth_shape("llama-3.2-1b");
  o.shape.layers = layers;
  o.shape.hidden = 128;
  o.shape.heads = 4;
  o.shape.kv_heads = 2;
  o.shape.ffn = 256;
  o.shape.vocab = 8000;
  o.out = out;
  o.tokenizer_from = test::model_dir("gutenberg-llama-33m");
  o.shard_bytes = 1'000'000;  // several shards even at this size
  return o;
}

std::string bytes_of_dir(const std::filesystem::path& dir) {
  std::string all;
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) all += f.filename().string() + "\n" + test::read_all(f);
  return all;
}

}  // namespace

// The published parameter counts of the real checkpoints (model cards / transformers'
// num_parameters()) are an independent check of every field of the table that shapes a tensor.
TEST(Synthetic, ShapesHaveTheRealModelsParameterCounts) {
  const std::map<std::string, int64_t> published = {
      {"llama-3.2-1b", 1'235'814'400}, {"llama-2-7b", 6'738'415'616}, {"llama-3-8b", 8'030'261'248},
      {"tinyllama-1.1b", 1'100'048'384}, {"mistral-7b", 7'248'023'552}, {"opt-125m", 125'239'296},
      {"qwen2.5-0.5b", 494'032'768},     {"smollm2-135m", 134'515'008}};
  for (const auto& [name, count] : published) {
    const ModelConfig c = parse_config_json(synth_config_json(synth_shape(name), DType::BF16, 1, 2), name);
    EXPECT_EQ(parameters(c), count) << name;
  }
  for (const auto& s : synth_shapes()) {  // every row at least parses into a consistent config
    const ModelConfig c = parse_config_json(synth_config_json(s, DType::BF16, 1, 2), std::string(s.name));
    EXPECT_EQ(c.hidden, s.hidden);
    EXPECT_EQ(c.n_layers, s.layers);
    EXPECT_EQ(c.tied_embeddings, s.tied);
  }
  EXPECT_THROW(synth_shape("llama-9000"), Error);
}

TEST(Synthetic, SameSeedSameBytesWhateverTheThreads) {
  test::TempDir dir;
  set_num_threads(1);
  auto o = small(dir / "a");
  const SynthResult r = write_synthetic_checkpoint(o);
  EXPECT_GT(r.shards, 1);
  set_num_threads(2);
  o.out = dir / "b";
  write_synthetic_checkpoint(o);
  EXPECT_EQ(bytes_of_dir(dir / "a"), bytes_of_dir(dir / "b"));
  o.out = dir / "c";
  o.seed = 1;
  write_synthetic_checkpoint(o);
  EXPECT_NE(bytes_of_dir(dir / "a"), bytes_of_dir(dir / "c"));
  // An existing output is not overwritten without being asked.
  o.out = dir / "a";
  EXPECT_THROW(write_synthetic_checkpoint(o), Error);
}

TEST(Synthetic, FewerLayersIsAPrefixOfTheSameModel) {
  test::TempDir dir;
  write_synthetic_checkpoint(small(dir / "two", 2));
  write_synthetic_checkpoint(small(dir / "one", 1));
  const Checkpoint two(dir / "two"), one(dir / "one");
  for (const auto& name : one.names()) {
    const TensorView &a = one.get(name), &b = two.get(name);
    ASSERT_EQ(a.nbytes, b.nbytes) << name;
    EXPECT_EQ(std::memcmp(a.data, b.data, a.nbytes), 0) << name;
  }
  EXPECT_TRUE(two.has("model.layers.1.mlp.down_proj.weight"));
  EXPECT_FALSE(one.has("model.layers.1.mlp.down_proj.weight"));
}

// Linear weights: mean 0 and standard deviation 0.02 up to sampling error (n values: the mean's
// standard error is 0.02/√n, the standard deviation's 0.02/√(2n); 6 standard errors never fail by
// chance), and never beyond the Irwin–Hall bound √12·0.02/2·2 = 0.0693 (plus bf16 rounding, 2⁻⁸
// relative). Norm gains: 1 ± the same bound plus bf16's rounding near 1 (2⁻⁸).
TEST(Synthetic, WeightsHaveTheStatedDistribution) {
  test::TempDir dir;
  write_synthetic_checkpoint(small(dir / "m"));
  const Checkpoint ck(dir / "m");
  const Tensor w = ck.get("model.embed_tokens.weight").to_f32();
  const double n = double(w.numel());
  double sum = 0, sq = 0, mx = 0;
  for (float v : w.data) sum += v, sq += double(v) * v, mx = std::max(mx, double(std::fabs(v)));
  const double mean = sum / n, sd = std::sqrt(sq / n - mean * mean);
  EXPECT_NEAR(mean, 0.0, 6 * 0.02 / std::sqrt(n));
  EXPECT_NEAR(sd, 0.02, 6 * 0.02 / std::sqrt(2 * n) + 0.02 * 0x1p-9);
  EXPECT_LE(mx, std::sqrt(12.0) * 0.02 * (1 + 0x1p-8));
  const Tensor g = ck.get("model.layers.0.input_layernorm.weight").to_f32();
  for (float v : g.data) EXPECT_NEAR(v, 1.0, std::sqrt(12.0) * 0.02 + 0x1p-8);
}

// 16 blocks deep (the depth of Llama-3.2-1B) at a small width: the logits stay finite and vary.
TEST(Synthetic, OpensAndRunsToFiniteLogits) {
  test::TempDir dir;
  write_synthetic_checkpoint(small(dir / "m", 16));
  const LoadedModel m = open_model(dir / "m");
  EXPECT_EQ(m.config.n_layers, 16);
  EXPECT_EQ(m.config.hidden, 128);
  EXPECT_EQ(m.config.rope_scaling, RopeScaling::Llama3);
  EXPECT_TRUE(m.config.tied_embeddings);
  const FullModel fm(m);
  const std::vector<int32_t> tokens = m.tokenizer->encode("It was a dark and stormy night; the rain fell in torrents", true);
  const int64_t T = int64_t(tokens.size());
  bool called = false;
  fm.forward(tokens, 1, T, [&](int64_t, const Tensor& logits) {
    called = true;
    double lo = INFINITY, hi = -INFINITY;
    for (float v : logits.data) {
      ASSERT_TRUE(std::isfinite(v));
      lo = std::min(lo, double(v)), hi = std::max(hi, double(v));
    }
    EXPECT_GT(hi - lo, 1e-3);
  });
  EXPECT_TRUE(called);
}

TEST(Synthetic, RefusesATokenizerLargerThanTheVocabulary) {
  test::TempDir dir;
  auto o = small(dir / "m");
  o.shape.vocab = 100;
  EXPECT_THROW(write_synthetic_checkpoint(o), Error);
  EXPECT_FALSE(std::filesystem::exists(dir / "m"));
}
