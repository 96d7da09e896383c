// GGUF through the CLI on gutenberg-llama-33m: quality of the main types on the first 16 wikitext2
// windows in our engine (Q8_0 within 0.2% of fp32, Q4_K_M within 2%, Q4_K_M with an importance
// matrix computed by `quantllm imatrix` no worse than without), the --dry-run plan (K-quant and lattice
// mixes), and bad input (unknown type, a lattice mix without importance matrix, an importance matrix of
// another model, an unwritable output) failing with one line,
// exit 1 and no file left behind.
#include "formats/gguf_model.h"
#include "formats/open.h"
#include "io/gguf.h"
#include "runtime/forward.h"
#include "support/reference.h"
#include "support/run.h"
#include "support/synthetic.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <set>

using namespace quantllm;
using json = nlohmann::json;

namespace {

const std::string kLlama = "gutenberg-llama-33m";

double first16(const std::filesystem::path& model) {
  const auto r = test::run_quantllm("eval ppl --model " + model.string() + " --data " +
                                    test::data_file("wikitext2-test.raw").string() + " --max-windows 16 --json");
  EXPECT_EQ(r.status, 0) << r.err;
  return json::parse(r.out)["ppl"].get<double>();
}

test::RunResult quantize(const std::string& args) {
  return test::run_quantllm("quantize --model " + test::model_dir(kLlama).string() + " --method gguf " + args);
}

}  // namespace

TEST(GgufCli, QualityOfMainTypes) {
  test::TempDir tmp;
  const double fp32 = test::reference(kLlama)["fp32"]["wikitext2_test"]["ppl_first16"].get<double>();
  ASSERT_EQ(quantize("--type Q8_0 --out " + (tmp / "q8.gguf").string()).status, 0);
  ASSERT_EQ(quantize("--type Q4_K_M --out " + (tmp / "q4.gguf").string()).status, 0);
  const auto im = test::run_quantllm("imatrix --model " + test::model_dir(kLlama).string() + " --data " +
                                     test::data_file("gutenberg-calib.txt").string() + " --chunks 32 --out " +
                                     (tmp / "imatrix.gguf").string());
  ASSERT_EQ(im.status, 0) << im.err;
  ASSERT_EQ(quantize("--type Q4_K_M --imatrix " + (tmp / "imatrix.gguf").string() + " --out " +
                     (tmp / "q4i.gguf").string()).status, 0);
  const double q8 = first16(tmp / "q8.gguf"), q4 = first16(tmp / "q4.gguf"), q4i = first16(tmp / "q4i.gguf");
  std::printf("first16: fp32 %.3f Q8_0 %.3f Q4_K_M %.3f Q4_K_M+imatrix %.3f\n", fp32, q8, q4, q4i);
  EXPECT_NEAR(q8, fp32, fp32 * 0.002);
  EXPECT_NEAR(q4, fp32, fp32 * 0.02);
  EXPECT_LE(q4i, q4 * 1.001);
}

