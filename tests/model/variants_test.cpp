// Architecture variants the reference models do not cover, on small random-weight checkpoints that
// tests/support/synthetic.h writes: Qwen2 (q/k/v biases, tied head, hidden 640, GQA 10:2, byte-level
// tokenizer with the Qwen2 split regex, transformers 4 and 5 configs), Llama (explicit head_dim,
// llama3 RoPE scaling, untied, attention_bias), Mistral (sliding window, f16, sharded), Qwen3 (per-head
// q/k norms, head_dim ≠ hidden / heads) and OPT (project_in/out, post-LN as facebook/opt-350m, and pre-LN).
//
// The strongest check is a naive reference forward (support/naive_forward.h) with plain loops in double precision,
// straight from the transformers modeling code, compared with our fp32 logits. The other checks are
// equivalences that must hold exactly or nearly (config layouts, tied vs copied head, GQA vs duplicated
// heads, KV-cache decoding vs the full pass), each paired with a perturbation showing it can fail.
#include "support/logits.h"
#include "support/run.h"
#include "formats/open.h"
#include "support/naive_forward.h"
#include "support/synthetic.h"

#include "model/weights.h"
#include "runtime/forward.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numbers>

namespace quantllm {
namespace {

using json = nlohmann::json;
using test::Family;
using test::reference_logits;
using test::Rows;
using test::SyntheticSpec;
using test::TensorMap;

// ---------------------------------------------------------------------------------------------
// Our side: open the directory as the CLI does and run the full forward pass.

std::vector<int32_t> random_tokens(int64_t n, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> id(0, int32_t(vocab - 1));
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = id(rng);
  return v;
}

double max_abs(const std::vector<float>& a) {
  double m = 0;
  for (float x : a) m = std::max(m, double(std::fabs(x)));
  return m;
}
double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::fabs(double(a[i]) - double(b[i])));
  return m;
}

std::filesystem::path write(const test::TempDir& tmp, const std::string& name, const SyntheticSpec& s,
                            const TensorMap& t, const std::optional<json>& config = std::nullopt) {
  const auto dir = tmp / name;
  test::write_model(dir, s, t, config);
  return dir;
}

// ---------------------------------------------------------------------------------------------
// The Qwen2 variant of the issue: hidden 640 (not a multiple of 256), 10 heads of 64, 2 KV heads,
// q/k/v biases, tied embeddings without an lm_head tensor, byte-level tokenizer with the Qwen2 regex.

SyntheticSpec qwen2_640(test::ConfigLayout layout) {
  SyntheticSpec s;
  s.family = Family::Qwen2;
  s.hidden = 640;
  s.heads = 10;
  s.kv_heads = 2;
  s.ffn = 896;
  s.layers = 2;
  s.tied = true;
  s.rope_theta = 1000000.0;  // Qwen2's; a layout that lost it would fall back to 10000 and differ
  s.layout = layout;
  s.seed = 640;
  return s;
}

class Qwen2Variant : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new test::TempDir;
    spec_ = qwen2_640(test::ConfigLayout::Transformers5);
    tensors_ = new TensorMap(test::random_tensors(spec_));
    dir5_ = write(*tmp_, "qwen2-tf5", spec_, *tensors_);
    auto s4 = spec_;
    s4.layout = test::ConfigLayout::Transformers4;
    dir4_ = write(*tmp_, "qwen2-tf4", s4, *tensors_);
    tokens_ = random_tokens(24, 4099, 7);
    logits_ = test::fp32_logits(dir5_, tokens_);
  }
  static void TearDownTestSuite() {
    delete tensors_;
    delete tmp_;
  }
  static inline test::TempDir* tmp_ = nullptr;
  static inline SyntheticSpec spec_;
  static inline TensorMap* tensors_ = nullptr;
  static inline std::filesystem::path dir4_, dir5_;
  static inline std::vector<int32_t> tokens_;
  static inline std::vector<float> logits_;
};

