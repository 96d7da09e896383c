// Bad input to `quantllm quantize`, as a user meets it: group sizes that do not divide a layer's
// input, bit widths outside 2..8, calibration text shorter than one window, Hessians that damping
// cannot rescue, and NaN / Inf in a weight. Every failure must end with exit status 1 and exactly one
// "quantllm: error: ..." line that names the flag, file or tensor, and must leave nothing behind: no
// output directory or file, and no temporary sibling (".NAME.tmp.PID") in the output's parent.
//
// The checkpoints are small synthetic Llama models (tests/support/synthetic.h), so even the cases
// that fail deep inside GPTQ or AWQ run in a second or two; the flag and calibration cases, which
// fail before any heavy work, use the real reference Llama model as well.
#include "support/run.h"
#include "support/synthetic.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

using namespace quantllm;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

const std::string kDown = "model.layers.1.mlp.down_proj.weight";

class QuantizeBadInput : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new test::TempDir;
    spec_.family = test::Family::Llama;
    spec_.hidden = 64, spec_.heads = 4, spec_.kv_heads = 2, spec_.ffn = 96, spec_.layers = 2;
    tensors_ = new test::TensorMap(test::random_tensors(spec_));
    std::string text;
    for (int i = 0; i < 200; ++i)
      text += "Line " + std::to_string(i) + " of a small calibration text for a small synthetic model.\n";
    std::ofstream(*tmp_ / "calib.txt") << text;
  }
  static void TearDownTestSuite() {
    delete tensors_;
    delete tmp_;
  }

  // A synthetic checkpoint written from `tensors` (default: the intact random ones).
  static fs::path model(const std::string& name, const test::TensorMap* tensors = nullptr) {
    const fs::path dir = *tmp_ / name;
    fs::remove_all(dir);
    test::write_model(dir, spec_, tensors ? *tensors : *tensors_);
    return dir;
  }
  static fs::path llama() { return test::model_dir("gutenberg-llama-33m"); }
  static fs::path calib() { return *tmp_ / "calib.txt"; }

  // `quantllm quantize --model M --out PARENT/NAME ARGS` into a fresh, empty parent directory.
  struct Run {
    test::RunResult r;
    std::shared_ptr<test::TempDir> parent;
    fs::path out;
  };
  static Run quantize(const fs::path& m, const std::string& args, const std::string& out_name = "q") {
    Run run;
    run.parent = std::make_shared<test::TempDir>();
    run.out = *run.parent / out_name;
    run.r = test::run_quantllm("quantize --threads 1 --model '" + m.string() + "' --out '" + run.out.string() + "' " + args);
    return run;
  }
  // Small calibration for the methods that need it (ignored by rtn without --awq-scale).
  static std::string small_calib(const std::string& method) {
    if (method == "rtn") return "";
    return "--calib '" + calib().string() + "' --nsamples 4 --seqlen 32";
  }

  // Exit 1, nothing on stdout, one "quantllm: error: " line containing every `mention`, and the
  // output's parent directory as empty as it was before the run.
  static void expect_user_error(const Run& run, const std::vector<std::string>& mentions) {
    const auto& r = run.r;
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_EQ(test::count_lines(r.err), 1) << r.err;
    EXPECT_EQ(r.err.rfind("quantllm: error: ", 0), 0u) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
    for (const auto& m : mentions) EXPECT_NE(r.err.find(m), std::string::npos) << "'" << m << "' not in: " << r.err;
    EXPECT_FALSE(fs::exists(run.out)) << run.out;
    std::vector<std::string> left;
    for (const auto& e : fs::directory_iterator(run.parent->path)) left.push_back(e.path().filename().string());
    EXPECT_TRUE(left.empty()) << "left behind in the output's directory: " << ::testing::PrintToString(left);
  }

  static inline test::TempDir* tmp_ = nullptr;
  static inline test::SyntheticSpec spec_;
  static inline test::TensorMap* tensors_ = nullptr;
};

TEST_F(QuantizeBadInput, IntactSyntheticModelQuantizes) {
  // The baseline the damaged copies start from goes through every method.
  const auto dir = model("intact");
  for (const std::string method : {"rtn", "gptq", "awq"}) {
    SCOPED_TRACE(method);
    const auto run = quantize(dir, "--method " + method + " --group-size 32 " + small_calib(method));
    EXPECT_EQ(run.r.status, 0) << run.r.err;
    EXPECT_TRUE(fs::exists(run.out / "model.safetensors"));
  }
  const auto run = quantize(dir, "--method gguf --type Q8_0", "q.gguf");
  EXPECT_EQ(run.r.status, 0) << run.r.err;
  EXPECT_TRUE(fs::exists(run.out));
}

