// AWQ over whole models: folding preserves the fp32 function (block and full-model logits), AWQ beats
// round-to-nearest on a block's output error, an end-to-end CLI run beats RTN's perplexity, the
// exported AWQ directory reads back to the same weights, and bad input fails cleanly.
#include "calib/runner.h"
#include "formats/open.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/threads.h"
#include "formats/quantized_model.h"
#include "methods/awq.h"
#include "quant/awq_search.h"
#include "runtime/forward.h"
#include "support/reference.h"
#include "support/run.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <random>

using namespace quantllm;
using namespace quantllm::test;

namespace {

// max |a − b| / max |a| over two equally shaped tensors.
double rel_max_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape, b.shape);
  double d = 0, m = 0;
  for (size_t i = 0; i < a.data.size(); ++i) {
    d = std::max(d, std::fabs(double(a.data[i]) - double(b.data[i])));
    m = std::max(m, std::fabs(double(a.data[i])));
  }
  return d / m;
}

QuantizeRequest small_options(int64_t nsamples, int64_t seqlen, int bits = 4) {
  QuantizeRequest o;
  o.method = "awq";
  o.bits = bits;
  o.group_size = 128;
  o.calib.source = data_file("gutenberg-calib.txt").string();
  o.calib.nsamples = nsamples;
  o.calib.seqlen = seqlen;
  o.awq.search_tokens = nsamples * seqlen;
  return o;
}

// Calibration-like windows of the held-out text (not the calibration text): [n, seqlen].
CalibWindows heldout_windows(const LoadedModel& m, int64_t n, int64_t seqlen) {
  CalibOptions c;
  c.source = data_file("gutenberg-heldout.txt").string();
  c.nsamples = n;
  c.seqlen = seqlen;
  c.seed = 1;
  return calibration_windows(m, c);
}

// Tolerance of "the same function" in fp32. Folding changes every weight of a scaled linear by one
// extra rounding (w·s, and s itself is n / round(n/s): two more), i.e. a relative perturbation of at
// most 3·2⁻²⁴ ≈ 1.8e−7 per product; a dot product's rounding error is already up to k·2⁻²⁴ for k terms
// (k ≤ 1536 here), and the two forward passes sum in the same order, so the folded model's outputs
// move by a few 2⁻²⁴·k relative to the magnitudes involved. Attention logits and norms amplify that
// by their condition (≈ |scores| ≲ 30), giving ≈ 1e−5 after 8 blocks; 1e−4 leaves a 10× margin while
// any real folding error (a wrong scale on one channel, a missed bias) moves outputs by ≥ 1e−2.
constexpr double kFoldTol = 1e-4;

}  // namespace

TEST(AwqGroups, PerArchitecture) {
  const LoadedModel llama = open_model(model_dir("gutenberg-llama-33m"));
  // The roles of a group's layers and of the op it folds into.
  auto roles = [](const BlockSpec& b, const std::vector<int>& slots) {
    std::vector<Role> r;
    for (int s : slots) r.push_back(b.linears[size_t(s)].role);
    return r;
  };
  const BlockSpec& lb = llama.config.block(0);
  const auto lg = awq_scaling_groups(lb);  // GQA: no v → o
  ASSERT_EQ(lg.size(), 3u);
  EXPECT_EQ(roles(lb, lg[0].layers), (std::vector<Role>{Role::Q, Role::K, Role::V}));
  EXPECT_EQ(lb.norm_tensor(lg[0].source_slot), "model.layers.0.input_layernorm");
  EXPECT_EQ(roles(lb, lg[1].layers), (std::vector<Role>{Role::Gate, Role::Up}));
  EXPECT_EQ(lb.norm_tensor(lg[1].source_slot), "model.layers.0.post_attention_layernorm");
  ASSERT_TRUE(lg[2].folds_into_linear());
  EXPECT_EQ(lb.linears[size_t(lg[2].source_slot)].role, Role::Up);
  EXPECT_EQ(roles(lb, lg[2].layers), (std::vector<Role>{Role::Down}));
  const LoadedModel opt = open_model(model_dir("gutenberg-opt-28m"));
  const BlockSpec& ob = opt.config.block(0);
  const auto og = awq_scaling_groups(ob);  // ln → qkv, v → out_proj, ln → fc1, fc1 → fc2
  ASSERT_EQ(og.size(), 4u);
  ASSERT_TRUE(og[1].folds_into_linear());
  EXPECT_EQ(ob.linears[size_t(og[1].source_slot)].role, Role::V);
  EXPECT_EQ(roles(ob, og[2].layers), (std::vector<Role>{Role::Up}));
  EXPECT_EQ(roles(ob, og[3].layers), (std::vector<Role>{Role::Down}));
}