TEST_F(Qwen2Variant, OpensWithTheRightHyperparametersAndTokenizer) {
  for (const auto& dir : {dir4_, dir5_}) {
    SCOPED_TRACE(dir.string());
    const LoadedModel m = open_model(dir);
    const ModelConfig& c = m.config;
    EXPECT_EQ(c.arch->hf_architecture, "Qwen2ForCausalLM");
    EXPECT_EQ(c.hidden, 640);
    EXPECT_EQ(c.n_heads, 10);
    EXPECT_EQ(c.n_kv_heads, 2);
    EXPECT_EQ(c.head_dim, 64);
    EXPECT_EQ(c.vocab, 4224);
    EXPECT_TRUE(c.qkv_bias);
    EXPECT_FALSE(c.o_bias);
    EXPECT_TRUE(c.tied_embeddings);
    EXPECT_EQ(c.sliding_window, 0);  // use_sliding_window: false
    EXPECT_EQ(c.rope_theta, 1e6);
    EXPECT_EQ(c.dtype, DType::BF16);
    EXPECT_EQ(m.tokenizer->kind(), TokenizerKind::ByteLevelBPE);
    EXPECT_EQ(m.tokenizer->vocab_size(), 4099);
    EXPECT_FALSE(m.tokenizer->adds_bos());
    // The chat tokens are matched whole before the regex; the Qwen2 regex splits digits one by one.
    const auto ids = m.tokenizer->encode("<|im_start|>user 2024<|im_end|>");
    ASSERT_GE(ids.size(), 7u);
    EXPECT_EQ(ids.front(), 4097);
    EXPECT_EQ(ids.back(), 4098);
    EXPECT_EQ(m.tokenizer->decode(ids), "<|im_start|>user 2024<|im_end|>");
    EXPECT_EQ(m.tokenizer->encode("2024").size(), 4u);
  }
}

TEST_F(Qwen2Variant, EvalPplRunsThroughTheCli) {
  std::string text;
  for (int i = 0; i < 12; ++i)
    text += "It's the café's 12th naïve attempt; they'll re-run it in 2024, won't they?\r\n"
            "Ünïcödé words and   spaces\tand tabs — all bytes.\n\n";
  std::ofstream(*tmp_ / "data.txt") << text;
  for (const auto& dir : {dir4_, dir5_}) {
    const auto r = test::run_quantllm("eval ppl --model " + dir.string() + " --data " + (*tmp_ / "data.txt").string() +
                                      " --ctx 64 --max-windows 3 --threads 2 --json");
    ASSERT_EQ(r.status, 0) << r.err;
    const auto j = json::parse(r.out);
    EXPECT_TRUE(std::isfinite(j["ppl"].get<double>())) << r.out;
    EXPECT_GT(j["ppl"].get<double>(), 1.0);
    EXPECT_EQ(j["windows"].get<int>(), 3);
    EXPECT_EQ(j["tokens_scored"].get<int>(), 3 * 63);
  }
}

TEST_F(Qwen2Variant, Transformers4And5ConfigsGiveBitIdenticalLogits) {
  EXPECT_EQ(test::fp32_logits(dir4_, tokens_), logits_);
  // The comparison can fail: the default rope_theta (what a layout parsed wrongly would give) differs.
  auto s = spec_;
  s.rope_theta = 10000.0;
  const auto other = test::fp32_logits(write(*tmp_, "qwen2-theta", s, *tensors_), tokens_);
  EXPECT_GT(max_abs_diff(other, logits_), 1e-3);
}

TEST_F(Qwen2Variant, TiedHeadEqualsUntiedHeadHoldingACopyOfTheEmbedding) {
  auto s = spec_;
  s.tied = false;
  auto t = *tensors_;
  t["lm_head.weight"] = t.at("model.embed_tokens.weight");
  EXPECT_EQ(test::fp32_logits(write(*tmp_, "qwen2-untied", s, t), tokens_), logits_);
  // A config that says untied but has no lm_head tensor is tied in practice (resolve_tied_head).
  auto cfg = test::config_json(spec_);
  cfg["tie_word_embeddings"] = false;
  EXPECT_EQ(test::fp32_logits(write(*tmp_, "qwen2-untied-flag", spec_, *tensors_, cfg), tokens_), logits_);
  // And a different head gives different logits.
  for (float& x : t["lm_head.weight"].v) x = -x;
  EXPECT_GT(max_abs_diff(test::fp32_logits(write(*tmp_, "qwen2-negated-head", s, t), tokens_), logits_), 1e-3);
}

