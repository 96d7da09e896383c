// quantllm::GGUFQuantizer — the seed library's GGUFQuantizer(model, bits, group_size).convert_to_gguf(path),
// writing exactly the bytes llama.cpp's quantizer would. A thin shape over the QuantizeRequest
// (quantize.h, method "gguf"):
//
//   quantllm::GGUFQuantizer q(model, {.type = "Q4_K_M"});
//   q.quantize();                       // plans the type of every tensor (and computes an imatrix if asked)
//   q.convert_to_gguf("model-Q4_K_M.gguf");
#pragma once

#include "quantllm/calibration.h"
#include "quantllm/model.h"
#include "quantllm/quantize.h"

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace quantllm {

struct GGUFConfig {
  std::string type = "Q4_K_M";  // a llama.cpp mix or type: Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q4_0, IQ4_XS, Q3_K_M, Q2_K, F16 …
  bool pure = false;             // every quantizable tensor gets the mix's default type
  std::vector<std::string> tensor_types;  // "REGEX=TYPE" overrides
  std::string imatrix;           // importance matrix file (llama.cpp format), optional
  std::optional<CalibrationData> imatrix_data;  // or compute one from this text file
  // GPTQ's error feedback into the GGML blocks (quantize --gptq): quantize(data) calibrates on nsamples ×
  // seqlen windows of the data; off: llama.cpp's rounding.
  bool gptq = false;
  // > 0: a size instead of a type name (quantize --target-bpw): each tensor's type chosen for this many bits a
  // weight from its measured sensitivity (type and pure are then not used); quantize(data) gives the
  // calibration text file the sensitivities are measured on.
  double target_bpw = 0;
  int nsamples = 128, seqlen = 512;
  uint64_t seed = 0;
};

class GGUFQuantizer {
 public:
  GGUFQuantizer(const Model& model, GGUFConfig config = {});
  ~GGUFQuantizer();
  // Not copyable: it owns the temporary importance-matrix file its request names.
  GGUFQuantizer(const GGUFQuantizer&) = delete;
  GGUFQuantizer& operator=(const GGUFQuantizer&) = delete;
  // Plans the tensor types (and computes the importance matrix when imatrix_data is given). With
  // target_bpw the plan is measured when plan() is first called, and again by convert_to_gguf.
  void quantize();
  // With GGUFConfig.gptq or target_bpw: the calibration data of GPTQ's Hessians or of the sensitivity
  // measurements (a text file for target_bpw), then plans as quantize().
  void quantize(const CalibrationData& data);
  const std::vector<PlannedLayer>& plan() const;
  // Quantizes and writes the file atomically.
  void convert_to_gguf(const std::filesystem::path& path, bool overwrite = false, const ProgressCallback& progress = {});

 private:
  Model model_;
  GGUFConfig config_;
  QuantizeRequest request_;
  mutable std::optional<QuantizePlan> plan_;  // target_bpw: made by the first plan()
  bool prepared_ = false;                      // quantize() ran
  std::filesystem::path computed_imatrix_;  // a temporary file, removed with the quantizer
  bool calibrated_ = false;                 // quantize(data) ran (GGUFConfig.gptq or target_bpw)
  bool needs_data() const { return config_.gptq || config_.target_bpw > 0; }
};

}  // namespace quantllm
