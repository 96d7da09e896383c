// The public C++ API (include/quantllm) against the CLI and against reference.json:
//  - GPTQQuantizer(rtn) and GGUFQuantizer write the same bytes as `quantllm quantize`;
//  - a saved GPTQ directory, read back, reproduces the quantized weights exactly;
//  - RTN w4g128 / w3g128 perplexity on the first 16 wikitext2 windows equals the reference
//    implementation's (reference.json first_windows, computed independently in PyTorch) within 0.1%:
//    round-to-nearest is deterministic, so only fp32 accumulation order separates the two;
//  - GPTQ (16 calibration windows, act-order) beats RTN's layer-wise objective on every layer, stays near
//    the reference GPTQ at 4 bits and removes most of RTN's loss at 3 bits.
#include "quantllm/quantllm.h"

#include "formats/quantized_model.h"
#include "model/weights.h"
#include "support/reference.h"
#include "support/run.h"

#include <gtest/gtest.h>

using namespace quantllm;

namespace {

const std::string kLlama = "gutenberg-llama-33m";

double first16(const Model& m) {
  return perplexity(m, test::data_file("wikitext2-test.raw"), {.ctx = 512, .max_windows = 16, .engine = "fp32"}).ppl;
}

double ref_first16(const std::string& variant) {
  return test::reference(kLlama)["first_windows"]["results"][variant]["wikitext2_test"]["first16"].get<double>();
}

}  // namespace

TEST(Api, RtnMatchesCliBytesAndRoundTripsExactly) {
  test::TempDir tmp;
  const Model m = load_model(test::model_dir(kLlama));
  GPTQQuantizer q(m, {.bits = 4, .group_size = 128, .rtn = true});
  const auto qm = q.quantize();
  qm.save(tmp / "api");
  const auto r = test::run_quantllm("quantize --model " + test::model_dir(kLlama).string() + " --method rtn --out " +
                                    (tmp / "cli").string());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(test::read_all(tmp / "api" / "model.safetensors"), test::read_all(tmp / "cli" / "model.safetensors"));
  // Read back: every quantized layer dequantizes to exactly the weights the quantizer produced.
  const Model back = load_model(tmp / "api");
  EXPECT_EQ(back.kind(), "gptq");
  const Model view = qm.as_model();
  for (const auto& [name, layer] : qm.result().layers) {
    const Tensor a = back.loaded().weights->load(name + ".weight"), b = view.loaded().weights->load(name + ".weight");
    ASSERT_EQ(a.data, b.data) << name;
  }
}

TEST(Api, GgufQuantizerMatchesCliBytes) {
  test::TempDir tmp;
  const Model m = load_model(test::model_dir(kLlama));
  GGUFConfig cfg;
  cfg.type = "Q4_K_M";
  GGUFQuantizer q(m, cfg);
  q.quantize();
  q.convert_to_gguf(tmp / "api.gguf");
  const auto r = test::run_quantllm("quantize --model " + test::model_dir(kLlama).string() +
                                    " --method gguf --type Q4_K_M --out " + (tmp / "cli.gguf").string());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(test::read_all(tmp / "api.gguf"), test::read_all(tmp / "cli.gguf"));
  GGUFConfig bad;
  bad.type = "Q9_X";
  EXPECT_THROW(GGUFQuantizer(m, bad), Error);
}

// A size target through the API: the same file as `quantize --target-bpw` (one short probe window each).
TEST(Api, GgufQuantizerTargetBpwMatchesCliBytes) {
  test::TempDir tmp;
  const Model m = load_model(test::model_dir(kLlama));
  const std::string calib = test::data_file("gutenberg-calib.txt").string();
  GGUFConfig cfg;
  cfg.target_bpw = 4.5;
  cfg.nsamples = 1;
  cfg.seqlen = 64;
  GGUFQuantizer q(m, cfg);
  EXPECT_THROW(q.quantize(), Error);  // the sensitivities need calibration text
  EXPECT_THROW(q.quantize(CalibrationData(std::vector<std::string>{"some text"})), Error);  // … in a file
  q.quantize(calib);
  q.convert_to_gguf(tmp / "api.gguf");
  const auto r = test::run_quantllm("quantize --model " + test::model_dir(kLlama).string() +
                                    " --method gguf --target-bpw 4.5 --calib " + calib + " --nsamples 1 --seqlen 64 --out " +
                                    (tmp / "cli.gguf").string());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(test::read_all(tmp / "api.gguf"), test::read_all(tmp / "cli.gguf"));
  GGUFConfig bad;
  bad.target_bpw = 0.5;
  EXPECT_THROW(GGUFQuantizer(m, bad), Error);
}

TEST(Api, RtnPerplexityMatchesReferenceImplementation) {
  const Model m = load_model(test::model_dir(kLlama));
  for (int bits : {4, 3}) {
    const auto qm = GPTQQuantizer(m, {.bits = bits, .group_size = 128, .rtn = true}).quantize();
    const double got = first16(qm.as_model());
    const double want = ref_first16(bits == 4 ? "rtn_w4g128_asym" : "rtn_w3g128_asym");
    EXPECT_NEAR(got, want, want * 1e-3) << bits << " bits";
  }
}

TEST(Api, GptqBeatsRtn) {
  const Model m = load_model(test::model_dir(kLlama));
  const double fp32 = ref_first16("fp32");
  const CalibrationData calib(test::data_file("gutenberg-calib.txt"));
  double gptq[2], rtn[2];
  for (int i = 0; i < 2; ++i) {
    const int bits = i == 0 ? 4 : 3;
    const auto g = GPTQQuantizer(m, {.bits = bits, .group_size = 128, .actorder = true, .nsamples = 16}).quantize(calib);
    gptq[i] = first16(g.as_model());
    rtn[i] = ref_first16(bits == 4 ? "rtn_w4g128_asym" : "rtn_w3g128_asym");
    // The layer-wise objective tr((W−Q)H(W−Q)ᵀ)/tr(WHWᵀ) is what GPTQ minimizes: on the same Hessian
    // it must beat round-to-nearest on every layer. This is the robust check; perplexity is noisy.
    ASSERT_EQ(g.result().stats.size(), 8u * 7u);
    for (const auto& [name, s] : g.result().stats) EXPECT_LT(s.relative_error, s.rtn_relative_error) << name;
  }
  std::printf("first16 wikitext2: fp32 %.3f | rtn4 %.3f gptq4 %.3f | rtn3 %.3f gptq3 %.3f\n", fp32, rtn[0], gptq[0],
              rtn[1], gptq[1]);
  // Perplexity: with 16 calibration windows and 16 evaluation windows GPTQ moves by a few percent
  // (reference.json: 0.5–2% from arithmetic details alone), so 4 bits is held to 3% of the reference
  // GPTQ, and 3 bits must remove at least a third of RTN's loss (the full 128-window benchmark in
  // docs/benchmarks.md checks the stronger "at most half" claim on all windows).
  const double ref_gptq4 = ref_first16("gptq_ist_w4g128_asym_actorder");
  EXPECT_NEAR(gptq[0], ref_gptq4, ref_gptq4 * 0.03);
  EXPECT_LT(gptq[1] - fp32, (rtn[1] - fp32) * 0.67);
}