// Rewrites k/v projections so every query head has its own copy of its KV head: full multi-head
// attention that must compute what GQA computes.
TensorMap duplicate_kv_heads(const SyntheticSpec& s, const TensorMap& t) {
  TensorMap out = t;
  const int64_t group = s.heads / s.kv_heads, dh = s.dh();
  for (int64_t l = 0; l < s.layers; ++l)
    for (const char* proj : {"k_proj", "v_proj"})
      for (const char* kind : {".weight", ".bias"}) {
        const std::string name = "model.layers." + std::to_string(l) + ".self_attn." + proj + kind;
        if (!t.count(name)) continue;
        const auto& src = t.at(name);
        const int64_t cols = src.shape.size() == 2 ? src.shape[1] : 1;
        test::HostTensor dst;
        dst.shape = src.shape;
        dst.shape[0] = s.heads * dh;
        for (int64_t h = 0; h < s.heads; ++h) {
          const auto first = src.v.begin() + (h / group) * dh * cols;
          dst.v.insert(dst.v.end(), first, first + dh * cols);
        }
        out[name] = dst;
      }
  return out;
}

TEST_F(Qwen2Variant, GqaEqualsMultiHeadAttentionWithDuplicatedKvHeads) {
  auto s = spec_;
  s.kv_heads = s.heads;
  const auto mha = test::fp32_logits(write(*tmp_, "qwen2-mha", s, duplicate_kv_heads(spec_, *tensors_)), tokens_);
  // Same products in the same order; only BLAS blocking of the wider k/v projections may differ.
  EXPECT_LE(max_abs_diff(mha, logits_), 1e-5 * max_abs(logits_));
  // Sharing the wrong KV head (h % kv instead of h / group) must show.
  auto wrong = duplicate_kv_heads(spec_, *tensors_);
  for (int64_t l = 0; l < s.layers; ++l) {
    auto& k = wrong["model.layers." + std::to_string(l) + ".self_attn.k_proj.weight"];
    std::rotate(k.v.begin(), k.v.begin() + s.dh() * s.hidden, k.v.end());  // head h now holds head h+1's keys
  }
  EXPECT_GT(max_abs_diff(test::fp32_logits(write(*tmp_, "qwen2-mha-wrong", s, wrong), tokens_), logits_), 1e-3);
}

TEST_F(Qwen2Variant, AttentionBiasesAreUsed) {
  for (const char* proj : {"q_proj", "v_proj"}) {
    SCOPED_TRACE(proj);
    auto t = *tensors_;
    for (int64_t l = 0; l < spec_.layers; ++l)
      for (float& x : t["model.layers." + std::to_string(l) + ".self_attn." + proj + ".bias"].v) x = 0;
    EXPECT_GT(max_abs_diff(test::fp32_logits(write(*tmp_, std::string("qwen2-nobias-") + proj, spec_, t), tokens_), logits_),
              1e-3);
  }
}

TEST_F(Qwen2Variant, IncrementalDecodingMatchesFullForward) {
  const FullModel fm(open_model(dir5_));
  KVCache cache(fm.config(), int64_t(tokens_.size()));
  const int64_t V = fm.config().vocab;
  for (size_t t = 0; t < tokens_.size(); ++t) {
    const auto step = fm.step({tokens_[t]}, cache);
    const std::vector<float> full(logits_.begin() + int64_t(t) * V, logits_.begin() + int64_t(t + 1) * V);
    EXPECT_LE(max_abs_diff(step, full), 1e-4) << "position " << t;
  }
}

// ---------------------------------------------------------------------------------------------
// One tiny configuration per family against the naive reference, plus KV-cache decoding and the CLI.

struct TinyCase {
  const char* name;
  SyntheticSpec spec;
  int64_t tokens;
};

void PrintTo(const TinyCase& c, std::ostream* os) { *os << c.name; }

