// quantllm::GPTQQuantizer (include/quantllm/gptq.h) over pipeline/group_methods.h.
#include "quantllm/gptq.h"

#include "core/error.h"
#include "export/quantized_model.h"
#include "methods/group_methods.h"

namespace quantllm {

GPTQQuantizedModel::GPTQQuantizedModel(std::shared_ptr<QuantizedModel> qm, GPTQConfig config)
    : qm_(std::move(qm)), config_(std::move(config)) {}

void GPTQQuantizedModel::save(const std::filesystem::path& dir, bool overwrite) const {
  qm_->save(dir, config_.format, overwrite);
}

std::unique_ptr<WeightSource> GPTQQuantizedModel::weights() const { return qm_->as_weights(); }

GPTQQuantizer::GPTQQuantizer(const Model& model, GPTQConfig config) : model_(model), config_(std::move(config)) {
  if (config_.bits < 2 || config_.bits > 8) fail("GPTQConfig.bits must be between 2 and 8, got {}", config_.bits);
  parse_hf_quant_format(config_.format);
}

namespace {
GroupMethodOptions options_of(const GPTQConfig& c) {
  GroupMethodOptions o;
  o.method = c.rtn ? QuantMethod::RTN : QuantMethod::GPTQ;
  o.quant.bits = c.bits;
  o.quant.group_size = c.group_size;
  o.quant.sym = c.sym;
  o.quant.mse = c.mse;
  o.damp_percent = c.damp_percent;
  o.act_order = c.actorder;
  o.static_groups = c.static_groups;
  o.true_sequential = c.true_sequential;
  o.calib.nsamples = c.nsamples;
  o.calib.seqlen = c.seqlen;
  o.calib.seed = c.seed;
  o.device = parse_device(c.device);
  return o;
}
}  // namespace

GPTQQuantizedModel GPTQQuantizer::quantize(const CalibrationData& data, const ProgressCallback& progress) const {
  GroupMethodOptions o = options_of(config_);
  if (data.is_file()) o.calib.source = data.file().string();
  else if (!data.windows().empty()) o.calib.windows = data.windows();
  else if (!data.texts().empty()) o.calib.texts = data.texts();
  else fail("GPTQQuantizer::quantize: no calibration texts");
  BlockProgress bp;
  if (progress) bp = [&](int done, int total, const std::string& detail) { progress(done, total, detail); };
  auto qm = std::make_shared<QuantizedModel>(quantize_group_method(model_, o, bp));
  return GPTQQuantizedModel(std::move(qm), config_);
}

GPTQQuantizedModel GPTQQuantizer::quantize() const {
  if (!config_.rtn) fail("GPTQQuantizer::quantize: GPTQ needs calibration data (or set .rtn = true)");
  auto qm = std::make_shared<QuantizedModel>(quantize_group_method(model_, options_of(config_)));
  return GPTQQuantizedModel(std::move(qm), config_);
}

}  // namespace quantllm