TEST_F(QuantizeBadInput, GroupSizeThatDoesNotDivideTheInputSize) {
  for (const std::string method : {"rtn", "gptq", "awq"}) {
    SCOPED_TRACE(method);
    // Llama-33m: 100 divides neither hidden 512 nor the FFN's 1536; the first layer is named.
    expect_user_error(quantize(llama(), "--method " + method + " --group-size 100 " +
                                            "--calib '" + calib().string() + "' --nsamples 4 --seqlen 32"),
                      {"model.layers.0.self_attn.q_proj.weight", "group size 100", "512"});
    // Synthetic: 64 divides hidden 64 but not the FFN's 96, so down_proj is the layer that fails.
    expect_user_error(quantize(model("gs-" + method), "--method " + method + " --group-size 64 " + small_calib(method)),
                      {"mlp.down_proj.weight", "group size 64", "96"});
    expect_user_error(quantize(llama(), "--method " + method + " --group-size 0 " + small_calib(method)),
                      {"group size 0"});
  }
}

TEST_F(QuantizeBadInput, BitsOutsideTwoToEight) {
  for (const std::string method : {"rtn", "gptq", "awq"})
    for (const std::string bits : {"9", "1", "0", "-4"}) {
      SCOPED_TRACE(method + " --bits " + bits);
      expect_user_error(quantize(llama(), "--method " + method + " --bits " + bits + " " + small_calib(method)),
                        {"--bits", bits});
    }
}

TEST_F(QuantizeBadInput, BitsOrGroupSizeWithAGgufType) {
  // A GGUF type fixes its bits and block size; the flags would be silently ignored otherwise.
  expect_user_error(quantize(llama(), "--method gguf --type Q4_K_M --bits 3", "q.gguf"), {"--bits", "--type"});
  expect_user_error(quantize(llama(), "--method gguf --type Q8_0 --group-size 64", "q.gguf"), {"--group-size"});
}

TEST_F(QuantizeBadInput, CalibrationShorterThanOneWindow) {
  const fs::path tiny = *tmp_ / "tiny-calib.txt";
  std::ofstream(tiny) << "A calibration text of a dozen tokens or so.\n";
  for (const std::string method : {"gptq", "awq"}) {
    SCOPED_TRACE(method);
    expect_user_error(quantize(llama(), "--method " + method + " --calib '" + tiny.string() + "' --nsamples 4 --seqlen 512"),
                      {tiny.string(), "512"});
  }
  {
    SCOPED_TRACE("rtn --awq-scale");
    expect_user_error(quantize(llama(), "--method rtn --awq-scale --calib '" + tiny.string() + "' --nsamples 4 --seqlen 512"),
                      {tiny.string(), "512"});
  }
  {
    SCOPED_TRACE("empty file");
    const fs::path empty = *tmp_ / "empty-calib.txt";
    std::ofstream{empty};
    expect_user_error(quantize(llama(), "--method gptq --calib '" + empty.string() + "' --seqlen 512"), {empty.string()});
  }
  {
    SCOPED_TRACE("missing file");
    const fs::path missing = *tmp_ / "no-such-calib.txt";
    expect_user_error(quantize(llama(), "--method gptq --calib '" + missing.string() + "'"), {missing.string()});
  }
  {
    SCOPED_TRACE("no --calib");
    expect_user_error(quantize(llama(), "--method gptq"), {"--calib"});
  }
}

// GPTQ's Hessian H = 2XᵀX/n is positive semidefinite by construction. Inputs that are zero in every
// calibration token make it singular; the reference's remedy (H[i,i] = 1, W[:, i] = 0 for a dead
// input i, then damping) makes every such H positive definite, so the run succeeds and says which
// inputs were dead. The damping schedule (gptq.h) can only give up on an H that is not PSD, and the
// only way the pipeline produces one is non-finite activations, which are refused before damping:
// see NonFiniteCalibrationActivations.
TEST_F(QuantizeBadInput, DeadInputsMakeASingularHessianThatGptqHandles) {
  auto t = *tensors_;
  // Channel 5 of block 0's attention input is zero in every token (a zero RMSNorm gain), and input
  // 7 of block 1's down_proj never fires (gate_proj row 7 is zero, so silu(0)·up = 0).
  t["model.layers.0.input_layernorm.weight"].v[5] = 0.0f;
  auto& gate = t["model.layers.1.mlp.gate_proj.weight"];
  for (int64_t j = 0; j < spec_.hidden; ++j) gate.v[size_t(7 * spec_.hidden + j)] = 0.0f;
  const auto dir = model("dead-inputs", &t);
  const auto run = quantize(dir, "--method gptq --group-size 32 --json " + small_calib("gptq"));
  ASSERT_EQ(run.r.status, 0) << run.r.err;
  EXPECT_TRUE(fs::exists(run.out / "model.safetensors"));
  const json j = json::parse(run.r.out);
  for (const char* l : {"q_proj", "k_proj", "v_proj"}) {
    const std::string name = std::string("model.layers.0.self_attn.") + l;
    EXPECT_EQ(j["layers"][name]["dead_inputs"], 1) << name;
    EXPECT_EQ(j["layers"][name]["damp"], 0.01) << name;  // no extra damping was needed
    EXPECT_NE(run.r.err.find(name + ": 1 of 64 inputs"), std::string::npos) << run.r.err;
  }
  EXPECT_EQ(j["layers"]["model.layers.1.mlp.down_proj"]["dead_inputs"], 1);
  EXPECT_NE(run.r.err.find("model.layers.1.mlp.down_proj: 1 of 96 inputs"), std::string::npos) << run.r.err;
  EXPECT_EQ(j["layers"]["model.layers.1.mlp.up_proj"]["dead_inputs"], 0);
  for (const auto& [name, s] : j["layers"].items()) EXPECT_TRUE(std::isfinite(s["relative_error"].get<double>())) << name;
}