std::vector<TinyCase> tiny_cases() {
  std::vector<TinyCase> v;
  {
    SyntheticSpec s;  // Qwen2: tied, GQA 4:2, q/k/v biases, transformers 4 config
    s.family = Family::Qwen2;
    s.hidden = 64, s.heads = 4, s.kv_heads = 2, s.ffn = 96, s.tied = true, s.rope_theta = 1e6;
    s.layout = test::ConfigLayout::Transformers4;
    s.seed = 11;
    v.push_back({"qwen2", s, 24});
  }
  {
    SyntheticSpec s;  // Llama: head_dim 24 with 4 heads on hidden 64 (q width 96), llama3 RoPE, biases
    s.family = Family::Llama;
    s.hidden = 64, s.heads = 4, s.kv_heads = 2, s.head_dim = 24, s.ffn = 96, s.qkv_bias = true;
    // head_dim 24, theta 10000, original context 64: wavelengths 6.3, 13.6, 29, 63, 136, ... cover the
    // kept (< 16), interpolated (16..64) and divided (> 64) bands.
    s.llama3 = test::Llama3Rope{8.0, 1.0, 4.0, 64};
    s.dtype = "float32";
    s.seed = 12;
    v.push_back({"llama3", s, 40});
  }
  {
    SyntheticSpec s;  // Mistral: sliding window 8 over 32 tokens, f16, three shards
    s.family = Family::Mistral;
    s.hidden = 64, s.heads = 4, s.kv_heads = 1, s.ffn = 96, s.sliding_window = 8;
    s.dtype = "float16";
    s.shards = 3;
    s.seed = 13;
    v.push_back({"mistral", s, 32});
  }
  {
    SyntheticSpec s;  // Qwen3: per-head q/k RMSNorm before RoPE; head_dim 32 with 4 heads on hidden 64 (q width
                      // 128, as Qwen3's head_dim 128 ≠ hidden / heads), GQA 4:2, tied head
    s.family = Family::Qwen3;
    s.hidden = 64, s.heads = 4, s.kv_heads = 2, s.head_dim = 32, s.ffn = 96, s.tied = true, s.rope_theta = 1e6;
    s.seed = 16;
    v.push_back({"qwen3", s, 32});
  }
  {
    SyntheticSpec s;  // Gemma 3: q/k norms, sandwich norms, layers sliding (window 8), sliding, global with RoPE
                      // bases 1e4 / 1e6, query_pre_attn_scalar 24 ≠ head_dim 32, GQA 4:1, transformers 5 config
    s.family = Family::Gemma3;
    s.hidden = 64, s.heads = 4, s.kv_heads = 1, s.head_dim = 32, s.ffn = 96, s.layers = 3;
    s.sliding_window = 8, s.sliding_layers = {true, true, false};
    s.rope_theta = 1e6, s.rope_theta_sliding = 1e4, s.query_pre_attn_scalar = 24;
    s.seed = 17;
    v.push_back({"gemma3", s, 32});
  }
  {
    SyntheticSpec s;  // Gemma 2: attention and final soft-capping small enough to bite, layers 0 and 2 windowed
    s.family = Family::Gemma2;
    s.hidden = 64, s.heads = 4, s.kv_heads = 2, s.head_dim = 16, s.ffn = 96, s.layers = 3;
    s.sliding_window = 6, s.query_pre_attn_scalar = 32, s.attn_softcap = 1.5, s.final_softcap = 2.0;
    s.layout = test::ConfigLayout::Transformers4;
    s.seed = 18;
    v.push_back({"gemma2", s, 28});
  }
  {
    SyntheticSpec s;  // Qwen3-MoE: layer 0 dense (mlp_only_layers), layers 1-2 with 6 experts top-2 renormalized,
                      // q/k norms, head_dim 32 ≠ hidden / heads; the Hub's num_experts (transformers 4 config)
    s.family = Family::Qwen3Moe;
    s.hidden = 64, s.heads = 4, s.kv_heads = 2, s.head_dim = 32, s.ffn = 96, s.layers = 3, s.tied = true;
    s.experts = 6, s.experts_used = 2, s.moe_ffn = 32, s.dense_layers = {0}, s.rope_theta = 1e6;
    s.layout = test::ConfigLayout::Transformers4;
    s.seed = 19;
    v.push_back({"qwen3moe", s, 24});
  }
  {
    SyntheticSpec s;  // Qwen3-MoE without renormalizing the top-k weights (norm_topk_prob false), top-3 of 4
    s.family = Family::Qwen3Moe;
    s.hidden = 64, s.heads = 4, s.kv_heads = 4, s.ffn = 96, s.layers = 2;
    s.experts = 4, s.experts_used = 3, s.moe_ffn = 48, s.norm_topk = false;
    s.seed = 20;
    v.push_back({"qwen3moe_unnormalized", s, 20});
  }
  {
    SyntheticSpec s;  // Mixtral: block_sparse_moe, experts w1/w3/w2 of intermediate_size, every layer MoE
    s.family = Family::Mixtral;
    s.hidden = 64, s.heads = 4, s.kv_heads = 2, s.ffn = 64, s.layers = 2;
    s.experts = 4, s.experts_used = 2;
    s.seed = 21;
    v.push_back({"mixtral", s, 20});
  }
  {
    SyntheticSpec s;  // Phi-3 / Phi-4-mini: fused qkv_proj and gate_up_proj, partial rotary (0.75 of each head),
                      // GQA 4:2, a sliding window of 12, vocabulary padded past the tokenizer (8064 > 8000)
    s.family = Family::Phi3;
    s.hidden = 64, s.heads = 4, s.kv_heads = 2, s.ffn = 96, s.layers = 2, s.vocab = 8064;
    s.partial_rotary_factor = 0.75, s.sliding_window = 12;
    s.seed = 22;
    v.push_back({"phi3", s, 28});
    // Phi-4-mini's longrope: the short factors (contexts within the original 64 of max 256) divide the 12
    // rotated dims' 6 frequencies; cos and sin × √(1 + ln 4 / ln 64).
    s.max_positions = 256, s.longrope_original = 64, s.seed = 23;
    for (int i = 0; i < 6; ++i) s.longrope_short.push_back(1.0 + 0.25 * i), s.longrope_long.push_back(2.0 + i);
    v.push_back({"phi3_longrope", s, 28});
  }
  {
    SyntheticSpec s;  // OPT-350m shape: post-LN, no final LayerNorm, project_in/out 32 <-> 64, untied
    s.family = Family::Opt;
    s.hidden = 64, s.heads = 4, s.ffn = 128, s.word_embed_proj_dim = 32, s.norm_before = false;
    s.seed = 14;
    v.push_back({"opt_post_ln", s, 24});
  }
  {
    SyntheticSpec s;  // OPT pre-LN with project_in/out and the tied head
    s.family = Family::Opt;
    s.hidden = 64, s.heads = 4, s.ffn = 128, s.word_embed_proj_dim = 48, s.tied = true;
    s.shards = 2;
    s.seed = 15;
    v.push_back({"opt_pre_ln", s, 24});
  }
  return v;
}

