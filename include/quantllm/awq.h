// quantllm::AWQQuantizer — the C++ API of AWQ, shaped like the seed library's Python class:
//
//   quantllm::AWQQuantizer q(model, {.bits = 4, .group_size = 128, .zero_point = true, .version = "gemm"});
//   auto qm = q.quantize(calibration_data, /*calibration_steps=*/128);  // texts, or a text file's path
//   qm.save("out-dir");                                                  // an AutoAWQ GEMM checkpoint
//
// A thin shape over the QuantizeRequest (quantize.h): calibration_steps is the number of windows of
// `seqlen` tokens drawn (seeded) from the calibration text, exactly as `quantllm quantize --calib`.
// Texts given as a list are joined with blank lines and tokenized as one text, then windows are drawn
// the same way. Errors a caller causes (bits outside 2–8, a group size that does not divide a layer,
// text shorter than one window, an unknown version) throw quantllm::Error.
#pragma once

#include "quantllm/calibration.h"
#include "quantllm/model.h"
#include "quantllm/quantize.h"

#include <cstdint>
#include <filesystem>
#include <string>

namespace quantllm {

struct AWQConfig {
  int bits = 4;                  // 2..8; the GEMM layout stores 4-bit codes
  int group_size = 128;          // input columns per group, or −1 for one group per row
  bool zero_point = true;        // asymmetric ranges (false: symmetric, zero fixed at 2^(bits−1))
  std::string version = "gemm";  // checkpoint layout: "gemm" (AutoAWQ GEMM)
  int64_t seqlen = 512;          // tokens per calibration window
  uint64_t seed = 0;             // seed of the window draw
  int64_t search_tokens = 8192;  // tokens (first whole windows) the scale and clip searches run on
  double act_floor = 0.3;        // floor of each channel's mean |activation| in the scale search, as a fraction
                                 // of the group's mean (0: AutoAWQ's search; AwqOptions::act_floor)
  std::string device = "cpu";    // "cpu", or "cuda": calibration and searches on one GPU (a QUANTLLM_CUDA build)
};

// The request an AWQConfig stands for; Error for a version other than "gemm".
QuantizeRequest awq_request(const AWQConfig& c);

using AWQQuantizedModel = QuantizedResult;

class AWQQuantizer {
 public:
  AWQQuantizer(const Model& model, AWQConfig config = {});
  // Opens a Hugging Face checkpoint directory.
  explicit AWQQuantizer(const std::filesystem::path& model_dir, AWQConfig config = {});

  AWQQuantizedModel quantize(const CalibrationData& calibration_data, int64_t calibration_steps = 128,
                             const ProgressCallback& progress = {}) const;

 private:
  Model model_;
  QuantizeRequest request_;
};

}  // namespace quantllm
