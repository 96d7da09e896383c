// quantllm::GGUFQuantizer (include/quantllm/gguf.h): GGUFConfig as a QuantizeRequest of method "gguf"; an
// importance matrix computed from imatrix_data goes to a temporary file the request names.
#include "quantllm/gguf.h"

#include "core/error.h"
#include "quantllm/eval.h"

#include <fmt/format.h>

#include <unistd.h>

namespace quantllm {

GGUFQuantizer::GGUFQuantizer(const Model& model, GGUFConfig config) : model_(model), config_(std::move(config)) {
  request_.method = "gguf";
  request_.gguf.type = config_.type;
  request_.gguf.pure = config_.pure;
  request_.gguf.tensor_types = config_.tensor_types;
  request_.gguf.imatrix = config_.imatrix;
  request_.gguf.gptq = config_.gptq;
  request_.calib.nsamples = config_.nsamples;
  request_.calib.seqlen = config_.seqlen;
  request_.calib.seed = config_.seed;
  QuantizeRequest check = request_;
  check.gguf.gptq = false;  // the options, without calibration data yet
  quantllm::plan(model_, check);  // unknown types and bad overrides fail here, before any work
}

GGUFQuantizer::~GGUFQuantizer() {
  std::error_code ec;
  if (!computed_imatrix_.empty()) std::filesystem::remove(computed_imatrix_, ec);
}

void GGUFQuantizer::quantize(const CalibrationData& data) {
  if (!config_.gptq)
    fail("GGUFQuantizer: calibration data is for GGUFConfig.gptq (GPTQ into the blocks); llama.cpp's rounding takes "
         "none (an importance matrix: GGUFConfig.imatrix / imatrix_data)");
  data.fill(request_.calib);
  calibrated_ = true;
  plan_ = quantllm::plan(model_, request_);
}

void GGUFQuantizer::quantize() {
  if (config_.gptq && !calibrated_) fail("GGUFQuantizer: GGUFConfig.gptq needs calibration data: quantize(data)");
  if (config_.imatrix.empty() && config_.imatrix_data && computed_imatrix_.empty()) {
    if (!config_.imatrix_data->is_file()) fail("GGUFConfig.imatrix_data must be a text file");
    const std::filesystem::path file = std::filesystem::temp_directory_path() /
                                       fmt::format("quantllm-imatrix-{}-{}.gguf", getpid(), reinterpret_cast<uintptr_t>(this));
    compute_imatrix(model_, config_.imatrix_data->file(), file, {}, true);
    computed_imatrix_ = file;  // only once it exists: a failed computation is tried again by the next call
    request_.gguf.imatrix = computed_imatrix_;
  }
  plan_ = quantllm::plan(model_, request_);
}

const std::vector<PlannedLayer>& GGUFQuantizer::plan() const {
  if (!plan_) fail("GGUFQuantizer: call quantize() first");
  return plan_->layers;
}

void GGUFQuantizer::convert_to_gguf(const std::filesystem::path& path, bool overwrite,
                                    const ProgressCallback& progress) {
  if (!plan_) quantize();
  if (config_.gptq && !calibrated_) fail("GGUFQuantizer: GGUFConfig.gptq needs calibration data: quantize(data)");
  QuantizeRequest r = request_;
  r.out = path;
  r.overwrite = overwrite;
  quantllm::quantize(model_, r, progress);
}

}  // namespace quantllm
