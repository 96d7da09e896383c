// Interoperability with llama.cpp itself: the GGUF files we write for gutenberg-llama-33m (F32, and the
// Q8_0, Q6_K, Q4_K_M, Q2_K mixes, Q4_K_M, Q3_K_M and Q2_K with gguf --gptq, the lattice mixes IQ3_XXS, IQ2_S,
// IQ1_S, IQ1_M with a short imatrix — together every IQ1/IQ2/IQ3 type — and the ternary TQ1_0, TQ2_0) and
// gutenberg-gemma3-16m (F32, Q8_0, Q4_K_M, and Q4_K_M, Q3_K_M, Q2_K with --gptq) are loaded by llama.cpp (node-llama-cpp's prebuilt CPU build, driven
// by llama_logits.mjs), which must tokenize text exactly as we do and give next-token log-probabilities
// over a 128-token text that agree with our engine's on the same file.
//
// Why the two engines differ at all, and by how much they may
// ------------------------------------------------------------
// Both read the same quantized weights and dequantize them to the same floats (our dequantizers are
// byte-exact with ggml's). Attention runs in F32 on both sides (llama.cpp with an F32 KV cache and no
// flash attention). On the F32 file the two agree to ~1e-5 in log-prob, the size of fp32 summation-order
// differences: metadata, tensor names, the q/k permutation, RoPE and norms all match. What remains on
// quantized files is one deliberate approximation of llama.cpp's CPU backend: a matrix product with a
// quantized weight first rounds its activations to 8 bits, in blocks of the weight's vec_dot_type:
//   Q8_0 weights: Q8_0 blocks of 32 values, d = fp16(amax/127), x̃ = round(x·127/amax)·d;
//   K-quant weights: Q8_K blocks of 256 values, d = max/−127 (fp32), x̃ = round(x/d)·d;
// then multiplies integers exactly. Our engine multiplies fp32 activations (BLAS sgemm).
//
// Analytic order of magnitude: rounding x to a step d leaves an error uniform in ±d/2 (std d/√12) per
// element, independent between elements, so an output y = w·x moves by ~(d/√12)·‖w‖. With d = amax/127
// and a block's amax a few (~3) standard deviations of x, each linear layer adds relative noise of
// ~0.7% of a typical output. 57 such layers (7 per block × 8 + the head) feed the residual stream; with
// logits spread over several units that predicts log-prob differences around 1e-2, the worst of 127
// positions several times more. How the noise grows or cancels through RMSNorm, attention and SiLU is
// too rough to estimate by hand, so the bound is derived by simulating it:
//
// `RecomposedModel` runs our own forward pass from the same file, once plain (checked against
// FullModel) and once with every linear layer's input rounded exactly as llama.cpp's CPU backend rounds
// it (Q8_0 or Q8_K, chosen per tensor from its type in the file). The rounding noise is chaotic: a
// value moved by one ulp across a rounding boundary changes the next layer's inputs by far more than an
// ulp, which flips more roundings, and after a few layers the noise is a fresh draw. (Measured: jittering
// the inputs of the roundings by ±1 ulp changes the simulated log-probs by ~1e-2, as much as the rounding
// itself, while the same jitter without rounding changes them by < 1e-5.) llama.cpp's fp32 arithmetic
// differs from ours at the ulp level, so it cannot reproduce any one simulated realization; its
// difference from us is another draw of the same noise. The test therefore draws kRealizations = 8
// realizations (ulp jitter with different seeds before each rounding), takes the largest max |Δ| and
// mean |Δ| over them, and bounds llama.cpp's by
//     tolerance = kMargin · worst simulated + kFloor,   kMargin = 1.5, kFloor = 1e-3,
// where 1.5 covers the spread of a maximum over 127 positions between draws (the eight draws' maxima
// range over a factor of up to 2, Q6_K: 0.11–0.21, so a ninth draw beyond 1.5× the worst of eight is
// unlikely; the means vary by only ±15%), and the floor covers fp32 differences (100× those measured
// on the F32 file).
// Measured (docs/benchmarks-llama-cpp.md): llama.cpp's max and mean |Δ| fall inside the range of the
// eight simulated draws for every type (e.g. Q4_K_M: llama.cpp 0.098 / 0.025, draws 0.098–0.181 /
// 0.021–0.027), so 8-bit activations explain the whole difference; a real defect (a wrong RoPE, a
// permuted head, a wrong scale, a wrong norm epsilon) moves log-probs by 0.1 to 10 and on every position.
// The argmax (greedy next token) must agree wherever our top two logits are further apart than the
// tolerance; near-ties may go either way, but no more than two positions of 128.
// Gemma 3 adds one more approximation of llama.cpp's: its GELU reads an fp16 table (GGML_GELU_FP16), which
// the simulation models as an fp16 rounding of the feed-forward mid (measured: the simulated max / mean
// |Δ| on the F32 file, 0.0010 / 0.0001, is what llama.cpp shows, 0.0013 / 0.0002; without it, 0).
//
// llama.cpp comes from scripts/install-llama-cpp.sh (scripts/test.sh runs it before ctest). If it is
// missing the test fails, naming the script; QUANTLLM_SKIP_LLAMA_CPP=1 skips it for offline work.
#include "formats/gguf_model.h"
#include "formats/open.h"
#include "model/weights.h"
#include "runtime/cpu/ops.h"
#include "runtime/forward.h"
#include "core/dtype.h"
#include "support/reference.h"
#include "support/run.h"
#include "support/synthetic.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <span>
#include <string>
#include <tuple>
#include <vector>