// Random scales in [1/4, 4] folded into every group of a real block: same block output.
TEST(AwqFold, BlockOutputUnchanged) {
  for (const char* name : kModels) {
    const LoadedModel m = open_model(model_dir(name));
    const ModelConfig& c = m.config;
    const CalibWindows win = heldout_windows(m, 2, 64);
    BlockRunner runner(m, win);
    const BlockWeights w = load_block(c, *m.weights, 1);
    BlockWeights f = w;
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(-2.0f, 2.0f);
    const BlockSpec& spec = c.block(1);
    for (const auto& g : awq_scaling_groups(spec)) {
      std::vector<float> s(size_t(spec.linears[size_t(g.layers.front())].in));
      for (float& v : s) v = std::exp2(u(rng));
      awq_fold_scales(spec, f, g, s, DType::BF16);  // bf16 norms: the realized scales keep it exact
    }
    Tensor a = runner.hidden(), b = runner.hidden();
    block_forward(c, w, 1, a, win.n, win.seqlen);
    block_forward(c, f, 1, b, win.n, win.seqlen);
    EXPECT_LT(rel_max_diff(a, b), kFoldTol) << name;
    EXPECT_GT(rel_max_diff(w.norm[0].w, f.norm[0].w), 0.1) << name;  // it did change the weights
  }
}

// The searched scales (scale-only pass) over the whole model: same fp32 logits.
TEST(AwqFold, ModelLogitsUnchanged) {
  for (const char* name : kModels) {
    const LoadedModel m = open_model(model_dir(name));
    const QuantizeRequest o = small_options(2, 64);
    std::map<std::string, Tensor> scaled = awq_scale_weights(m, o);
    // Every block's norms (pre-LN) and the scaled linears are in the map.
    const BlockSpec& first = m.config.block(0), &last = m.config.block(m.config.n_layers - 1);
    EXPECT_TRUE(scaled.count(first.norm_tensor(0) + ".weight")) << name;
    EXPECT_TRUE(scaled.count(last.linear_tensor(last.find(Role::Down)) + ".weight")) << name;
    LoadedModel sm = m;
    sm.weights = overlay_weights(m.weights, scaled);
    const FullModel a(m), b(sm);
    const CalibWindows win = heldout_windows(m, 2, 96);
    std::vector<Tensor> la, lb;
    a.forward(win.tokens, win.n, win.seqlen, [&](int64_t, const Tensor& l) { la.push_back(l); });
    b.forward(win.tokens, win.n, win.seqlen, [&](int64_t, const Tensor& l) { lb.push_back(l); });
    ASSERT_EQ(la.size(), lb.size());
    for (size_t s = 0; s < la.size(); ++s) EXPECT_LT(rel_max_diff(la[s], lb[s]), kFoldTol) << name << " window " << s;
  }
}

