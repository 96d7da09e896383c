// quantllm::GPTQQuantizer — the seed library's GPTQQuantizer(model, bits, group_size, actorder), doing the
// real Hessian-based GPTQ (Frantar et al. 2022) block by block. A thin shape over the QuantizeRequest
// (quantize.h): GPTQConfig names the seed's arguments, and gptq_request() is the one place they map.
//
//   quantllm::Model model("gutenberg-llama-33m");
//   quantllm::GPTQQuantizer q(model, {.bits = 4, .group_size = 128, .actorder = true});
//   auto qm = q.quantize("calib.txt");   // or a list of texts
//   qm.save("llama-gptq-w4g128");        // a directory transformers / vLLM load
#pragma once

#include "quantllm/calibration.h"
#include "quantllm/model.h"
#include "quantllm/quantize.h"

#include <cstdint>
#include <string>

namespace quantllm {

struct GPTQConfig {
  int bits = 4;                 // 2..8
  int group_size = 128;         // input columns per group, or −1 for one group per row
  bool actorder = false;        // quantize columns by decreasing Hessian diagonal (desc_act)
  bool sym = false;             // symmetric (no zero point)
  double damp_percent = 0.01;   // damping, fraction of the mean Hessian diagonal
  bool static_groups = false;   // with actorder: group parameters fixed up front
  bool true_sequential = true;  // q/k/v, then o, then gate/up, then down
  bool mse = false;             // MSE-optimal shrinking of each group's range
  int64_t nsamples = 128;       // calibration windows
  int64_t seqlen = 512;         // tokens per window
  uint64_t seed = 0;
  std::string format = "gptq";  // "gptq" (checkpoint_format zero − 1), "gptq_v2" or "compressed-tensors"
  bool rtn = false;             // plain round-to-nearest instead of GPTQ (no calibration)
  std::string device = "cpu";   // "cpu", or "cuda": calibration and GPTQ on one GPU (a QUANTLLM_CUDA build)
  // MoE models (quantize.h MoeOptions): "routed" or "all-experts", and routed's minimum of tokens per expert.
  std::string moe_calibration = "routed";
  int64_t moe_min_tokens = 128;
};

// The request a GPTQConfig stands for (no model path, no output: quantize_in_memory's).
QuantizeRequest gptq_request(const GPTQConfig& c);

using GPTQQuantizedModel = QuantizedResult;

class GPTQQuantizer {
 public:
  GPTQQuantizer(const Model& model, GPTQConfig config = {});
  GPTQQuantizedModel quantize(const CalibrationData& calibration_data, const ProgressCallback& progress = {}) const;
  GPTQQuantizedModel quantize() const;  // RTN only (config.rtn)

 private:
  Model model_;
  QuantizeRequest request_;
};

}  // namespace quantllm
