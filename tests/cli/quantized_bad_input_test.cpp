// Damaged quantized checkpoints (GPTQ, AWQ, compressed-tensors directories) through the CLI: an unknown
// quant_method or format, a scale tensor of the wrong shape, packed words past what the shape needs or past
// the end of the file, a group index out of range — each ends with exit status 1 and one
// "quantllm: error:" line naming the file or tensor, from both `eval ppl` and `inspect`.
#include "support/run.h"
#include "support/safetensors_edit.h"
#include "support/synthetic.h"

#include <gtest/gtest.h>

using namespace quantllm;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

class QuantizedBadInput : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new test::TempDir;
    test::SyntheticSpec spec;
    spec.family = test::Family::Llama;
    spec.hidden = 64, spec.heads = 4, spec.kv_heads = 2, spec.ffn = 128, spec.layers = 2;
    test::write_model(*tmp_ / "base", spec, test::random_tensors(spec));
    std::string text;
    for (int i = 0; i < 20; ++i) text += "A small text for a small model, line " + std::to_string(i) + ".\n";
    std::ofstream(*tmp_ / "data.txt") << text;
    for (const std::string f : {"gptq", "awq_gemm", "compressed-tensors"}) {
      const auto r = test::run_quantllm("quantize --model '" + (*tmp_ / "base").string() + "' --method rtn --group-size 32 --format " +
                                        f + " --out '" + (*tmp_ / ("intact-" + f)).string() + "'");
      ASSERT_EQ(r.status, 0) << r.err;
    }
    const auto r = test::run_quantllm("quantize --model '" + (*tmp_ / "base").string() + "' --method fp8 --out '" +
                                      (*tmp_ / "intact-fp8").string() + "'");
    ASSERT_EQ(r.status, 0) << r.err;
  }
  static void TearDownTestSuite() { delete tmp_; }

  // A fresh copy of the intact directory in format f, to damage.
  static fs::path fresh(const std::string& f, const std::string& name) {
    const fs::path dir = *tmp_ / name;
    fs::remove_all(dir);
    fs::copy(*tmp_ / ("intact-" + f), dir);
    return dir;
  }
  static void edit_config(const fs::path& dir, const std::function<void(json&)>& edit) {
    json cfg = json::parse(test::read_all(dir / "config.json"));
    edit(cfg["quantization_config"]);
    std::ofstream(dir / "config.json", std::ios::trunc) << cfg.dump(2);
  }
  static void edit_tensors(const fs::path& dir, const std::function<void(test::StFile&)>& edit) {
    test::StFile st = test::read_st(dir / "model.safetensors");
    edit(st);
    test::write_st(dir / "model.safetensors", st);
  }
  static void expect_both_fail(const fs::path& dir, const std::vector<std::string>& mentions) {
    for (const bool use_eval : {true, false}) {
      SCOPED_TRACE(use_eval ? "eval ppl" : "inspect");
      const auto r = use_eval ? test::run_quantllm("eval ppl --model '" + dir.string() + "' --data '" +
                                                   (*tmp_ / "data.txt").string() + "' --ctx 16")
                              : test::run_quantllm("inspect '" + dir.string() + "'");
      EXPECT_EQ(r.status, 1) << r.err;
      EXPECT_EQ(test::count_lines(r.err), 1) << r.err;
      EXPECT_EQ(r.err.rfind("quantllm: error: ", 0), 0u) << r.err;
      for (const auto& m : mentions) EXPECT_NE(r.err.find(m), std::string::npos) << "'" << m << "' not in: " << r.err;
    }
  }
  static inline test::TempDir* tmp_ = nullptr;
};

const std::string kUp = "model.layers.1.mlp.up_proj";

TEST_F(QuantizedBadInput, IntactDirectoriesWork) {
  for (const std::string f : {"gptq", "awq_gemm", "compressed-tensors", "fp8"}) {
    const auto r = test::run_quantllm("eval ppl --model '" + (*tmp_ / ("intact-" + f)).string() + "' --data '" +
                                      (*tmp_ / "data.txt").string() + "' --ctx 16");
    EXPECT_EQ(r.status, 0) << f << ": " << r.err;
  }
}

