// quantllm::GGUFQuantizer (include/quantllm/gguf.h) over export/gguf_plan.h and export/gguf_export.h.
#include "quantllm/gguf.h"

#include "core/error.h"
#include "export/gguf_export.h"
#include "export/gguf_plan.h"
#include "methods/imatrix.h"

namespace quantllm {

GGUFQuantizer::GGUFQuantizer(const Model& model, GGUFConfig config) : model_(model), config_(std::move(config)) {
  find_gguf_mix(config_.type);  // unknown names fail here, before any work
}

GGUFQuantizer::~GGUFQuantizer() = default;

void GGUFQuantizer::quantize() {
  GGUFPlanOptions po;
  po.type = config_.type;
  po.pure = config_.pure;
  for (const auto& spec : config_.tensor_types) po.tensor_types.push_back(parse_tensor_type_override(spec));
  if (!config_.imatrix.empty()) {
    imatrix_ = std::make_unique<ImportanceMatrix>(ImportanceMatrix::load(config_.imatrix));
  } else if (config_.imatrix_data) {
    if (!config_.imatrix_data->is_file()) fail("GGUFConfig.imatrix_data must be a text file");
    imatrix_ = std::make_unique<ImportanceMatrix>(
        compute_imatrix(model_, ImatrixOptions{config_.imatrix_data->file().string()}));
  }
  if (imatrix_) {
    check_imatrix_fits(*imatrix_, model_.config, config_.imatrix.empty() ? "imatrix" : config_.imatrix);
    po.has_imatrix = true;
  }
  plan_ = std::make_unique<std::vector<PlannedTensor>>(plan_gguf(model_.config, *model_.weights, po));
}

const std::vector<PlannedTensor>& GGUFQuantizer::plan() const {
  if (!plan_) fail("GGUFQuantizer: call quantize() first");
  return *plan_;
}

void GGUFQuantizer::convert_to_gguf(const std::filesystem::path& path, bool overwrite,
                                    const ProgressCallback& progress) {
  if (!plan_) quantize();
  const GGUFMix& mix = find_gguf_mix(config_.type);
  GGUFExportOptions eo;
  eo.mix_name = std::string(mix.name);
  eo.ftype = mix.ftype;
  eo.imatrix = imatrix_.get();
  eo.overwrite = overwrite;
  if (progress) eo.progress = [&](size_t done, size_t total, const std::string& t) { progress(int64_t(done), int64_t(total), t); };
  write_gguf(model_, *model_.weights, *plan_, path, eo);
}

}  // namespace quantllm
