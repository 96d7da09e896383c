// Every command on every 2026 family (support/synthetic.h random-weight checkpoints: Gemma 2, Gemma 3,
// Qwen3-MoE, Mixtral, Phi-3): GPTQ, AWQ and RTN directories and Q4_K_M / F32 GGUF files are written, read back
// and evaluated (finite perplexity), the F32 GGUF computes the checkpoint's logits (llama.cpp's names and
// conventions — Gemma's 1 + w norms, stacked experts, fused projections — undone exactly on reading), and
// greedy generation runs on the quantized result. The forward passes themselves are held to naive double
// references in variants_test.cpp and to llama.cpp in tests/interop.
#include "formats/open.h"
#include "runtime/forward.h"
#include "support/logits.h"
#include "support/run.h"
#include "support/synthetic.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>

namespace quantllm {
namespace {

using json = nlohmann::json;
using test::Family;

struct Case {
  const char* name;
  test::SyntheticSpec spec;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

std::vector<Case> cases() {
  std::vector<Case> v;
  test::SyntheticSpec base;
  base.hidden = 64, base.heads = 4, base.kv_heads = 2, base.ffn = 96, base.layers = 2, base.dtype = "float32";
  {
    auto s = base;
    s.family = Family::Gemma2, s.head_dim = 16, s.sliding_window = 8, s.attn_softcap = 20, s.final_softcap = 15;
    v.push_back({"gemma2", s});
  }
  {
    auto s = base;
    s.family = Family::Gemma3, s.head_dim = 32, s.sliding_window = 8, s.sliding_layers = {true, false};
    v.push_back({"gemma3", s});
  }
  {
    auto s = base;
    s.family = Family::Qwen3Moe, s.head_dim = 32, s.experts = 4, s.experts_used = 2, s.moe_ffn = 32, s.tied = true;
    s.dense_layers = {0};
    v.push_back({"qwen3moe", s});
  }
  {
    auto s = base;
    s.family = Family::Mixtral, s.experts = 4, s.experts_used = 2;
    v.push_back({"mixtral", s});
  }
  {
    auto s = base;
    s.family = Family::Phi3, s.partial_rotary_factor = 0.75, s.vocab = 8064;
    v.push_back({"phi3", s});
  }
  return v;
}

class Arch2026 : public ::testing::TestWithParam<Case> {};

TEST_P(Arch2026, EveryCommandRunsEndToEnd) {
  const Case& c = GetParam();
  test::TempDir tmp;
  test::write_model(tmp / "m", c.spec, test::random_tensors(c.spec));
  std::string t;
  for (int i = 0; i < 40; ++i) t += "The quick brown fox jumps over the lazy dog; it's 42 degrees. ";
  std::ofstream(tmp / "text.txt") << t;
  const std::string m = (tmp / "m").string(), text = (tmp / "text.txt").string();
  const std::string calib = " --calib " + text + " --nsamples 4 --seqlen 64 --threads 2 --moe-min-tokens 8";
  const std::vector<std::pair<std::string, std::string>> runs = {
      {"rtn", "--method rtn --bits 4 --group-size 32"},
      {"gptq", "--method gptq --bits 4 --group-size 32 --act-order" + calib},
      {"awq", "--method awq --bits 4 --group-size 32" + calib},
      {"q4km.gguf", "--method gguf --type Q4_K_M --threads 2"},
      {"f32.gguf", "--method gguf --type F32 --threads 2"},
  };
  for (const auto& [name, args] : runs) {
    SCOPED_TRACE(name);
    const auto out = tmp / name;
    const auto q = test::run_quantllm("quantize --model " + m + " --out " + out.string() + " " + args);
    ASSERT_EQ(q.status, 0) << q.err;
    const auto e = test::run_quantllm("eval ppl --model " + out.string() + " --data " + text +
                                      " --ctx 64 --max-windows 3 --threads 2 --json");
    ASSERT_EQ(e.status, 0) << e.err;
    const double ppl = json::parse(e.out)["ppl"].get<double>();
    EXPECT_TRUE(std::isfinite(ppl) && ppl > 1.0) << e.out;
  }
  const auto g = test::run_quantllm("generate --model " + (tmp / "gptq").string() + " -p 'The quick' -n 8 --json");
  ASSERT_EQ(g.status, 0) << g.err;
  EXPECT_EQ(json::parse(g.out)["tokens"].size(), 8u);
  std::vector<int32_t> tokens;
  for (int64_t i = 0; i < 24; ++i) tokens.push_back(int32_t((i * 7919 + 13) % 8000));
  const auto a = test::fp32_logits(tmp / "f32.gguf", tokens), b = test::fp32_logits(tmp / "m", tokens);
  ASSERT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(double(a[i]) - double(b[i])));
  EXPECT_LE(worst, 1e-5);  // F32 in the file: only the Gemma gains' 1 + w − 1 may round (not at these values)
}

INSTANTIATE_TEST_SUITE_P(Families, Arch2026, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace quantllm