TEST_F(QuantizedBadInput, UnknownQuantMethodOrFormat) {
  auto dir = fresh("compressed-tensors", "unknown-method");
  edit_config(dir, [](json& qc) { qc["quant_method"] = "bitsandbytes"; });
  expect_both_fail(dir, {"config.json", "bitsandbytes"});
  dir = fresh("compressed-tensors", "unknown-format");
  edit_config(dir, [](json& qc) { qc["format"] = "marlin-24"; });
  expect_both_fail(dir, {"config.json", "marlin-24"});
  dir = fresh("compressed-tensors", "activation-scheme");
  edit_config(dir, [](json& qc) { qc["config_groups"]["group_0"]["input_activations"] = {{"num_bits", 8}}; });
  expect_both_fail(dir, {"config.json", "activations"});
  dir = fresh("gptq", "gptq-format");
  edit_config(dir, [](json& qc) { qc["checkpoint_format"] = "marlin"; });
  expect_both_fail(dir, {"config.json", "marlin"});
}

TEST_F(QuantizedBadInput, ScaleTensorOfTheWrongShape) {
  auto dir = fresh("compressed-tensors", "ct-scale");
  edit_tensors(dir, [](test::StFile& st) {  // [128, 2] declared as [64, 4]: the same bytes, another shape
    st.header[kUp + ".weight_scale"]["shape"] = {64, 4};
  });
  expect_both_fail(dir, {kUp, "weight_scale"});
  dir = fresh("gptq", "gptq-scale");
  edit_tensors(dir, [](test::StFile& st) { st.header[kUp + ".scales"]["shape"] = {1, 256}; });
  expect_both_fail(dir, {kUp});
}

TEST_F(QuantizedBadInput, PackedWordsPastTheShapeOrTheFile) {
  // weight_shape says 64 input columns (8 words a row at 4 bits); the packed tensor claims 16 words a row.
  auto dir = fresh("compressed-tensors", "ct-words");
  edit_tensors(dir, [](test::StFile& st) { st.header[kUp + ".weight_packed"]["shape"] = {64, 16}; });
  expect_both_fail(dir, {kUp, "weight_packed"});
  // The file ends inside the packed tensor.
  dir = fresh("compressed-tensors", "ct-truncated");
  edit_tensors(dir, [](test::StFile& st) { st.data.resize(st.data.size() / 2); });
  expect_both_fail(dir, {"model.safetensors"});
  // weight_shape disagrees with the configuration's hidden size.
  dir = fresh("compressed-tensors", "ct-shape");
  edit_tensors(dir, [](test::StFile& st) {
    const auto off = st.header[kUp + ".weight_shape"]["data_offsets"][0].get<size_t>();
    const int64_t wrong = 96;
    std::memcpy(st.data.data() + off + 8, &wrong, 8);  // in: 64 → 96
  });
  expect_both_fail(dir, {kUp});
}

TEST_F(QuantizedBadInput, GroupIndexOutOfRange) {
  auto dir = fresh("gptq", "gptq-gidx");
  edit_tensors(dir, [](test::StFile& st) {
    const auto off = st.header[kUp + ".g_idx"]["data_offsets"][0].get<size_t>();
    const int32_t bad = 99;
    std::memcpy(st.data.data() + off, &bad, 4);
  });
  // inspect reads only the header; eval unpacks the layer.
  const auto r = test::run_quantllm("eval ppl --model '" + dir.string() + "' --data '" + (*tmp_ / "data.txt").string() + "' --ctx 16");
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_EQ(test::count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find(kUp), std::string::npos) << r.err;
}

TEST_F(QuantizedBadInput, Fp8ScalesMissingOrOfTheWrongShape) {
  auto dir = fresh("fp8", "fp8-scale-shape");
  edit_tensors(dir, [](test::StFile& st) { st.header[kUp + ".weight_scale"]["shape"] = {1, 128}; });
  expect_both_fail(dir, {kUp + ".weight_scale", "[128, 1]"});
  dir = fresh("fp8", "fp8-scale-missing");
  edit_tensors(dir, [](test::StFile& st) { st.header.erase(kUp + ".weight_scale"); });
  expect_both_fail(dir, {kUp + ".weight", "scale"});
  dir = fresh("fp8", "fp8-strategy");
  edit_config(dir, [](json& qc) { qc["config_groups"]["group_0"]["weights"]["strategy"] = "token"; });
  expect_both_fail(dir, {"config.json", "token"});
}

}  // namespace