namespace quantllm {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::TempDir;

constexpr const char* kModel = "gutenberg-llama-33m";
constexpr int64_t kTokens = 128;
// See the header: realizations of the simulated rounding noise, the margin on the worst of them, and
// the floor that covers plain fp32 differences.
constexpr unsigned kRealizations = 8;
constexpr double kMargin = 1.5;
constexpr double kFloor = 1e-3;

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

// Where scripts/install-llama-cpp.sh put node-llama-cpp (the same rule as the script).
fs::path llama_cpp_dir() {
  if (const char* dir = std::getenv("QUANTLLM_LLAMA_CPP_DIR"); dir && *dir) return dir;
  const std::string cache_home = env_or("XDG_CACHE_HOME", env_or("HOME", "/root") + "/.cache");
  return fs::path(env_or("QUANTLLM_CACHE", cache_home + "/quantllm")) / "node-llama-cpp";
}

std::string quoted(const fs::path& p) { return "'" + p.string() + "'"; }

// The first `chars` code points of a file (Python's text[:chars], as reference.json counts).
std::string first_code_points(const fs::path& path, size_t chars) {
  const std::string text = test::read_all(path);
  size_t pos = 0;
  for (size_t n = 0; n < chars && pos < text.size(); ++n) {
    ++pos;
    while (pos < text.size() && (uint8_t(text[pos]) & 0xC0) == 0x80) ++pos;
  }
  return text.substr(0, pos);
}

// log-softmax of a row of logits, in double.
std::vector<double> log_softmax(const float* logits, int64_t vocab) {
  double mx = logits[0];
  for (int64_t i = 1; i < vocab; ++i) mx = std::max(mx, double(logits[i]));
  double sum = 0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(double(logits[i]) - mx);
  const double lse = mx + std::log(sum);
  std::vector<double> out(static_cast<size_t>(vocab));
  for (int64_t i = 0; i < vocab; ++i) out[size_t(i)] = double(logits[i]) - lse;
  return out;
}

int64_t argmax(const float* v, int64_t n) { return std::max_element(v, v + n) - v; }

// ---- our engine, plain and with llama.cpp's activation rounding ----------------------------------

// How llama.cpp's CPU backend rounds the activations that meet a weight of a given type.
enum class ActRounding { None, F16, Q8_0, Q8_K };

ActRounding act_rounding_for(const std::string& weight_type) {
  if (weight_type == "F32") return ActRounding::None;
  if (weight_type == "F16") return ActRounding::F16;
  // Q4_1/Q5_1 pair with Q8_1, whose values round exactly like Q8_0's (it only adds a block sum).
  for (const char* t : {"Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "IQ4_NL"})
    if (weight_type == t) return ActRounding::Q8_0;
  if (weight_type == "MXFP4") return ActRounding::Q8_0;
  for (const char* t : {"Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_XS", "IQ3_S", "IQ3_XXS", "IQ2_S", "IQ2_XS",
                        "IQ2_XXS", "IQ1_M", "IQ1_S", "TQ1_0", "TQ2_0"})
    if (weight_type == t) return ActRounding::Q8_K;
  ADD_FAILURE() << "no activation rounding known for weight type " << weight_type;
  return ActRounding::None;
}

// Rounds every row of x ([rows, width]) the way ggml quantizes a row of activations before a dot product
// with quantized weights (quantize_row_q8_0 on x86: multiply by 127/amax, round to nearest even, scale
// stored as fp16; quantize_row_q8_K_ref: scale −127/max of the signed extreme, clamp at 127).
// With `jitter`, each value is first moved by at most one ulp (x·(1 + u·2⁻²³), u ∈ {−1, 0, 1}):
// the size of the differences between two fp32 implementations of the same pass (summation order).
void round_activations(std::span<float> x, ActRounding r, std::mt19937* jitter) {
  if (r == ActRounding::None) return;
  if (jitter) {
    std::uniform_int_distribution<int> u(-1, 1);
    for (float& v : x) v *= 1.f + float(u(*jitter)) * 0x1p-23f;
  }
  if (r == ActRounding::F16) {
    for (float& v : x) v = f16_to_f32(f32_to_f16(v));
    return;
  }
  const int64_t block = r == ActRounding::Q8_0 ? 32 : 256;
  const int64_t n = int64_t(x.size());
  ASSERT_EQ(n % block, 0);
  for (int64_t b0 = 0; b0 < n; b0 += block) {
    float* v = x.data() + b0;
    float amax = 0, max = 0;
    for (int64_t i = 0; i < block; ++i)
      if (std::fabs(v[i]) > amax) amax = std::fabs(v[i]), max = v[i];
    if (amax == 0) continue;
    if (r == ActRounding::Q8_0) {
      const float id = 127.f / amax;
      const float d = f16_to_f32(f32_to_f16(amax / 127.f));
      for (int64_t i = 0; i < block; ++i) v[i] = std::nearbyint(v[i] * id) * d;
    } else {
      const float iscale = -127.f / max;
      const float d = 1 / iscale;
      for (int64_t i = 0; i < block; ++i) v[i] = std::min(127.f, std::nearbyint(iscale * v[i])) * d;
    }
  }
}

// Our own forward pass run through the block interpreter (runtime/block.h) with an observer at every
// activation point that rounds the point's values in place — before the linear layers that read it —
// the way llama.cpp rounds that layer's input.
class RecomposedModel {
 public:
  explicit RecomposedModel(const LoadedModel& m) : c_(m.config), globals_(load_globals(c_, *m.weights)) {
    const ArchSpec& a = *c_.arch;
    auto rounding = [&](const std::string& hf_name) { return act_rounding_for(m.weights->format(hf_name)); };
    for (int layer = 0; layer < c_.n_layers; ++layer) {
      const BlockSpec& spec = c_.block(layer);
      blocks_.push_back(load_block(c_, *m.weights, layer));
      // One rounding per point: q, k, v share one input, and so do gate and up (true of every llama.cpp
      // mix, whose K-quants all pair with Q8_K).
      std::vector<ActRounding> r(spec.points.size(), ActRounding::None);
      for (size_t p = 0; p < spec.points.size(); ++p) {
        const std::vector<int> readers = spec.readers(int(p));
        r[p] = rounding(spec.linear_tensor(readers.front()) + ".weight");
        for (int l : readers) EXPECT_EQ(rounding(spec.linear_tensor(l) + ".weight"), r[p]) << spec.linear_tensor(l);
      }
      rounding_.push_back(std::move(r));
      // ggml's CPU GELU reads a table of fp16 values at the fp16-rounded input (GGML_GELU_FP16): the
      // feed-forward mid of a GELU block carries fp16-sized relative noise. Simulated as one fp16 rounding
      // of the mid (the table's output rounding; its input rounding is of the same size, within the margin).
      std::vector<bool> f16(spec.points.size(), false);
      for (const Sublayer& sl : spec.sublayers)
        if (sl.kind == SublayerKind::Ffn && sl.act == FfnKind::GatedGeluTanh) f16[size_t(sl.mid)] = true;
      gelu_f16_.push_back(std::move(f16));
    }
    const std::string lm_head = std::string(a.lm_head) + ".weight";
    head_rounding_ = rounding(m.weights->has(lm_head) ? lm_head : std::string(a.embed_tokens) + ".weight");
  }

  // Logits [T, vocab] on one sequence. round = false: our engine as is. round = true: with llama.cpp's
  // 8-bit activations, one realization of their rounding noise per jitter seed (0: no jitter).
  std::vector<float> logits(const std::vector<int32_t>& ids, bool round, unsigned jitter_seed = 0) const {
    const int64_t T = int64_t(ids.size());
    std::mt19937 rng(jitter_seed);
    std::mt19937* jitter = jitter_seed ? &rng : nullptr;
    struct Rounder final : PointObserver {
      const std::vector<ActRounding>* r;
      const std::vector<bool>* f16;
      bool round;
      std::mt19937* jitter;
      bool observe(int point, Act x) override {
        if (round && (*f16)[size_t(point)]) round_activations(std::span(x.p, size_t(x.numel())), ActRounding::F16, nullptr);
        round_activations(std::span(x.p, size_t(x.numel())), round ? (*r)[size_t(point)] : ActRounding::None, jitter);
        return true;
      }
    };
    Tensor x = embed(c_, globals_, ids, 1, T);
    for (int layer = 0; layer < c_.n_layers; ++layer) {
      Rounder obs;
      obs.r = &rounding_[size_t(layer)], obs.f16 = &gelu_f16_[size_t(layer)], obs.round = round, obs.jitter = jitter;
      block_forward(c_, blocks_[size_t(layer)], layer, x, 1, T, &obs);
    }
    // The head: final norm, its input rounded as the output matrix's type wants.
    Tensor h(Shape{T, c_.hidden});
    cpu::normalize(c_.arch->norm, globals_.final_norm.w, globals_.final_norm.b, c_.norm_eps, x.ptr(), T, c_.hidden,
                   h.ptr(), c_.arch->norm_gain_offset);
    EXPECT_EQ(c_.final_softcap, 0.0) << "the recomposed head has no soft-capping";
    round_activations(std::span(h.data), round ? head_rounding_ : ActRounding::None, jitter);
    Tensor out;
    linear(h, globals_.lm_head, out);  // [T, vocab]
    return out.data;
  }

 private:
  ModelConfig c_;
  GlobalWeights globals_;
  std::vector<BlockWeights> blocks_;
  std::vector<std::vector<ActRounding>> rounding_;  // per block, per point
  std::vector<std::vector<bool>> gelu_f16_;         // per block, per point: ggml's fp16 GELU table
  ActRounding head_rounding_ = ActRounding::None;
};

// ---- llama.cpp -----------------------------------------------------------------------------------

struct LlamaCppResult {
  std::vector<float> logits;  // [n_tokens, n_vocab]
  json meta;
};

LlamaCppResult run_llama_cpp(const TempDir& tmp, const fs::path& gguf, const std::vector<int32_t>& ids,
                             const std::vector<std::string>& texts) {
  std::ofstream(tmp / "ids.json") << json(ids).dump();
  std::ofstream(tmp / "texts.json") << json(texts).dump();
  const fs::path script = fs::path(QUANTLLM_SOURCE_DIR) / "tests" / "interop" / "llama_logits.mjs";
  const std::string cmd = fmt::format(
      "{} {} --lib {} --model {} --tokens {} --texts {} --out {} --meta {} --threads 2", env_or("QUANTLLM_NODE", "node"),
      quoted(script), quoted(llama_cpp_dir()), quoted(gguf), quoted(tmp / "ids.json"), quoted(tmp / "texts.json"),
      quoted(tmp / "logits.f32"), quoted(tmp / "meta.json"));
  const test::RunResult r = test::run_command(cmd);
  LlamaCppResult out;
  EXPECT_EQ(r.status, 0) << cmd << "\n" << r.err;
  if (r.status != 0) return out;
  out.meta = json::parse(test::read_all(tmp / "meta.json"));
  const std::string raw = test::read_all(tmp / "logits.f32");
  out.logits.resize(raw.size() / sizeof(float));
  std::memcpy(out.logits.data(), raw.data(), out.logits.size() * sizeof(float));
  return out;
}

// ---- the test ------------------------------------------------------------------------------------

struct Diff {
  double max = 0, mean = 0;
};

// |Δ| of next-token log-probabilities log p(ids[i+1] | ids[..i]) over the positions 0 … T−2.
Diff next_token_diff(const std::vector<float>& a, const std::vector<float>& b, const std::vector<int32_t>& ids,
                     int64_t vocab) {
  Diff d;
  const int64_t n = int64_t(ids.size()) - 1;
  for (int64_t i = 0; i < n; ++i) {
    const double la = log_softmax(a.data() + i * vocab, vocab)[size_t(ids[size_t(i + 1)])];
    const double lb = log_softmax(b.data() + i * vocab, vocab)[size_t(ids[size_t(i + 1)])];
    d.max = std::max(d.max, std::fabs(la - lb));
    d.mean += std::fabs(la - lb) / double(n);
  }
  return d;
}

// max |Δ| over every entry of the log-softmax (the whole vocabulary at every position).
double full_vocab_max_diff(const std::vector<float>& a, const std::vector<float>& b, int64_t rows, int64_t vocab) {
  double mx = 0;
  for (int64_t i = 0; i < rows; ++i) {
    const auto la = log_softmax(a.data() + i * vocab, vocab), lb = log_softmax(b.data() + i * vocab, vocab);
    for (int64_t j = 0; j < vocab; ++j) mx = std::max(mx, std::fabs(la[size_t(j)] - lb[size_t(j)]));
  }
  return mx;
}

// (model, GGUF type)
class LlamaCpp : public ::testing::TestWithParam<std::tuple<const char*, const char*>> {
 protected:
  void SetUp() override {
    if (env_or("QUANTLLM_SKIP_LLAMA_CPP", "0") != "0")
      GTEST_SKIP() << "SKIPPED: QUANTLLM_SKIP_LLAMA_CPP is set, llama.cpp interop not checked";
    ASSERT_TRUE(fs::exists(llama_cpp_dir() / "node_modules" / "node-llama-cpp" / "package.json"))
        << "llama.cpp (node-llama-cpp) is not installed in " << llama_cpp_dir()
        << ": run scripts/install-llama-cpp.sh (needs the npm registry), or set QUANTLLM_SKIP_LLAMA_CPP=1 to skip";
  }
};

TEST_P(LlamaCpp, LoadsOurFileAndAgreesOnLogProbs) {
  const std::string model_name = std::get<0>(GetParam()), type = std::get<1>(GetParam());
  TempDir tmp;
  const fs::path gguf = tmp / (type + ".gguf");
  // TYPE_gptq: the mix with GPTQ's error feedback into its blocks (gguf --gptq, a short calibration).
  const bool gptq = type.ends_with("_gptq");
  const std::string mix = gptq ? type.substr(0, type.size() - 5) : type;
  std::string extra = gptq ? fmt::format(" --gptq --calib {} --nsamples 8 --seqlen 256",
                                         quoted(test::data_file("gutenberg-calib.txt")))
                           : std::string();
  if (mix.starts_with("IQ1") || mix.starts_with("IQ2") || mix.starts_with("IQ3")) {
    // the lattice mixes need an importance matrix: a short one from the calibration text
    const fs::path im = tmp / "imatrix.gguf";
    const auto r = test::run_quantllm(fmt::format("imatrix --model {} -f {} -o {} --chunks 8 -c 256",
                                                  quoted(test::model_dir(model_name)),
                                                  quoted(test::data_file("gutenberg-calib.txt")), quoted(im)));
    ASSERT_EQ(r.status, 0) << r.err;
    extra += " --imatrix " + quoted(im);
  }
  const auto q = test::run_quantllm(fmt::format("quantize --model {} --out {} --method gguf --type {}{}",
                                                quoted(test::model_dir(model_name)), quoted(gguf), mix, extra));
  ASSERT_EQ(q.status, 0) << q.err;

  const json ref = test::reference(model_name);
  // Gemma 3's window is 128 tokens: compare 256 positions so the sliding layers' mask matters.
  const int64_t kTokens = model_name == "gutenberg-gemma3-16m" ? 256 : quantllm::kTokens;
  std::vector<int32_t> ids = ref["golden_prompt"]["ids"].get<std::vector<int32_t>>();
  ASSERT_GE(int64_t(ids.size()), kTokens);
  ids.resize(size_t(kTokens));
  const std::vector<std::string> texts = {
      first_code_points(test::data_file("gutenberg-heldout.txt"), ref["golden_prompt"]["text_chars"].get<size_t>()),
      first_code_points(test::data_file("wikitext2-test.raw"), 4000),  // @-@, digits, accents, newlines
  };

  const LlamaCppResult llama = run_llama_cpp(tmp, gguf, ids, texts);
  ASSERT_FALSE(llama.meta.is_null()) << "llama.cpp did not run";

  const LoadedModel model = open_model(gguf);
  const int64_t vocab = model.config.vocab;
  ASSERT_EQ(llama.meta["n_vocab"].get<int64_t>(), vocab);
  ASSERT_EQ(int64_t(llama.logits.size()), kTokens * vocab);
  // The comparison is only as clean as the settings the script asked for; check llama.cpp took them.
  EXPECT_EQ(llama.meta["kv_cache_key_type"], "0") << "KV cache keys not F32 (ggml type 0)";
  EXPECT_EQ(llama.meta["kv_cache_value_type"], "0") << "KV cache values not F32 (ggml type 0)";
  EXPECT_EQ(llama.meta["flash_attention"], false);
  EXPECT_GE(llama.meta["batch_size"].get<int64_t>(), kTokens);

  // Tokenization: llama.cpp's tokenizer, built from our vocabulary metadata, must match ours (and the
  // golden ids of reference.json, which start with BOS).
  const auto& llama_text_ids = llama.meta["text_ids"];
  ASSERT_EQ(llama_text_ids.size(), texts.size());
  for (size_t t = 0; t < texts.size(); ++t)
    EXPECT_EQ(llama_text_ids[t].get<std::vector<int32_t>>(), model.tokenizer->encode(texts[t], false)) << "text " << t;
  {
    auto golden = ref["golden_prompt"]["ids"].get<std::vector<int32_t>>();
    auto with_bos = llama_text_ids[0].get<std::vector<int32_t>>();
    with_bos.insert(with_bos.begin(), llama.meta["bos"].get<int32_t>());
    ASSERT_GE(with_bos.size(), golden.size());
    with_bos.resize(golden.size());
    EXPECT_EQ(with_bos, golden);
  }

  // Our engine three ways: FullModel (what `eval` runs), the recomposed plain pass (must equal it),
  // and the recomposed pass with llama.cpp's 8-bit activations.
  std::vector<float> ours;
  FullModel(model).forward(ids, 1, kTokens, [&](int64_t, const Tensor& logits) { ours = logits.data; });
  const RecomposedModel recomposed(model);
  ASSERT_LT(next_token_diff(recomposed.logits(ids, false), ours, ids, vocab).max, 1e-4)
      << "recomposed forward pass differs from FullModel";
  // Realizations of llama.cpp's rounding noise: how far 8-bit activations alone move our log-probs.
  Diff sim_worst;
  std::string sim_list;
  int64_t sim_flips = 0;  // the most positions at which one realization's argmax left ours (near-ties)
  for (unsigned seed = 1; seed <= kRealizations; ++seed) {
    const std::vector<float> sim = recomposed.logits(ids, true, seed);
    const Diff d = next_token_diff(sim, ours, ids, vocab);
    int64_t flips = 0;
    for (int64_t i = 0; i < kTokens; ++i)
      flips += argmax(sim.data() + i * vocab, vocab) != argmax(ours.data() + i * vocab, vocab);
    sim_flips = std::max(sim_flips, flips);
    sim_worst.max = std::max(sim_worst.max, d.max);
    sim_worst.mean = std::max(sim_worst.mean, d.mean);
    sim_list += fmt::format(" {:.4f}/{:.4f}", d.max, d.mean);
  }

  const Diff vs_llama = next_token_diff(llama.logits, ours, ids, vocab);
  const double full_vocab = full_vocab_max_diff(llama.logits, ours, kTokens, vocab);
  const double tolerance = kMargin * sim_worst.max + kFloor, mean_tolerance = kMargin * sim_worst.mean + kFloor;

  int agree = 0, must_agree = 0, must_agree_ok = 0;
  for (int64_t i = 0; i < kTokens; ++i) {
    const float* o = ours.data() + i * vocab;
    const int64_t top = argmax(o, vocab), top_llama = argmax(llama.logits.data() + i * vocab, vocab);
    float second = -INFINITY;
    for (int64_t j = 0; j < vocab; ++j)
      if (j != top) second = std::max(second, o[j]);
    agree += top == top_llama;
    if (o[top] - second > tolerance) {
      ++must_agree;
      must_agree_ok += top == top_llama;
    }
  }

  std::printf(
      "[ llama.cpp ] %s %-6s next-token log-prob |Δ| llama.cpp vs ours: max %.5f mean %.5f (tolerance %.5f / %.5f); "
      "full vocabulary max %.5f; argmax %d/%lld (simulated: up to %lld flips); simulated 8-bit activations vs ours, "
      "max/mean per realization:%s\n",
      model_name.c_str(), type.c_str(), vs_llama.max, vs_llama.mean, tolerance, mean_tolerance, full_vocab, agree, (long long)kTokens,
      (long long)sim_flips, sim_list.c_str());

  EXPECT_LE(vs_llama.max, tolerance);
  EXPECT_LE(vs_llama.mean, mean_tolerance);
  EXPECT_EQ(must_agree_ok, must_agree) << "greedy next token differs where our top-2 margin exceeds the tolerance";
  // Near-ties: at most 2 of every 128 positions, or twice what the simulated noise flipped.
  EXPECT_GE(agree, kTokens - std::max(kTokens / 64, 2 * sim_flips)) << "simulated 8-bit activations flipped " << sim_flips;
}

// llama3 RoPE scaling (Llama 3.1+) as llama.cpp reads it: the reference model with llama3 scaling over an
// original context of 32 tokens (so all three bands act within the 128 compared positions), written as
// F32 GGUF with rope_freqs.weight. llama.cpp must agree with ours as on the plain F32 file (~1e-5), and
// the scaling must matter (the logits differ from the unscaled model's), or the check would be empty.
TEST_F(LlamaCpp, Llama3RopeFreqsAgree) {
  TempDir tmp;
  const fs::path src = test::model_dir(kModel), dir = tmp / "llama3";
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(src))
    if (e.path().filename() != "config.json") fs::create_symlink(e.path(), dir / e.path().filename());
  json config = json::parse(test::read_all(src / "config.json"));
  config["rope_parameters"] = {{"rope_theta", 10000.0}, {"rope_type", "llama3"}, {"factor", 8.0},
                               {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                               {"original_max_position_embeddings", 32}};
  std::ofstream(dir / "config.json") << config.dump(2);
  const fs::path gguf = tmp / "llama3.gguf";
  const auto q = test::run_quantllm(fmt::format("quantize --model {} --out {} --method gguf --type F32", quoted(dir),
                                                quoted(gguf)));
  ASSERT_EQ(q.status, 0) << q.err;

  std::vector<int32_t> ids = test::reference(kModel)["golden_prompt"]["ids"].get<std::vector<int32_t>>();
  ids.resize(size_t(kTokens));
  const LlamaCppResult llama = run_llama_cpp(tmp, gguf, ids, {"x"});
  ASSERT_FALSE(llama.meta.is_null()) << "llama.cpp did not run";
  const LoadedModel model = open_model(gguf);
  ASSERT_EQ(model.config.rope_freq_factors.size(), 32u);
  const int64_t vocab = model.config.vocab;
  std::vector<float> ours, plain;
  FullModel(model).forward(ids, 1, kTokens, [&](int64_t, const Tensor& l) { ours = l.data; });
  FullModel(open_model(src)).forward(ids, 1, kTokens, [&](int64_t, const Tensor& l) { plain = l.data; });
  const Diff vs_llama = next_token_diff(llama.logits, ours, ids, vocab);
  const Diff vs_plain = next_token_diff(plain, ours, ids, vocab);
  std::printf("[ llama.cpp ] llama3 rope_freqs: next-token log-prob |Δ| llama.cpp vs ours max %.6f mean %.6f; "
              "scaled vs unscaled model max %.3f\n", vs_llama.max, vs_llama.mean, vs_plain.max);
  EXPECT_LE(vs_llama.max, 1e-3);
  EXPECT_GT(vs_plain.max, 0.1);
}

// Architectures beyond Llama as llama.cpp reads them, on random-weight checkpoints (support/synthetic.h)
// written as F32 GGUF; llama.cpp must agree with ours as on the F32 Llama file (~1e-5 in log-prob), where a
// missing norm, a permuted head, a wrong expert order, slice, routing weight, split or rotary width moves
// log-probs by ≫ 0.1.
//   qwen3: per-head q/k RMSNorms (attn_q_norm / attn_k_norm), q/k rows in Hugging Face's order (NEOX RoPE,
//     no permutation), head_dim × heads ≠ hidden (the spec of tests/model/qwen3_test.cpp).
//   qwen3moe, mixtral: a layer's experts stacked into ffn_{gate,up,down}_exps, the router ffn_gate_inp (F32),
//     expert_count / expert_used_count / expert_feed_forward_length; Qwen3-MoE with every layer MoE
//     (llama.cpp's qwen3moe graph has no dense layers), Mixtral as llama.cpp's "llama" with experts.
//   phi3: fused attn_qkv and ffn_up (gate and up), partial rotary (rope.dimension_count; no sliding window:
//     llama.cpp turns Phi's off); phi3longrope: Phi-4-mini's longrope as llama.cpp stores it (the tensors
//     rope_factors_short / rope_factors_long, rope.scaling.attn_factor, rope.scaling.original_context_length;
//     a context within the original one, so both sides take the short factors).
// Compared: the whole vocabulary at every position but the last. The last row that node-llama-cpp hands back
// differs from ours by up to ~2 in log-prob for some of these models (2026-12-06, llama.cpp de3ff81), whatever
// the sequence length, while every earlier row agrees to ~1e-5 and ours matches transformers' last row
// (tests/model/qwen3_test.cpp); it is printed, not asserted, until that is understood.
class LlamaCppFamily : public LlamaCpp {};

TEST_P(LlamaCppFamily, F32Agrees) {
  const std::string family = std::get<0>(GetParam());
  TempDir tmp;
  test::SyntheticSpec s;
  s.family = family == "qwen3"      ? test::Family::Qwen3
             : family == "qwen3moe" ? test::Family::Qwen3Moe
             : family == "mixtral"  ? test::Family::Mixtral
                                    : test::Family::Phi3;  // phi3, phi3longrope
  s.hidden = 64, s.heads = 4, s.kv_heads = 2, s.ffn = 96, s.layers = 2;
  s.dtype = "float32", s.seed = 404;
  if (s.family == test::Family::Qwen3Moe || s.family == test::Family::Mixtral) s.experts = 4, s.experts_used = 2;
  if (s.family == test::Family::Qwen3 || s.family == test::Family::Qwen3Moe) s.head_dim = 32, s.tied = true, s.rope_theta = 1e6;
  if (s.family == test::Family::Qwen3) s.seed = 316;
  if (s.family == test::Family::Qwen3Moe) s.moe_ffn = 64;
  if (s.family == test::Family::Phi3) s.partial_rotary_factor = 0.75, s.vocab = 8064;
  if (family == "phi3longrope") {  // 6 rotated frequencies: short divisors 1 … 3.5, long 2 … 7
    s.max_positions = 8192, s.longrope_original = 4096;  // llama.cpp pads its context to 256: keep it short
    for (int i = 0; i < 6; ++i) s.longrope_short.push_back(1.0 + 0.5 * i), s.longrope_long.push_back(2.0 + i);
  }
  test::write_model(tmp / "m", s, test::random_tensors(s));
  const fs::path gguf = tmp / "m.gguf";
  const auto q = test::run_quantllm(fmt::format("quantize --model {} --out {} --method gguf --type F32",
                                                quoted(tmp / "m"), quoted(gguf)));
  ASSERT_EQ(q.status, 0) << q.err;
  std::vector<int32_t> ids;
  for (int64_t i = 0; i < 64; ++i) ids.push_back(int32_t((i * 7919 + 13) % 8000));
  const LlamaCppResult llama = run_llama_cpp(tmp, gguf, ids, {"x"});
  ASSERT_FALSE(llama.meta.is_null()) << "llama.cpp did not run";
  const LoadedModel model = open_model(gguf);
  EXPECT_EQ(model.config.n_experts, s.experts);
  const int64_t vocab = model.config.vocab, T = int64_t(ids.size());
  ASSERT_EQ(int64_t(llama.logits.size()), T * vocab);
  std::vector<float> ours, hf;
  FullModel(model).forward(ids, 1, T, [&](int64_t, const Tensor& l) { ours = l.data; });
  FullModel(open_model(tmp / "m")).forward(ids, 1, T, [&](int64_t, const Tensor& l) { hf = l.data; });
  const double all_but_last = full_vocab_max_diff(llama.logits, ours, T - 1, vocab);
  const std::vector<float> llama_last(llama.logits.end() - vocab, llama.logits.end()), ours_last(ours.end() - vocab, ours.end());
  std::printf("[ llama.cpp ] %s F32: full vocabulary log-prob |Δ| llama.cpp vs ours max %.6f (rows 0..%lld), last "
              "row %.4f; our GGUF vs the checkpoint %.2g\n", family.c_str(), all_but_last, (long long)(T - 2),
              full_vocab_max_diff(llama_last, ours_last, 1, vocab), full_vocab_max_diff(hf, ours, T, vocab));
  EXPECT_LE(all_but_last, 1e-3);
  EXPECT_LE(full_vocab_max_diff(hf, ours, T, vocab), 1e-5);  // the F32 file computes what the checkpoint does
}

INSTANTIATE_TEST_SUITE_P(Arch2026, LlamaCppFamily,
                         ::testing::Combine(::testing::Values("qwen3", "qwen3moe", "mixtral", "phi3", "phi3longrope"),
                                            ::testing::Values("F32")),
                         [](const auto& info) { return std::string(std::get<0>(info.param)); });

INSTANTIATE_TEST_SUITE_P(Gutenberg, LlamaCpp,
                         ::testing::Combine(::testing::Values("gutenberg-llama-33m"),
                                            ::testing::Values("F32", "Q8_0", "Q6_K", "Q4_K_M", "Q2_K", "Q4_K_M_gptq",
                                                              "Q3_K_M_gptq", "Q2_K_gptq", "IQ3_XXS", "IQ2_S", "IQ1_S", "IQ1_M",
                                                              "TQ1_0", "TQ2_0")),
                         [](const auto& info) { return std::string(std::get<1>(info.param)); });
// Gemma 3 (llama.cpp's "gemma3"): norms stored as 1 + w, the sandwich norms, q/k norms, the sliding
// window pattern and the sliding layers' RoPE base from our metadata.
INSTANTIATE_TEST_SUITE_P(Gemma3, LlamaCpp,
                         ::testing::Combine(::testing::Values("gutenberg-gemma3-16m"),
                                            ::testing::Values("F32", "Q8_0", "Q4_K_M", "Q4_K_M_gptq", "Q3_K_M_gptq",
                                                              "Q2_K_gptq")),
                         [](const auto& info) { return std::string(std::get<1>(info.param)); });

}  // namespace
}  // namespace quantllm
