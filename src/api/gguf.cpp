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
  if (config_.target_bpw != 0) {
    if (!(config_.target_bpw >= 1.5 && config_.target_bpw <= 16))
      fail("GGUFConfig.target_bpw {}: expected bits a weight between 1.5 and 16", config_.target_bpw);
    request_.gguf.type.clear();  // the size chooses every tensor's type
    request_.gguf.pure = false;
    request_.gguf.target_bpw = config_.target_bpw;
  }
  QuantizeRequest check = request_;
  check.gguf.gptq = false;  // the options, without calibration data yet
  if (check.gguf.target_bpw != 0) check.gguf.target_bpw = 0, check.gguf.type = "Q4_K_M";
  quantllm::plan(model_, check);  // unknown types and bad overrides fail here, before any work
}

GGUFQuantizer::~GGUFQuantizer() {
  std::error_code ec;
  if (!computed_imatrix_.empty()) std::filesystem::remove(computed_imatrix_, ec);
}

void GGUFQuantizer::quantize(const CalibrationData& data) {
  if (!needs_data())
    fail("GGUFQuantizer: calibration data is for GGUFConfig.gptq (GPTQ into the blocks) or target_bpw; llama.cpp's "
         "rounding takes none (an importance matrix: GGUFConfig.imatrix / imatrix_data)");
  if (config_.target_bpw > 0 && !data.is_file())
    fail("GGUFConfig.target_bpw measures each tensor's sensitivity on a calibration text file: quantize(\"file.txt\")");
  data.fill(request_.calib);
  calibrated_ = true;
  quantize();
}

void GGUFQuantizer::quantize() {
  if (needs_data() && !calibrated_)
    fail("GGUFQuantizer: GGUFConfig.{} needs calibration data: quantize(data)", config_.gptq ? "gptq" : "target_bpw");
  if (config_.imatrix.empty() && config_.imatrix_data && computed_imatrix_.empty()) {
    if (!config_.imatrix_data->is_file()) fail("GGUFConfig.imatrix_data must be a text file");
    const std::filesystem::path file = std::filesystem::temp_directory_path() /
                                       fmt::format("quantllm-imatrix-{}-{}.gguf", getpid(), reinterpret_cast<uintptr_t>(this));
    compute_imatrix(model_, config_.imatrix_data->file(), file, {}, true);
    computed_imatrix_ = file;  // only once it exists: a failed computation is tried again by the next call
    request_.gguf.imatrix = computed_imatrix_;
  }
  prepared_ = true;
  // A size target's plan measures every tensor (minutes): made when plan() asks, not again for the file.
  if (config_.target_bpw == 0) plan_ = quantllm::plan(model_, request_);
}

const std::vector<PlannedLayer>& GGUFQuantizer::plan() const {
  if (!prepared_) fail("GGUFQuantizer: call quantize() first");
  if (!plan_) plan_ = quantllm::plan(model_, request_);
  return plan_->layers;
}

void GGUFQuantizer::convert_to_gguf(const std::filesystem::path& path, bool overwrite,
                                    const ProgressCallback& progress) {
  if (needs_data() && !calibrated_)
    fail("GGUFQuantizer: GGUFConfig.{} needs calibration data: quantize(data)", config_.gptq ? "gptq" : "target_bpw");
  if (!prepared_) quantize();
  QuantizeRequest r = request_;
  r.out = path;
  r.overwrite = overwrite;
  quantllm::quantize(model_, r, progress);
}

}  // namespace quantllm
