// `quantllm eval ppl` and `inspect` on the reference models, through the CLI as a user runs them:
// perplexity of the first 16 wikitext2 windows within 0.05% of transformers' fp32 number
// (reference.json fp32.wikitext2_test.ppl_first16; our fp32 pass matches the float64 golden NLL to
// 2e-5 per token, so the remaining gap is accumulation order, far below 0.05%).
#include "support/reference.h"
#include "support/run.h"

#include <gtest/gtest.h>

using namespace quantllm;
using json = nlohmann::json;

class EvalCli : public ::testing::TestWithParam<const char*> {};

TEST_P(EvalCli, PerplexityFirst16WindowsMatchesReference) {
  const std::string name = GetParam();
  const auto ref = test::reference(name);
  const auto r = test::run_quantllm("eval ppl --model " + test::model_dir(name).string() + " --data " +
                                    test::data_file("wikitext2-test.raw").string() + " --max-windows 16 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = json::parse(r.out);
  const double want = ref["fp32"]["wikitext2_test"]["ppl_first16"].get<double>();
  EXPECT_NEAR(j["ppl"].get<double>(), want, want * 5e-4);
  EXPECT_EQ(j["windows"].get<int>(), 16);
  EXPECT_EQ(j["tokens_scored"].get<int>(), 16 * 511);
}

TEST_P(EvalCli, InspectListsEveryTensor) {
  const std::string name = GetParam();
  const auto r = test::run_quantllm("inspect " + test::model_dir(name).string() + " --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = json::parse(r.out);
  const auto index = json::parse(test::read_all(test::model_dir(name) / "model.safetensors.index.json"));
  EXPECT_EQ(j["tensors"].size(), index["weight_map"].size());
  const auto cfg = json::parse(test::read_all(test::model_dir(name) / "config.json"));
  EXPECT_EQ(j["hyperparameters"]["hidden_size"], cfg["hidden_size"]);
  EXPECT_EQ(j["hyperparameters"]["num_hidden_layers"], cfg["num_hidden_layers"]);
}

INSTANTIATE_TEST_SUITE_P(ReferenceModels, EvalCli, ::testing::ValuesIn(test::kModels));
INSTANTIATE_TEST_SUITE_P(ReferenceModels2026, EvalCli, ::testing::ValuesIn(test::kModels2026));