class TinyFamily : public ::testing::TestWithParam<TinyCase> {};

TEST_P(TinyFamily, LogitsMatchNaiveDoubleReference) {
  const auto& c = GetParam();
  test::TempDir tmp;
  const auto t = test::random_tensors(c.spec);
  const auto dir = write(tmp, "m", c.spec, t);
  const auto tokens = random_tokens(c.tokens, c.spec.tokenizer_size(), 99);
  const auto ours = test::fp32_logits(dir, tokens);
  const Rows ref = reference_logits(c.spec, t, tokens);
  ASSERT_EQ(ours.size(), ref.size());
  // Bound: fp32 dot products of length <= 128 carry relative errors of a few 1e-7 (u = 6e-8 times a
  // random-walk growth); two blocks of norms and residual adds keep that at ~1e-6 of logits of a few
  // units. 1e-4 leaves a wide margin while any wrong formula (RoPE band, window, bias, LN order) moves
  // logits by 1e-2 or more.
  double worst = 0, scale = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    worst = std::max(worst, std::fabs(double(ours[i]) - ref[i]));
    scale = std::max(scale, std::fabs(ref[i]));
  }
  EXPECT_LE(worst, 1e-4) << "max |logit| " << scale;
  EXPECT_GT(scale, 0.5);  // logits are not trivially near zero
}

TEST_P(TinyFamily, IncrementalDecodingMatchesFullForward) {
  const auto& c = GetParam();
  test::TempDir tmp;
  const auto dir = write(tmp, "m", c.spec, test::random_tensors(c.spec));
  const auto tokens = random_tokens(c.tokens, c.spec.tokenizer_size(), 5);
  const auto full = test::fp32_logits(dir, tokens);
  const FullModel fm(open_model(dir));
  const int64_t V = fm.config().vocab;
  KVCache cache(fm.config(), c.tokens);
  // The first three tokens as one chunk, the rest one by one: both step paths.
  auto last = fm.step({tokens.begin(), tokens.begin() + 3}, cache);
  for (size_t t = 3; t <= tokens.size(); ++t) {
    const std::vector<float> want(full.begin() + int64_t(t - 1) * V, full.begin() + int64_t(t) * V);
    EXPECT_LE(max_abs_diff(last, want), 1e-4) << "position " << t - 1;
    if (t < tokens.size()) last = fm.step({tokens[t]}, cache);
  }
}

