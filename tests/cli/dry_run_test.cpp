// quantize --dry-run for the group-wise methods (issue 6): the plan (every quantized layer with its
// storage), the memory the run needs itemized, and a time estimate — without writing anything; and
// the up-front memory check that refuses a run the machine cannot hold.
#include "support/reference.h"
#include "support/run.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace quantllm::test {
namespace {

std::string args(const std::string& method) {
  return "quantize --model " + model_dir("gutenberg-llama-33m").string() + " " + method + " --calib " +
         data_file("gutenberg-calib.txt").string();
}

TEST(DryRun, GptqPrintsPlanMemoryAndTimeAndWritesNothing) {
  TempDir tmp;
  const RunResult r = run_quantllm(args("--method gptq --bits 4 --act-order") + " --dry-run --out " + (tmp / "o").string());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("model.layers.7.mlp.down_proj"), std::string::npos);
  EXPECT_NE(r.out.find("memory at the peak, estimated"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("calibration hidden states"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("time, estimated"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(tmp / "o"));
}

TEST(DryRun, JsonAccountsForTheCalibrationActivations) {
  TempDir tmp;
  std::vector<double> peaks;
  for (const std::string method : {"--method gptq", "--method awq", "--method rtn"}) {
    const RunResult r =
        run_quantllm(args(method) + " --nsamples 128 --seqlen 512 --dry-run --json --out " + (tmp / "o").string());
    ASSERT_EQ(r.status, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["layers"].size(), 56u);  // 8 blocks × 7 linear layers
    // Hand-computed: 128 × 512 tokens × 512 hidden × 4 bytes = 128 MiB of hidden states alone,
    // plus the 63.6 MiB bf16 checkpoint; RTN needs neither calibration nor activations.
    const double hidden_states = 128.0 * 512 * 512 * 4;
    peaks.push_back(j["peak_bytes"].get<double>());
    if (method == "--method rtn") {
      EXPECT_EQ(j["flops"].get<double>(), 0.0);
      EXPECT_GE(peaks[0] - peaks[2], hidden_states);
      EXPECT_GE(peaks[1] - peaks[2], hidden_states);
    } else {
      EXPECT_GT(j["peak_bytes"].get<double>(), hidden_states + 60e6);
      EXPECT_GT(j["seconds_estimate"].get<double>(), 0.0);
    }
    EXPECT_NEAR(j["bits_per_weight"].get<double>(), 4.2, 0.05);
  }
}

TEST(DryRun, RunLargerThanAvailableMemoryIsRefusedUpFront) {
  TempDir tmp;
  const RunResult r = run_quantllm(args("--method gptq") + " --nsamples 100000000 --out " + (tmp / "o").string());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("lower --nsamples"), std::string::npos) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_TRUE(std::filesystem::is_empty(tmp.path));
}

}  // namespace
}  // namespace quantllm::test