// AWQ's block 0 (folded, clipped, quantized) against RTN of the same block, on held-out text:
// the block output error is smaller.
TEST(Awq, BeatsRtnOnBlockOutput) {
  for (const char* name : kModels) {
    const LoadedModel m = open_model(model_dir(name));
    const ModelConfig& c = m.config;
    // Llama at 3 bits, OPT at 4 (one run a model keeps the suite short).
    for (int bits : {std::string(name) == "gutenberg-llama-33m" ? 3 : 4}) {
      QuantizeRequest o = small_options(4, 256, bits);
      QuantizedModel qm = quantize_awq(m, o, {});
      const auto view = qm.as_weights();
      const BlockWeights awq = load_block(c, *view, 0);
      const BlockWeights fp = load_block(c, *m.weights, 0);
      BlockWeights rtn = fp;
      for (auto& l : rtn.linear) l.w = quantize_rtn(l.w, quant_params(o), "rtn").dequantize();
      const CalibWindows win = heldout_windows(m, 4, 256);
      BlockRunner runner(m, win);
      Tensor y_fp = runner.hidden(), y_awq = runner.hidden(), y_rtn = runner.hidden();
      block_forward(c, fp, 0, y_fp, win.n, win.seqlen);
      block_forward(c, awq, 0, y_awq, win.n, win.seqlen);
      block_forward(c, rtn, 0, y_rtn, win.n, win.seqlen);
      double e_awq = 0, e_rtn = 0;
      for (size_t i = 0; i < y_fp.data.size(); ++i) {
        e_awq += std::pow(double(y_awq.data[i]) - y_fp.data[i], 2);
        e_rtn += std::pow(double(y_rtn.data[i]) - y_fp.data[i], 2);
      }
      EXPECT_LT(e_awq, e_rtn) << name << " " << bits << " bits";
      std::printf("  %s %d-bit block 0 output error: awq %.4e rtn %.4e (ratio %.3f)\n", name, bits, e_awq, e_rtn,
                  e_awq / e_rtn);
    }
  }
}

// Same result for 1 and 2 threads; written and read back, the packed layers dequantize to exactly the
// same weights and the scaled norms/biases are the stored dtype's values of ours (folding already
// rounded them to it). OPT (fp16, LayerNorm biases, v → out_proj) with zero point; Llama (bf16) without.
TEST(Awq, DeterministicAcrossThreadsAndExportRoundTripExact) {
  const int saved = num_threads();
  for (const char* name : kModels) {
    const bool zero_point = std::string(name) == "gutenberg-opt-28m";
    const LoadedModel m = open_model(model_dir(name));
    QuantizeRequest o = small_options(4, 128);
    o.sym = !zero_point;
    set_num_threads(2);
    const QuantizedModel qm = quantize_awq(m, o, {});
    if (zero_point) {
      set_num_threads(1);
      const QuantizedModel b = quantize_awq(m, o, {});
      ASSERT_EQ(qm.layers.size(), b.layers.size());
      for (const auto& [n, q] : qm.layers) {
        EXPECT_EQ(q.qweight, b.layers.at(n).qweight) << n;
        EXPECT_EQ(q.scales.data, b.layers.at(n).scales.data) << n;
        EXPECT_EQ(q.zeros, b.layers.at(n).zeros) << n;
      }
      for (const auto& [n, t] : qm.replaced) EXPECT_EQ(t.data, b.replaced.at(n).data) << n;
    }
    set_num_threads(saved);
    TempDir dir;
    save_quantized(qm, dir / "awq", HfQuantFormat::AwqGemm, false);
    const LoadedModel back = open_model(dir / "awq");
    EXPECT_EQ(back.kind, "awq");
    for (const auto& [base, q] : qm.layers) EXPECT_EQ(back.weights->load(base + ".weight").data, q.dequantize().data) << base;
    ASSERT_FALSE(qm.replaced.empty());
    for (const auto& [n, t] : qm.replaced) EXPECT_EQ(back.weights->load(n).data, t.data) << n;
    std::ifstream f(dir / "awq" / "config.json");
    const auto cfg = nlohmann::json::parse(f)["quantization_config"];
    EXPECT_EQ(cfg["quant_method"], "awq");
    EXPECT_EQ(cfg["zero_point"], zero_point);
    EXPECT_EQ(cfg["version"], "gemm");
  }
}

