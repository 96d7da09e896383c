// The quantized engine (eval --engine quant: packed weights, CPU kernels, 8-bit activations) on the
// low-bit GGUF types (runtime/cpu/kernels_lowbit.h) against the dequantize-on-load path (--engine fp32):
// perplexity over the first 16 wikitext2 windows within 0.1% on gutenberg-llama-33m, the bound
// tests/cli/engine_test.cpp holds the other GGUF types to (and its reasoning for why 0.1% can hold: the
// activation rounding does not depend on how coarse the weights are).
//
// One file per type: llama.cpp's mix of that name (IQ2_S through the IQ2_M mix, whose default it is;
// MXFP4, which llama.cpp writes only for MoE experts, forced onto every block tensor of a Q8_0 file),
// with an importance matrix of 8 calibration chunks for the lattice types. The mixes keep some tensors
// in other types (attn_v, the head, types without a kernel such as Q2_K, which the engine widens); the
// test checks that the file holds the type on tensors the engine packs, so that the comparison runs
// through its kernels.
#include "formats/open.h"
#include "runtime/cpu/qmatrix.h"
#include "support/reference.h"
#include "support/run.h"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>

using namespace quantllm;
using json = nlohmann::json;

namespace {

struct LowBitCase {
  const char* type;       // the tensor type under test
  const char* args;       // quantize arguments choosing the file's types
  bool imatrix;           // lattice types: quantized with an importance matrix
};
const LowBitCase kCases[] = {
    {"IQ2_XXS", "--type IQ2_XXS", true}, {"IQ2_XS", "--type IQ2_XS", true}, {"IQ2_S", "--type IQ2_M", true},
    {"IQ3_XXS", "--type IQ3_XXS", true}, {"IQ3_S", "--type IQ3_S", true},   {"IQ1_S", "--type IQ1_S", true},
    {"IQ1_M", "--type IQ1_M", true},     {"TQ1_0", "--type TQ1_0", false},  {"TQ2_0", "--type TQ2_0", false},
    {"MXFP4", "--type Q8_0 --tensor-type 'blk=MXFP4'", false},
};

const char* kModel = "gutenberg-llama-33m";

double ppl(const std::string& model, const std::string& engine, std::string* err = nullptr) {
  const auto r = test::run_quantllm("eval ppl --model " + model + " --data " + test::data_file("wikitext2-test.raw").string() +
                                    " --max-windows 16 --engine " + engine + " --json");
  EXPECT_EQ(r.status, 0) << r.err;
  if (err) *err = r.err;
  return r.status == 0 ? json::parse(r.out)["ppl"].get<double>() : NAN;
}

}  // namespace

class EngineLowBit : public ::testing::TestWithParam<LowBitCase> {
 protected:
  // One importance matrix for all cases (computing it is most of a case's time).
  static void SetUpTestSuite() {
    dir_ = std::make_unique<test::TempDir>();
    const auto r = test::run_quantllm("imatrix --model " + test::model_dir(kModel).string() + " -f " +
                                      test::data_file("gutenberg-calib.txt").string() + " -o " +
                                      (*dir_ / "imatrix.gguf").string() + " --chunks 8");
    imatrix_ok_ = r.status == 0;
    if (!imatrix_ok_) std::fprintf(stderr, "imatrix failed: %s\n", r.err.c_str());
  }
  static void TearDownTestSuite() { dir_.reset(); }
  static inline std::unique_ptr<test::TempDir> dir_;
  static inline bool imatrix_ok_ = false;
};

TEST_P(EngineLowBit, QuantizedEngineMatchesFp32PathWithinATenthOfAPercent) {
  const LowBitCase& c = GetParam();
  ASSERT_TRUE(!c.imatrix || imatrix_ok_);
  const std::string out = (*dir_ / (std::string(c.type) + ".gguf")).string();
  const auto q = test::run_quantllm("quantize --model " + test::model_dir(kModel).string() + " --method gguf " + c.args +
                                    (c.imatrix ? " --imatrix " + (*dir_ / "imatrix.gguf").string() : "") + " --out " + out);
  ASSERT_EQ(q.status, 0) << q.err;

  // The file holds the type, and the engine packs every tensor of it (no fallback to fp32).
  {
    const std::optional<LoadedModel> m = open_gguf(out);
    ASSERT_TRUE(m);
    int of_type = 0;
    for (const std::string& name : m->weights->names()) {
      const auto p = m->weights->packed(name);
      if (!p || p->kind != PackedWeight::Kind::Ggml || ggml::type_name(ggml::GgmlType(p->ggml_type)) != c.type) continue;
      ++of_type;
      std::string why;
      EXPECT_TRUE(cpu::make_qmatrix(*m->weights, name, nullptr, &why)) << name << ": " << why;
    }
    EXPECT_GE(of_type, 4) << c.type << " tensors in the file";
    std::printf("%s: %d tensors of the type\n", c.type, of_type);
  }

  std::string quant_err;
  const double f = ppl(out, "fp32"), qp = ppl(out, "quant", &quant_err);
  EXPECT_EQ(quant_err.find(std::string("type ") + c.type + " has no kernel"), std::string::npos) << quant_err;
  const double rel = (qp - f) / f;
  std::printf("%s %-8s fp32 %.4f  quant %.4f  (%+.4f%%)\n", kModel, c.type, f, qp, 100 * rel);
  EXPECT_LT(std::fabs(rel), 1e-3) << c.type;
}

INSTANTIATE_TEST_SUITE_P(LowBitTypes, EngineLowBit, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<LowBitCase>& i) { return std::string(i.param.type); });