TEST(GgufCli, DryRunPlanFollowsLlamaCppRules) {
  const auto r = quantize("--type Q4_K_M --out /nonexistent/x.gguf --dry-run --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = json::parse(r.out);
  std::map<std::string, std::string> type;
  for (const auto& t : j["tensors"]) type[t["tensor"].get<std::string>()] = t["type"].get<std::string>();
  // 8 layers: use_more_bits(i, 8) is true for i = 0, 3, 6, 7 (first/last eighth, every third between).
  for (int i = 0; i < 8; ++i) {
    const bool more = i == 0 || i == 3 || i == 6 || i == 7;
    EXPECT_EQ(type["blk." + std::to_string(i) + ".attn_v.weight"], more ? "Q6_K" : "Q4_K") << i;
    EXPECT_EQ(type["blk." + std::to_string(i) + ".ffn_down.weight"], more ? "Q6_K" : "Q4_K") << i;
    EXPECT_EQ(type["blk." + std::to_string(i) + ".attn_q.weight"], "Q4_K") << i;
    EXPECT_EQ(type["blk." + std::to_string(i) + ".attn_norm.weight"], "F32") << i;
  }
  EXPECT_EQ(type["output.weight"], "Q6_K");
  EXPECT_EQ(type["token_embd.weight"], "Q4_K");
  const auto o = quantize("--type Q4_K_M --tensor-type attn_q=Q8_0 --out /nonexistent/x.gguf --dry-run --json");
  ASSERT_EQ(o.status, 0) << o.err;
  const json oj = json::parse(o.out);  // kept alive: a range-for over json::parse(…)["tensors"] would dangle
  int overridden = 0;
  for (const auto& t : oj["tensors"]) {
    if (t["tensor"].get<std::string>().find("attn_q.weight") != std::string::npos) {
      EXPECT_EQ(t["type"], "Q8_0");
      ++overridden;
    }
  }
  EXPECT_EQ(overridden, 8);
}

// The lattice mixes, as llama.cpp's llama_tensor_get_type picks for this model (8 layers, 8 heads over 4
// KV heads: n_gqa 2, untied head): IQ2_M is IQ2_S with IQ3_S where it matters (attention values and
// output, the first eighth of ffn_down, the embedding) and Q5_K for the head; IQ3_XS puts IQ3_XXS into q,
// k and the middle three quarters' gate and up. Only the lattice types that need an importance matrix
// are refused without one (BadInputFailsCleanly).
TEST(GgufCli, DryRunPlanOfTheLatticeMixes) {
  auto plan = [&](const std::string& mix) {
    const auto r = quantize("--type " + mix + " --out /nonexistent/x.gguf --dry-run --json");
    EXPECT_EQ(r.status, 0) << r.err;
    std::map<std::string, std::string> type;
    const json j = json::parse(r.out);
    for (const auto& t : j["tensors"]) type[t["tensor"].get<std::string>()] = t["type"].get<std::string>();
    return type;
  };
  auto t = plan("IQ2_M");
  EXPECT_EQ(t["output.weight"], "Q5_K");
  EXPECT_EQ(t["token_embd.weight"], "IQ3_S");
  for (int i = 0; i < 8; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    EXPECT_EQ(t[b + "attn_v.weight"], "IQ3_S") << i;
    EXPECT_EQ(t[b + "attn_output.weight"], "IQ3_S") << i;
    EXPECT_EQ(t[b + "ffn_down.weight"], i == 0 ? "IQ3_S" : "IQ2_S") << i;
    EXPECT_EQ(t[b + "attn_q.weight"], "IQ2_S") << i;
    EXPECT_EQ(t[b + "ffn_gate.weight"], "IQ2_S") << i;
  }
  t = plan("IQ3_XS");
  EXPECT_EQ(t["output.weight"], "Q6_K");
  for (int i = 0; i < 8; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    EXPECT_EQ(t[b + "attn_q.weight"], "IQ3_XXS") << i;
    EXPECT_EQ(t[b + "attn_k.weight"], "IQ3_XXS") << i;
    EXPECT_EQ(t[b + "attn_v.weight"], "IQ3_S") << i;  // n_gqa 2 < 4
    EXPECT_EQ(t[b + "ffn_up.weight"], i >= 1 && i < 7 ? "IQ3_XXS" : "IQ3_S") << i;
    EXPECT_EQ(t[b + "ffn_down.weight"], "IQ3_S") << i;
  }
}

// --target-bpw: the plan fills the size it is given (within the granularity of one tensor's step), uses
// several types, and the file at 4.5 bits a weight loses less than llama.cpp's IQ4_XS mix of about that
// size from the same importance matrix (measured here: KL 0.0099 vs 0.0105 on 16 wikitext2 windows; the
// probe in this test is smaller, 2 windows of 256 tokens).
TEST(GgufCli, TargetBpwFillsTheSizeAndBeatsTheNamedMix) {
  test::TempDir tmp;
  const std::string im = (tmp / "imatrix.gguf").string(), calib = test::data_file("gutenberg-calib.txt").string();
  ASSERT_EQ(test::run_quantllm("imatrix --model " + test::model_dir(kLlama).string() + " --data " + calib +
                               " --chunks 16 --out " + im).status, 0);
  const std::string probe = " --imatrix " + im + " --calib " + calib + " --nsamples 2 --seqlen 256";
  const auto plan = quantize("--target-bpw 4.0" + probe + " --out /nonexistent/x.gguf --dry-run --json");
  ASSERT_EQ(plan.status, 0) << plan.err;
  const json j = json::parse(plan.out);
  EXPECT_LE(j["bits_per_weight"].get<double>(), 4.0);
  EXPECT_GT(j["bits_per_weight"].get<double>(), 3.9);
  std::set<std::string> types;
  for (const auto& t : j["tensors"])
    if (t["note"].get<std::string>().starts_with("target")) types.insert(t["type"].get<std::string>());
  EXPECT_GE(types.size(), 2u) << "one type everywhere is a mix, not a choice";

  ASSERT_EQ(quantize("--target-bpw 4.5" + probe + " --out " + (tmp / "t.gguf").string()).status, 0);
  ASSERT_EQ(quantize("--type IQ4_XS --imatrix " + im + " --out " + (tmp / "n.gguf").string()).status, 0);
  EXPECT_LE(std::filesystem::file_size(tmp / "t.gguf"), std::filesystem::file_size(tmp / "n.gguf"));
  auto kld = [&](const std::string& f) {
    const auto r = test::run_quantllm("eval kld --base " + test::model_dir(kLlama).string() + " --model " +
                                      (tmp / f).string() + " --data " + test::data_file("wikitext2-test.raw").string() +
                                      " --max-windows 8 --json");
    EXPECT_EQ(r.status, 0) << r.err;
    return r.status == 0 ? json::parse(r.out)["kld"].get<double>() : 1.0;
  };
  const double ours = kld("t.gguf"), theirs = kld("n.gguf");
  std::printf("KL divergence, 8 wikitext2 windows: --target-bpw 4.5 %.5f, IQ4_XS %.5f\n", ours, theirs);
  EXPECT_LT(ours, theirs);

  for (const auto& [args, needle] : {std::pair{std::string("--target-bpw 3.5 --type Q4_K_M") + probe, "--type"},
                                     std::pair{std::string("--target-bpw 3.5 --imatrix ") + im, "--calib"},
                                     std::pair{std::string("--target-bpw 0.5") + probe, "between 1.5 and 16"}}) {
    const auto r = quantize(args + " --out " + (tmp / "bad.gguf").string());
    EXPECT_EQ(r.status, 1) << args;
    EXPECT_EQ(test::count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(tmp / "bad.gguf"));
  }
}

TEST(GgufCli, BadInputFailsCleanly) {
  test::TempDir tmp;
  const auto out = tmp / "x.gguf";
  auto expect_clean_failure = [&](const test::RunResult& r, const std::string& needle) {
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_EQ(test::count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(out));
    for (const auto& e : std::filesystem::directory_iterator(tmp.path))
      EXPECT_EQ(e.path().filename().string().find(".x.gguf.tmp"), std::string::npos) << "partial file left";
  };
  expect_clean_failure(quantize("--type Q9_K --out " + out.string()), "Q9_K");
  expect_clean_failure(quantize("--type Q4_K_M --tensor-type attn_q=Q7 --out " + out.string()), "Q7");
  // llama.cpp's rule: below ~3 bits a weight, the lattice types are written only from an importance matrix.
  expect_clean_failure(quantize("--type IQ2_XXS --out " + out.string()), "importance matrix");
  expect_clean_failure(quantize("--type IQ1_M --out " + out.string()), "blk.0.attn_q.weight would be IQ1_M");
  // An importance matrix of another model: OPT's, whose tensors llama does not have.
  const auto im = test::run_quantllm("imatrix --model " + test::model_dir("gutenberg-opt-28m").string() + " --data " +
                                     test::data_file("gutenberg-calib.txt").string() + " --chunks 1 --out " +
                                     (tmp / "opt-imatrix.gguf").string());
  ASSERT_EQ(im.status, 0) << im.err;
  expect_clean_failure(quantize("--type Q4_K_M --imatrix " + (tmp / "opt-imatrix.gguf").string() + " --out " +
                                out.string()),
                       "another model");
  expect_clean_failure(quantize("--type Q4_K_M --out /proc/quantllm-test/x.gguf"), "/proc/quantllm-test/x.gguf");
  // An existing output is not overwritten without --force.
  { std::ofstream(out) << "keep"; }
  const auto r = quantize("--type Q8_0 --out " + out.string());
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(test::read_all(out), "keep");
}

// llama3 RoPE scaling (Llama 3.1 and later) goes into GGUF as llama.cpp's converter writes it: a
// tensor rope_freqs.weight of per-frequency divisors. The divisors are checked against transformers'
// formulation of the same scaling (new frequency = (1 − s)·f/factor + s·f between the bands), and the
// GGUF read back computes the same logits as the Hugging Face directory.
TEST(GgufCli, Llama3RopeScalingWritesRopeFreqs) {
  test::TempDir tmp;
  test::SyntheticSpec s;  // head_dim 24, original context 64: all three bands of the scaling occur
  s.hidden = 64, s.heads = 4, s.kv_heads = 2, s.head_dim = 24, s.ffn = 96;
  s.llama3 = test::Llama3Rope{8.0, 1.0, 4.0, 64};
  s.dtype = "float32";
  s.seed = 31;
  test::write_model(tmp / "hf", s, test::random_tensors(s));
  const auto r = test::run_quantllm("quantize --model " + (tmp / "hf").string() + " --method gguf --type F32 --out " +
                                    (tmp / "m.gguf").string());
  ASSERT_EQ(r.status, 0) << r.err;

  const GGUFFile f(tmp / "m.gguf");
  const GGUFTensorInfo* t = f.find_tensor("rope_freqs.weight");
  ASSERT_NE(t, nullptr);
  ASSERT_EQ(t->ne, std::vector<int64_t>{12});
  std::vector<float> got(12);
  std::memcpy(got.data(), t->data, sizeof(float) * 12);
  int bands[3] = {0, 0, 0};
  for (int i = 0; i < 12; ++i) {
    const double f0 = 1.0 / std::pow(10000.0, 2.0 * i / 24), wavelen = 2 * M_PI / f0;
    const double low = 64 / 1.0, high = 64 / 4.0, smooth = (64 / wavelen - 1.0) / (4.0 - 1.0);
    const double f_new = wavelen < high ? f0 : wavelen > low ? f0 / 8.0 : (1 - smooth) * f0 / 8.0 + smooth * f0;
    EXPECT_NEAR(got[size_t(i)], f0 / f_new, 1e-5 * (f0 / f_new)) << i;
    ++bands[wavelen < high ? 0 : wavelen > low ? 2 : 1];
  }
  EXPECT_GT(bands[0], 0);
  EXPECT_GT(bands[1], 0);
  EXPECT_GT(bands[2], 0);
  const LoadedModel hf = open_model(tmp / "hf"), gg = open_model(tmp / "m.gguf");
  EXPECT_TRUE(gg.config.rope_freq_factors.size() == 12u);
  const FullModel a(hf), b(gg);
  std::vector<int32_t> tokens;
  for (int i = 0; i < 100; ++i) tokens.push_back(int32_t(1 + (i * 37) % 7000));  // positions beyond 64 too
  Tensor la, lb;
  a.forward(tokens, 1, 100, [&](int64_t, const Tensor& l) { la = l; });
  b.forward(tokens, 1, 100, [&](int64_t, const Tensor& l) { lb = l; });
  double diff = 0, norm = 0;
  for (size_t k = 0; k < la.data.size(); ++k) diff += std::pow(la.data[k] - lb.data[k], 2), norm += std::pow(la.data[k], 2);
  EXPECT_LT(std::sqrt(diff / norm), 1e-5);  // fp32 forward both ways; divisors stored as f32
}

// gguf --gptq: GPTQ's error feedback into the GGML blocks of the same Q4_K_M plan. The file has the
// imatrix file's tensors in the same types; every matrix read back is close to the bf16 one row for row
// (llama.cpp's q/k row permutation applied to the rounded rows: a row out of place would be ~√2 off);
// its KL divergence on held-out text is below llama.cpp's imatrix quant calibrated on the same text.
TEST(GgufCli, GptqIntoBlocksKeepsRowsAndBeatsTheImatrixQuant) {
  test::TempDir tmp;
  const std::string calib = test::data_file("gutenberg-calib.txt").string();
  const auto im = test::run_quantllm("imatrix --model " + test::model_dir(kLlama).string() + " --data " + calib +
                                     " --chunks 16 --ctx 256 --out " + (tmp / "imatrix.gguf").string());
  ASSERT_EQ(im.status, 0) << im.err;
  const auto qi = quantize("--type Q4_K_M --imatrix " + (tmp / "imatrix.gguf").string() + " --out " + (tmp / "i.gguf").string());
  ASSERT_EQ(qi.status, 0) << qi.err;
  const auto qg = quantize("--type Q4_K_M --gptq --calib " + calib + " --nsamples 16 --seqlen 256 --out " +
                           (tmp / "g.gguf").string());
  ASSERT_EQ(qg.status, 0) << qg.err;
  {  // the same tensors in the same types (the files differ only by the imatrix's metadata keys)
    const GGUFFile fi(tmp / "i.gguf"), fg(tmp / "g.gguf");
    ASSERT_EQ(fi.tensors().size(), fg.tensors().size());
    for (size_t k = 0; k < fi.tensors().size(); ++k) {
      EXPECT_EQ(fi.tensors()[k].name, fg.tensors()[k].name);
      EXPECT_EQ(fi.tensors()[k].type, fg.tensors()[k].type) << fi.tensors()[k].name;
    }
  }

  const LoadedModel hf = open_model(test::model_dir(kLlama)), gg = open_model(tmp / "g.gguf");
  for (const std::string layer : {"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj",
                                  "model.layers.7.self_attn.v_proj", "model.layers.7.mlp.down_proj"}) {
    const Tensor a = hf.weights->load(layer + ".weight"), b = gg.weights->load(layer + ".weight");
    ASSERT_EQ(a.shape, b.shape) << layer;
    for (int64_t r = 0; r < a.dim(0); ++r) {
      double diff = 0, norm = 0;
      for (int64_t c = 0; c < a.dim(1); ++c) {
        const double x = a.data[size_t(r * a.dim(1) + c)], y = b.data[size_t(r * a.dim(1) + c)];
        diff += (x - y) * (x - y), norm += x * x;
      }
      ASSERT_LT(std::sqrt(diff / norm), 0.25) << layer << " row " << r;  // 4–6 bits: ~0.05–0.1 a row
    }
  }
  auto kld = [&](const std::string& file) {
    const auto r = test::run_quantllm("eval kld --base " + test::model_dir(kLlama).string() + " --model " +
                                      (tmp / file).string() + " --data " +
                                      test::data_file("gutenberg-heldout.txt").string() + " --max-windows 16 --no-cache --json");
    EXPECT_EQ(r.status, 0) << r.err;
    return json::parse(r.out)["kld"].get<double>();
  };
  const double ki = kld("i.gguf"), kg = kld("g.gguf");
  std::printf("heldout KL divergence, 16 windows: imatrix %.5f, gptq %.5f\n", ki, kg);
  EXPECT_LT(kg, ki);

  // Options that do not combine with --gptq: one line each.
  for (const std::string bad : {"--imatrix " + (tmp / "imatrix.gguf").string(), std::string("--act-order")}) {
    const auto r = quantize("--type Q4_K_M --gptq " + bad + " --out " + (tmp / "x.gguf").string());
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_EQ(test::count_lines(r.err), 1) << r.err;
    EXPECT_FALSE(std::filesystem::exists(tmp / "x.gguf"));
  }
}
