// quantllm::GPTQQuantizer — the seed library's GPTQQuantizer(model, bits, group_size, actorder),
// doing the real Hessian-based GPTQ (Frantar et al. 2022) block by block:
//
//   quantllm::Model model = quantllm::load_model("gutenberg-llama-33m");
//   quantllm::GPTQQuantizer q(model, {.bits = 4, .group_size = 128, .actorder = true});
//   auto qm = q.quantize("calib.txt");   // or a list of texts
//   qm.save("llama-gptq-w4g128");        // a directory transformers / vLLM load
#pragma once

#include "quantllm/calibration.h"
#include "quantllm/model.h"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

namespace quantllm {

struct QuantizedModel;
class WeightSource;

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
  std::string format = "gptq";  // checkpoint_format: "gptq" (zero − 1) or "gptq_v2"
  bool rtn = false;             // plain round-to-nearest instead of GPTQ (no calibration)
  std::string device = "cpu";   // "cpu", or "cuda": calibration and GPTQ on one GPU (a QUANTLLM_CUDA build)
};

class GPTQQuantizedModel {
 public:
  GPTQQuantizedModel(std::shared_ptr<QuantizedModel> qm, GPTQConfig config);
  // Writes the checkpoint directory atomically (an existing one only with overwrite).
  void save(const std::filesystem::path& dir, bool overwrite = false) const;
  // The model as it will run: quantized layers dequantized to fp32 (for evaluation).
  std::unique_ptr<WeightSource> weights() const;
  const QuantizedModel& result() const { return *qm_; }

 private:
  std::shared_ptr<QuantizedModel> qm_;
  GPTQConfig config_;
};

class GPTQQuantizer {
 public:
  // The model must outlive the quantizer and its results.
  GPTQQuantizer(const Model& model, GPTQConfig config = {});
  GPTQQuantizedModel quantize(const CalibrationData& calibration_data, const ProgressCallback& progress = {}) const;
  GPTQQuantizedModel quantize() const;  // RTN only (config.rtn)

 private:
  const Model& model_;
  GPTQConfig config_;
};

}  // namespace quantllm
