// Every checkpoint format we write, read back by two readers, against the weights the method produced:
//  - methods (RTN, GPTQ with act-order and static groups, AWQ) × formats (gptq, gptq_v2, awq_gemm,
//    compressed-tensors) × widths (2, 3, 4, 8) × symmetric / asymmetric × group sizes (32, 64, 128, per
//    channel), on the dense Llama and the Qwen3-MoE reference model (experts one module each);
//  - reader 1, ours (src/formats): every layer dequantizes to exactly the in-memory result's weights, and
//    perplexity is identical;
//  - reader 2, tests/reference/read_quantized.py (Python + NumPy, written from the format descriptions
//    alone): its dense fp32 directory holds exactly the same weights.
#include "quantllm/quantllm.h"

#include "formats/quantized_model.h"
#include "model/weights.h"
#include "support/reference.h"
#include "support/run.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace quantllm;

namespace {

struct Case {
  std::string model, method;
  int bits, group_size;
  bool sym = false, act_order = false, static_groups = false;
  std::vector<std::string> formats;
};

std::string python() { return std::filesystem::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3"; }

void expect_same_weights(const Model& want, const Model& got, const std::string& what) {
  const WeightSource& a = *want.loaded().weights;
  const WeightSource& b = *got.loaded().weights;
  auto names_a = a.names(), names_b = b.names();
  ASSERT_EQ(names_a, names_b) << what;
  for (const auto& n : names_a) {
    const Tensor x = a.load(n), y = b.load(n);
    ASSERT_EQ(x.shape, y.shape) << what << " " << n;
    ASSERT_TRUE(x.data == y.data) << what << ": tensor " << n << " differs";
  }
}

double first_windows_nll(const Model& m) {
  return perplexity(m, test::data_file("gutenberg-heldout.txt"), {.ctx = 256, .max_windows = 2, .engine = "fp32"}).nll;
}

}  // namespace

TEST(FormatRoundTrip, EveryMethodFormatAndWidthReadsBackExactlyByBothReaders) {
  const std::vector<Case> cases = {
      {"gutenberg-llama-33m", "rtn", 4, 128, false, false, false, {"gptq", "gptq_v2", "awq_gemm", "compressed-tensors"}},
      {"gutenberg-llama-33m", "rtn", 8, -1, true, false, false, {"gptq", "compressed-tensors"}},
      {"gutenberg-llama-33m", "rtn", 3, 128, false, false, false, {"gptq", "compressed-tensors"}},
      {"gutenberg-llama-33m", "rtn", 2, 32, true, false, false, {"gptq_v2", "compressed-tensors"}},
      {"gutenberg-llama-33m", "gptq", 4, 64, false, true, false, {"gptq", "compressed-tensors"}},
      {"gutenberg-llama-33m", "gptq", 4, 32, true, true, true, {"gptq_v2", "compressed-tensors"}},
      {"gutenberg-llama-33m", "gptq", 8, 128, false, false, false, {"compressed-tensors"}},
      {"gutenberg-llama-33m", "awq", 4, 128, false, false, false, {"awq_gemm", "compressed-tensors"}},
      {"gutenberg-llama-33m", "awq", 4, 64, true, false, false, {"awq_gemm", "compressed-tensors"}},
      {"gutenberg-qwen3moe-21m", "rtn", 4, 128, false, false, false, {"gptq", "compressed-tensors"}},
  };
  test::TempDir tmp;
  for (const Case& c : cases) {
    if (!std::filesystem::exists(test::model_dir(c.model))) continue;
    const Model m = load_model(test::model_dir(c.model));
    QuantizeRequest r;
    r.method = c.method;
    r.bits = c.bits;
    r.group_size = c.group_size;
    r.sym = c.sym;
    r.gptq.act_order = c.act_order;
    r.gptq.static_groups = c.static_groups;
    if (c.method != "rtn") {
      r.calib.source = test::data_file("gutenberg-calib.txt").string();
      r.calib.nsamples = 4;
      r.calib.seqlen = 128;
    }
    const QuantizedResult q = quantize_in_memory(m, r);
    const Model view = q.as_model();
    const double nll = first_windows_nll(view);
    for (const std::string& f : c.formats) {
      const std::string what = fmt::format("{} {} w{} g{}{}{}{} as {}", c.model, c.method, c.bits, c.group_size,
                                           c.sym ? " sym" : "", c.act_order ? " act-order" : "",
                                           c.static_groups ? " static" : "", f);
      SCOPED_TRACE(what);
      const auto dir = tmp / (c.method + std::to_string(c.bits) + "-" + f);
      save_quantized(q.result(), dir, parse_hf_quant_format(f), true);
      const Model back = load_model(dir);
      expect_same_weights(view, back, what + ", our reader");
      EXPECT_EQ(first_windows_nll(back), nll);
      const auto dense = tmp / ("dense-" + c.method + std::to_string(c.bits) + "-" + f);
      const auto py = test::run_command(python() + " " + (std::filesystem::path(QUANTLLM_SOURCE_DIR) / "tests/reference/read_quantized.py").string() +
                                        " " + dir.string() + " " + dense.string());
      ASSERT_EQ(py.status, 0) << py.err;
      expect_same_weights(view, load_model(dense), what + ", the second reader");
      if (f == "compressed-tensors") {  // what vLLM reads to pick its kernels and skip the unquantized linears
        const auto qc = nlohmann::json::parse(test::read_all(dir / "config.json"))["quantization_config"];
        const auto& w = qc["config_groups"]["group_0"]["weights"];
        EXPECT_EQ(w["num_bits"], c.bits);
        EXPECT_EQ(w["symmetric"], c.sym);
        EXPECT_EQ(w["strategy"], c.group_size > 0 ? "group" : "channel");
        EXPECT_EQ(w["actorder"], !c.act_order ? nlohmann::json(nullptr) : c.static_groups ? nlohmann::json("weight")
                                                                                         : nlohmann::json("group"));
        const auto ignore = qc["ignore"].get<std::vector<std::string>>();
        EXPECT_EQ(ignore.front(), "lm_head");
        if (c.model == "gutenberg-qwen3moe-21m")  // the routers of the three MoE layers stay dense
          EXPECT_EQ(ignore, (std::vector<std::string>{"lm_head", "model.layers.1.mlp.gate", "model.layers.2.mlp.gate",
                                                      "model.layers.3.mlp.gate"}));
      }
    }
  }
}

TEST(FormatRoundTrip, InspectNamesTheServingKernelsAndWarnsOffTheFastPath) {
  // Facts of vLLM's kernel selection (formats/serving.cpp): Marlin takes symmetric GPTQ and AWQ with zero
  // points at 4/8 bits in groups of 32/64/128; compressed-tensors WNA16 takes 4 and 8 bits only.
  test::TempDir tmp;
  const Model m = load_model(test::model_dir("gutenberg-llama-33m"));
  struct Want {
    std::string format;
    int bits;
    bool sym;
    std::string first;  // the start of the first note
  };
  for (const Want& w : std::vector<Want>{{"gptq", 4, true, "vLLM / SGLang: gptq_marlin"},
                                         {"gptq", 4, false, "warning: vLLM / SGLang run this with the exllama"},
                                         {"awq_gemm", 4, false, "vLLM / SGLang: awq_marlin"},
                                         {"compressed-tensors", 8, true, "vLLM / SGLang: compressed-tensors WNA16"},
                                         {"compressed-tensors", 3, true, "warning: vLLM's compressed-tensors WNA16 scheme takes 4 or 8"}}) {
    QuantizeRequest r;
    r.method = "rtn", r.bits = w.bits, r.sym = w.sym;
    const auto dir = tmp / (w.format + std::to_string(w.bits) + (w.sym ? "s" : "a"));
    save_quantized(quantize_in_memory(m, r).result(), dir, parse_hf_quant_format(w.format), true);
    const auto notes = load_model(dir).info().serving;
    ASSERT_FALSE(notes.empty()) << dir;
    EXPECT_EQ(notes.front().rfind(w.first, 0), 0u) << notes.front();
  }
  EXPECT_TRUE(m.info().serving.empty());  // a full-precision directory
}

TEST(FormatRoundTrip, Fp8SourceAndWriterReadBackExactlyByBothReaders) {
  test::TempDir tmp;
  const auto src = test::model_dir("gutenberg-llama-33m");
  const std::string py = python() + " " + (std::filesystem::path(QUANTLLM_SOURCE_DIR)).string();
  // 1. A Hub-style FP8 checkpoint (128 × 128 block scales) made by tools/fp8_checkpoint.py: our reader and
  //    the second reader dequantize it to the same weights; GPTQ takes it as its source.
  auto r = test::run_command(py + "/tools/fp8_checkpoint.py " + src.string() + " " + (tmp / "hub").string());
  ASSERT_EQ(r.status, 0) << r.err;
  r = test::run_command(py + "/tests/reference/read_quantized.py " + (tmp / "hub").string() + " " + (tmp / "hub-dense").string());
  ASSERT_EQ(r.status, 0) << r.err;
  const Model hub = load_model(tmp / "hub");
  EXPECT_EQ(hub.kind(), "fp8");
  expect_same_weights(load_model(tmp / "hub-dense"), hub, "Hub FP8");
  const double nll_hub = first_windows_nll(hub);
  EXPECT_EQ(first_windows_nll(load_model(tmp / "hub-dense")), nll_hub);
  QuantizeRequest g;
  g.method = "gptq", g.gptq.act_order = true;
  g.calib.source = test::data_file("gutenberg-calib.txt").string(), g.calib.nsamples = 4, g.calib.seqlen = 128;
  const QuantizedResult q = quantize_in_memory(hub, g);
  const double nll_gptq = first_windows_nll(q.as_model());
  EXPECT_TRUE(std::isfinite(nll_gptq));
  EXPECT_LT(nll_gptq, nll_hub + 0.1);  // 4-bit GPTQ of the FP8 weights: a small loss, not a broken model

  // 2. --method fp8 (compressed-tensors float-quantized, per-channel scales): both readers agree, and every
  //    weight is within e4m3's rounding of the original: 2^-4 of its value (3 mantissa bits, half an ulp)
  //    or, below the normal range, half the subnormal step 2^-9 times the row's scale.
  QuantizeRequest f;
  f.method = "fp8", f.out = tmp / "fp8", f.model = src;
  quantize(f);
  r = test::run_command(py + "/tests/reference/read_quantized.py " + (tmp / "fp8").string() + " " + (tmp / "fp8-dense").string());
  ASSERT_EQ(r.status, 0) << r.err;
  const Model fp8 = load_model(tmp / "fp8");
  expect_same_weights(load_model(tmp / "fp8-dense"), fp8, "--method fp8");
  const Model base = load_model(src);
  for (const auto& n : {"model.layers.0.self_attn.q_proj.weight", "model.layers.7.mlp.down_proj.weight"}) {
    const Tensor w = base.loaded().weights->load(n), d = fp8.loaded().weights->load(n);
    const int64_t out = w.dim(0), in = w.dim(1);
    for (int64_t row = 0; row < out; ++row) {
      float amax = 0;
      for (int64_t k = 0; k < in; ++k) amax = std::max(amax, std::fabs(w.data[size_t(row * in + k)]));
      const float s = amax / 448.0f;
      for (int64_t k = 0; k < in; ++k) {
        const float x = w.data[size_t(row * in + k)], y = d.data[size_t(row * in + k)];
        ASSERT_LE(std::fabs(y - x), std::max(std::ldexp(std::fabs(x), -4), std::ldexp(s, -10)) * (1 + 1e-6f))
            << n << " [" << row << ", " << k << "]: " << x << " → " << y;
      }
    }
  }
}