TEST_F(QuantizeBadInput, NonFiniteCalibrationActivations) {
  {
    // Finite weights whose activations overflow: a norm gain of 2^100 makes block 0's MLP inputs
    // about 1e30, whose products in XᵀX overflow fp32.
    SCOPED_TRACE("overflow");
    auto t = *tensors_;
    for (float& v : t["model.layers.0.post_attention_layernorm.weight"].v) v = std::ldexp(1.0f, 100);
    const auto dir = model("overflow", &t);
    expect_user_error(quantize(dir, "--method gptq --group-size 32 " + small_calib("gptq")),
                      {"model.layers.0.mlp.gate_proj", "Hessian", "not finite"});
    // AWQ's scale search meets the overflow as infinite output errors for every candidate.
    expect_user_error(quantize(dir, "--method awq --group-size 32 " + small_calib("awq")),
                      {"model.layers.0.ffn", "finite"});
  }
  {
    // NaN in a tensor that is not quantized but that the calibration pass runs through.
    SCOPED_TRACE("NaN norm gain");
    auto t = *tensors_;
    t["model.layers.1.input_layernorm.weight"].v[3] = std::numeric_limits<float>::quiet_NaN();
    const auto dir = model("nan-norm", &t);
    for (const std::string method : {"gptq", "awq"}) {
      SCOPED_TRACE(method);
      expect_user_error(quantize(dir, "--method " + method + " --group-size 32 " + small_calib(method)),
                        {"model.layers.1.input_layernorm.weight"});
    }
  }
  {
    // The token embedding: the calibration windows' hidden states are NaN from the start.
    SCOPED_TRACE("NaN embedding");
    auto t = *tensors_;
    for (float& v : t["model.embed_tokens.weight"].v) v = std::numeric_limits<float>::quiet_NaN();
    const auto dir = model("nan-embed", &t);
    for (const std::string method : {"gptq", "awq"}) {
      SCOPED_TRACE(method);
      expect_user_error(quantize(dir, "--method " + method + " --group-size 32 " + small_calib(method)),
                        {"model.embed_tokens.weight"});
    }
  }
}

TEST_F(QuantizeBadInput, NanOrInfInAWeight) {
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity()}) {
    auto t = *tensors_;
    t[kDown].v[37] = bad;
    const auto dir = model("nonfinite-weight", &t);
    for (const std::string method : {"rtn", "gptq", "awq"}) {
      SCOPED_TRACE(method + " " + std::to_string(bad));
      expect_user_error(quantize(dir, "--method " + method + " --group-size 32 " + small_calib(method)), {kDown});
    }
    for (const std::string type : {"Q4_K_M", "Q8_0", "F16"}) {
      SCOPED_TRACE("gguf " + type + " " + std::to_string(bad));
      expect_user_error(quantize(dir, "--method gguf --type " + type, "q.gguf"), {kDown});
    }
  }
}

TEST_F(QuantizeBadInput, NanInATensorThatIsNotQuantizedButWritten) {
  // RTN copies norms and embeddings as they are: a NaN there must not reach the output silently
  // (the GGUF writer refuses it too).
  auto t = *tensors_;
  const std::string norm = "model.norm.weight";
  t[norm].v[2] = std::numeric_limits<float>::quiet_NaN();
  const auto dir = model("nan-final-norm", &t);
  expect_user_error(quantize(dir, "--method rtn --group-size 32"), {norm});
  expect_user_error(quantize(dir, "--method gguf --type Q8_0", "q.gguf"), {norm});
}

}  // namespace
