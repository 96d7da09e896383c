// Qwen3 (dense): the architecture that was added as one table row (model/arch.cpp) plus one new piece,
// the per-head q/k RMSNorm before RoPE (a norm slot of width head_dim in the block spec, BlockOps::head_norm
// on each device). Checked here on a small random-weight checkpoint (support/synthetic.h):
//  - the block spec has the q/k norm slots with llama.cpp's GGUF names, and the file order puts them
//    with the attention;
//  - the q/k norms change the logits (a checkpoint whose gains are all 1 gives other logits), so the
//    naive double-precision reference (variants_test's TinyFamily "qwen3", support/naive_forward.h) is
//    really testing them;
//  - transformers' own logits for the same checkpoint (float64, computed once on the GPU machine from
//    these bytes: tests/data/qwen3/) match ours;
//  - every method runs end to end on it through the CLI: GPTQ and AWQ directories, a GGUF file, each
//    read back and evaluated; the GGUF at F32 computes the same logits as the checkpoint itself.
#include "formats/open.h"
#include "runtime/forward.h"
#include "support/logits.h"
#include "support/naive_forward.h"
#include "support/run.h"
#include "support/synthetic.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>

namespace quantllm {
namespace {

using json = nlohmann::json;

test::SyntheticSpec qwen3_spec() {
  test::SyntheticSpec s;
  s.family = test::Family::Qwen3;
  s.hidden = 64, s.heads = 4, s.kv_heads = 2, s.head_dim = 32, s.ffn = 96, s.layers = 2, s.tied = true;
  s.rope_theta = 1e6;
  s.dtype = "float32";
  s.seed = 316;
  return s;
}

std::vector<int32_t> tokens_of(int64_t n) {
  std::vector<int32_t> v;
  for (int64_t i = 0; i < n; ++i) v.push_back(int32_t((i * 7919 + 13) % 8000));
  return v;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::fabs(double(a[i]) - double(b[i])));
  return m;
}

class Qwen3 : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new test::TempDir;
    tensors_ = new test::TensorMap(test::random_tensors(qwen3_spec()));
    test::write_model(*tmp_ / "qwen3", qwen3_spec(), *tensors_);
    std::string text;
    for (int i = 0; i < 40; ++i) text += "The quick brown fox jumps over the lazy dog; it's 42 degrees. ";
    std::ofstream(*tmp_ / "text.txt") << text;
  }
  static void TearDownTestSuite() {
    delete tensors_;
    delete tmp_;
  }
  static std::filesystem::path dir() { return *tmp_ / "qwen3"; }
  static inline test::TempDir* tmp_ = nullptr;
  static inline test::TensorMap* tensors_ = nullptr;
};

TEST_F(Qwen3, BlockSpecHasPerHeadQkNorms) {
  const LoadedModel m = open_model(dir());
  EXPECT_EQ(m.config.arch->hf_architecture, "Qwen3ForCausalLM");
  EXPECT_EQ(m.config.head_dim, 32);
  EXPECT_EQ(m.config.q_dim(), 128);  // ≠ hidden 64
  const BlockSpec& b = m.config.block(1);
  ASSERT_EQ(b.sublayers.size(), 2u);
  const Sublayer& att = b.sublayers[0];
  ASSERT_GE(att.q_norm, 0);
  ASSERT_GE(att.k_norm, 0);
  EXPECT_EQ(b.norm_tensor(att.q_norm), "model.layers.1.self_attn.q_norm");
  EXPECT_EQ(b.norms[size_t(att.k_norm)].gguf, "attn_k_norm");
  EXPECT_EQ(b.norms[size_t(att.q_norm)].width, 32);
  const std::vector<std::string> order = b.file_order_names();
  const std::vector<std::string> want = {
      "model.layers.1.input_layernorm.weight",  "model.layers.1.self_attn.q_proj.weight",
      "model.layers.1.self_attn.k_proj.weight", "model.layers.1.self_attn.v_proj.weight",
      "model.layers.1.self_attn.q_norm.weight", "model.layers.1.self_attn.k_norm.weight",
      "model.layers.1.self_attn.o_proj.weight", "model.layers.1.post_attention_layernorm.weight",
      "model.layers.1.mlp.gate_proj.weight",    "model.layers.1.mlp.up_proj.weight",
      "model.layers.1.mlp.down_proj.weight"};
  EXPECT_EQ(order, want);
}

