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
  quantllm::plan(model_, request_);  // unknown types and bad overrides fail here, before any work
}

GGUFQuantizer::~GGUFQuantizer() {
  std::error_code ec;
  if (!computed_imatrix_.empty()) std::filesystem::remove(computed_imatrix_, ec);
}

void GGUFQuantizer::quantize() {
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
  QuantizeRequest r = request_;
  r.out = path;
  r.overwrite = overwrite;
  quantllm::quantize(model_, r, progress);
}

}  // namespace quantllm