// The CLI end to end on the Llama model with 16 windows of 512: perplexity over the first 16 windows of
// gutenberg-heldout (the calibration text's domain) below round-to-nearest's (reference.json
// first_windows). Measured on 2026-12-06 (AMD EPYC, OpenBLAS Haswell kernels): 39.28 against RTN 39.45 and
// fp32 38.84, at this commit and at the commit that introduced AWQ. Not on wikitext2: with this little
// calibration AWQ lands within RTN's 0.6% of fp32 there (183.05 against 182.92; 181.7 with the default 128
// windows), and which side depends on the float order of the BLAS kernel the CPU gets.
TEST(AwqCli, LlamaPerplexityBelowRtn) {
  const auto ref = reference("gutenberg-llama-33m")["first_windows"]["results"];
  const double rtn = ref["rtn_w4g128_asym"]["gutenberg_heldout"]["first16"];
  const double fp32 = ref["fp32"]["gutenberg_heldout"]["first16"];
  TempDir dir;
  const auto out = dir / "awq";
  const RunResult q = run_quantllm(fmt::format(
      "quantize --model {} --out {} --method awq --bits 4 --group-size 128 --calib {} --nsamples 16 --seqlen 512",
      model_dir("gutenberg-llama-33m").string(), out.string(), data_file("gutenberg-calib.txt").string()));
  ASSERT_EQ(q.status, 0) << q.err;
  const RunResult e = run_quantllm(fmt::format("eval ppl --model {} --data {} --max-windows 16 --json", out.string(),
                                               data_file("gutenberg-heldout.txt").string()));
  ASSERT_EQ(e.status, 0) << e.err;
  const double ppl = nlohmann::json::parse(e.out)["ppl"];
  std::printf("  awq w4g128 (16x512 calib) gutenberg-heldout first16: %.3f (rtn %.3f, fp32 %.3f)\n", ppl, rtn, fp32);
  EXPECT_LT(ppl, rtn);
  EXPECT_GT(ppl, fp32 * 0.98);
}

TEST(AwqCli, BadInputFailsWithOneLine) {
  TempDir dir;
  const auto out = dir / "awq";
  std::ofstream(dir / "short.txt") << "Too short.";
  const std::string base = fmt::format("quantize --model {} --out {} --method awq --nsamples 2 --seqlen 128 ",
                                       model_dir("gutenberg-llama-33m").string(), out.string());
  const std::string calib = "--calib " + data_file("gutenberg-calib.txt").string();
  const std::pair<std::string, std::string> cases[] = {
      {"--bits 9 " + calib, "--bits"},
      {"--group-size 100 " + calib, "group size 100"},
      {"--calib " + (dir / "short.txt").string(), "too short"},
      {"--awq-scale " + calib, "--awq-scale"},
      {"", "--calib"},
  };
  for (const auto& [args, expect] : cases) {
    const RunResult r = run_quantllm(base + args);
    EXPECT_EQ(r.status, 1) << args << "\n" << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << args << "\n" << r.err;
    EXPECT_NE(r.err.find(expect), std::string::npos) << args << "\n" << r.err;
    EXPECT_FALSE(std::filesystem::exists(out)) << args;
  }
}

// GPTQ on the AWQ-scaled model (--awq-scale): a loadable checkpoint whose perplexity stays near fp32
// (2048 calibration tokens: plain GPTQ with these windows scores the same, 91.4, so the bound is loose;
// the quality comparison is in docs/benchmarks-awq.md).
TEST(AwqCli, GptqAfterAwqScale) {
  const auto ref = reference("gutenberg-opt-28m")["first_windows"]["results"];
  const double fp32 = ref["fp32"]["gutenberg_heldout"]["first16"];
  TempDir dir;
  const auto out = dir / "gptq";
  const RunResult q = run_quantllm(fmt::format(
      "quantize --model {} --out {} --method gptq --awq-scale --bits 4 --calib {} --nsamples 8 --seqlen 256",
      model_dir("gutenberg-opt-28m").string(), out.string(), data_file("gutenberg-calib.txt").string()));
  ASSERT_EQ(q.status, 0) << q.err;
  const RunResult e = run_quantllm(fmt::format("eval ppl --model {} --data {} --max-windows 16 --json", out.string(),
                                               data_file("gutenberg-heldout.txt").string()));
  ASSERT_EQ(e.status, 0) << e.err;
  const double ppl = nlohmann::json::parse(e.out)["ppl"];
  std::printf("  gptq --awq-scale w4g128 (8x256 calib) opt heldout first16: %.3f (fp32 %.3f)\n", ppl, fp32);
  EXPECT_LT(ppl, fp32 * 1.05);
}