TEST_F(Qwen3, QkNormsChangeTheLogits) {
  const auto tokens = tokens_of(24);
  const auto ours = test::fp32_logits(dir(), tokens);
  auto flat = *tensors_;
  for (auto& [name, t] : flat)
    if (name.find("q_norm") != std::string::npos || name.find("k_norm") != std::string::npos)
      for (float& x : t.v) x = 1.0f;
  test::write_model(*tmp_ / "qwen3-unit-norms", qwen3_spec(), flat);
  EXPECT_GT(max_abs_diff(test::fp32_logits(*tmp_ / "qwen3-unit-norms", tokens), ours), 1e-2);
  // And the naive reference follows the gains too (it is what variants_test holds our logits to).
  const test::Rows ref = test::reference_logits(qwen3_spec(), *tensors_, tokens);
  double worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::fabs(double(ours[i]) - ref[i]));
  EXPECT_LE(worst, 1e-4);
}

// transformers' Qwen3ForCausalLM on this checkpoint, in float64 (tests/data/qwen3/README.md says how the
// file was made). Our fp32 pass may differ by fp32 rounding only: 1e-4 as in variants_test.
TEST_F(Qwen3, MatchesTransformers) {
  const auto path = std::filesystem::path(QUANTLLM_TEST_DATA) / "qwen3" / "transformers_logits.json";
  ASSERT_TRUE(std::filesystem::exists(path)) << path;
  const json j = json::parse(std::ifstream(path));
  const auto tokens = j["tokens"].get<std::vector<int32_t>>();
  const auto ours = test::fp32_logits(dir(), tokens);
  const int64_t vocab = j["vocab"].get<int64_t>();
  ASSERT_EQ(int64_t(ours.size()), int64_t(tokens.size()) * vocab);
  // The file keeps every position's top logits (id, value) and the full last row.
  double worst = 0;
  for (const auto& row : j["top"]) {
    const int64_t t = row["position"].get<int64_t>();
    for (const auto& e : row["logits"])
      worst = std::max(worst, std::fabs(double(ours[size_t(t * vocab + e[0].get<int64_t>())]) - e[1].get<double>()));
  }
  const auto last = j["last"].get<std::vector<double>>();
  for (int64_t v = 0; v < vocab; ++v)
    worst = std::max(worst, std::fabs(double(ours[size_t((int64_t(tokens.size()) - 1) * vocab + v)]) - last[size_t(v)]));
  EXPECT_LE(worst, 1e-4);
}

TEST_F(Qwen3, EveryMethodRunsEndToEnd) {
  const std::string m = dir().string(), text = (*tmp_ / "text.txt").string();
  const std::string calib = " --calib " + text + " --nsamples 4 --seqlen 64 --threads 2";
  struct Run {
    std::string name, args;
  };
  const std::vector<Run> runs = {
      {"gptq", "--method gptq --bits 4 --group-size 32 --act-order" + calib},
      {"awq", "--method awq --bits 4 --group-size 32" + calib},
      {"q4km.gguf", "--method gguf --type Q4_K_M --threads 2"},
      {"f32.gguf", "--method gguf --type F32 --threads 2"},
  };
  for (const Run& r : runs) {
    SCOPED_TRACE(r.name);
    const auto out = *tmp_ / r.name;
    const auto q = test::run_quantllm("quantize --model " + m + " --out " + out.string() + " " + r.args);
    ASSERT_EQ(q.status, 0) << q.err;
    const auto e = test::run_quantllm("eval ppl --model " + out.string() + " --data " + text +
                                      " --ctx 64 --max-windows 3 --threads 2 --json");
    ASSERT_EQ(e.status, 0) << e.err;
    const double ppl = json::parse(e.out)["ppl"].get<double>();
    EXPECT_TRUE(std::isfinite(ppl) && ppl > 1.0) << e.out;
  }
  // The F32 GGUF holds the same weights under llama.cpp's names (attn_q_norm …): the same logits.
  const auto tokens = tokens_of(24);
  EXPECT_LE(max_abs_diff(test::fp32_logits(*tmp_ / "f32.gguf", tokens), test::fp32_logits(dir(), tokens)), 1e-5);
}

}  // namespace
}  // namespace quantllm
