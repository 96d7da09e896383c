// quantllm::AWQQuantizer (include/quantllm/awq.h) over pipeline/awq.h.
#include "quantllm/awq.h"

#include "calib/calibration.h"
#include "core/error.h"
#include "export/quantized_model.h"
#include "methods/awq.h"

#include <cctype>

namespace quantllm {

namespace {

void validate(const AWQConfig& c) {
  std::string v = c.version;
  for (auto& ch : v) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  if (v != "gemm") fail("AWQConfig.version '{}' is not supported (supported: gemm)", c.version);
  if (c.bits < 2 || c.bits > 8) fail("AWQConfig.bits must be between 2 and 8, got {}", c.bits);
  if (c.bits != 4) fail("AWQConfig.version 'gemm' stores 4-bit weights, got bits {}", c.bits);
  if (c.seqlen < 2) fail("AWQConfig.seqlen must be at least 2, got {}", c.seqlen);
}

}  // namespace

AWQQuantizedModel::AWQQuantizedModel(std::shared_ptr<const Model> model, std::shared_ptr<QuantizedModel> qm,
                                     AWQConfig config)
    : model_(std::move(model)), qm_(std::move(qm)), config_(std::move(config)) {
  qm_->base = model_.get();
}

void AWQQuantizedModel::save(const std::filesystem::path& dir, bool overwrite) const {
  save_quantized(*qm_, dir, HfQuantFormat::AwqGemm, overwrite);
}

std::unique_ptr<WeightSource> AWQQuantizedModel::weights() const { return qm_->as_weights(); }

AWQQuantizer::AWQQuantizer(const Model& model, AWQConfig config)
    // Not owned: an aliasing pointer with no control block.
    : model_(std::shared_ptr<const Model>(std::shared_ptr<const Model>(), &model)), config_(std::move(config)) {
  validate(config_);
}

AWQQuantizer::AWQQuantizer(const std::filesystem::path& model_dir, AWQConfig config)
    : config_(std::move(config)) {
  validate(config_);
  model_ = std::make_shared<const Model>(open_model(model_dir));
}

AWQQuantizedModel AWQQuantizer::quantize(const CalibrationData& data, int64_t calibration_steps,
                                         const ProgressCallback& progress) const {
  GroupMethodOptions o;
  o.method = QuantMethod::AWQ;
  o.quant.bits = config_.bits;
  o.quant.group_size = config_.group_size;
  o.quant.sym = !config_.zero_point;
  o.quant.rule = RangeRule::kAwq;
  o.awq_search_tokens = config_.search_tokens;
  o.calib.source = data.is_file() ? data.file().string() : "";
  o.calib.nsamples = calibration_steps;
  o.calib.seqlen = config_.seqlen;
  o.calib.seed = config_.seed;
  o.device = parse_device(config_.device);
  BlockProgress bp;
  if (progress) bp = [&](int done, int total, const std::string& detail) { progress(done, total, detail); };
  auto qm = std::make_shared<QuantizedModel>();
  if (data.is_file()) {
    *qm = quantize_awq(*model_, o, bp);
  } else {
    // Texts (joined with blank lines, then drawn from as a file is) or ready windows: calib/calibration.h.
    if (data.texts().empty() && data.windows().empty()) fail("AWQQuantizer::quantize: no calibration texts");
    CalibOptions c = o.calib;
    c.texts = data.texts();
    c.windows = data.windows();
    *qm = quantize_awq(*model_, o, calibration_windows(*model_, c), bp);
  }
  return AWQQuantizedModel(model_, std::move(qm), config_);
}

}  // namespace quantllm