TEST_P(TinyFamily, EvalPplRunsThroughTheCli) {
  const auto& c = GetParam();
  test::TempDir tmp;
  const auto dir = write(tmp, "m", c.spec, test::random_tensors(c.spec));
  std::string text;
  for (int i = 0; i < 20; ++i) text += "The quick brown fox jumps over the lazy dog; it's 42 degrees.\n";
  std::ofstream(tmp / "data.txt") << text;
  const auto r = test::run_quantllm("eval ppl --model " + dir.string() + " --data " + (tmp / "data.txt").string() +
                                    " --ctx 32 --max-windows 2 --threads 2 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const double ppl = json::parse(r.out)["ppl"].get<double>();
  EXPECT_TRUE(std::isfinite(ppl) && ppl > 1.0) << r.out;
}

INSTANTIATE_TEST_SUITE_P(Families, TinyFamily, ::testing::ValuesIn(tiny_cases()),
                         [](const auto& info) { return std::string(info.param.name); });

// The reference's llama3 formula against values worked out by hand (head_dim 8, theta 10000,
// original context 64, factor 8, low 1, high 4: wavelength bounds 16 and 64).
TEST(Llama3Rope, ReferenceInverseFrequenciesMatchHandComputedValues) {
  SyntheticSpec s;
  s.hidden = 8, s.heads = 1;
  s.llama3 = test::Llama3Rope{8.0, 1.0, 4.0, 64};
  const auto f = ref_inv_freq(s);
  ASSERT_EQ(f.size(), 4u);
  // i=0: 1, wavelength 2π < 16: kept.
  EXPECT_DOUBLE_EQ(f[0], 1.0);
  // i=1: 10000^(-1/4) = 0.1, wavelength 62.83 in [16, 64]: smooth = (64/62.83 - 1)/3 = 0.0061972,
  // f = 0.1 * ((1 - smooth)/8 + smooth) = 0.0130423.
  EXPECT_NEAR(f[1], 0.1 * ((1 - (64 / (20 * std::numbers::pi) - 1) / 3) / 8 + (64 / (20 * std::numbers::pi) - 1) / 3),
              1e-15);
  EXPECT_NEAR(f[1], 0.0130423, 1e-7);
  // i=2, 3: wavelengths 628 and 6283 > 64: divided by 8.
  EXPECT_NEAR(f[2], 0.01 / 8, 1e-15);
  EXPECT_NEAR(f[3], 0.001 / 8, 1e-15);
}

TEST(Llama3Rope, ScalingChangesTheLogitsAndReadsTheSameInBothLayouts) {
  // Guards the reference comparison above: on the tiny Llama case the llama3 bands matter.
  auto c = tiny_cases()[1];
  test::TempDir tmp;
  const auto t = test::random_tensors(c.spec);
  const auto tokens = random_tokens(c.tokens, c.spec.tokenizer_size(), 99);
  const auto scaled = test::fp32_logits(write(tmp, "scaled", c.spec, t), tokens);
  // transformers 4 writes the same scaling as top-level rope_theta + rope_scaling: same logits, bit for bit.
  auto tf4 = c.spec;
  tf4.layout = test::ConfigLayout::Transformers4;
  EXPECT_EQ(test::fp32_logits(write(tmp, "scaled-tf4", tf4, t), tokens), scaled);
  c.spec.llama3.reset();
  EXPECT_GT(max_abs_diff(test::fp32_logits(write(tmp, "plain", c.spec, t), tokens), scaled), 1e-3);
}

TEST(SlidingWindow, WindowChangesTheLogits) {
  auto c = tiny_cases()[2];
  test::TempDir tmp;
  const auto t = test::random_tensors(c.spec);
  const auto tokens = random_tokens(c.tokens, c.spec.tokenizer_size(), 99);
  const auto windowed = test::fp32_logits(write(tmp, "w", c.spec, t), tokens);
  c.spec.sliding_window = 0;
  const auto full = test::fp32_logits(write(tmp, "full", c.spec, t), tokens);
  const int64_t V = c.spec.vocab_size();
  // Positions inside the first window see the same keys; later ones must differ.
  EXPECT_EQ(std::vector<float>(windowed.begin(), windowed.begin() + 8 * V),
            std::vector<float>(full.begin(), full.begin() + 8 * V));
  EXPECT_GT(max_abs_diff(windowed, full), 1e-3);
}

}  // namespace
}  // namespace quantllm
