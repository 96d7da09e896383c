// quantllm::GPTQQuantizer (include/quantllm/gptq.h): GPTQConfig as a QuantizeRequest, run in memory.
#include "quantllm/gptq.h"

#include "core/error.h"

namespace quantllm {

QuantizeRequest gptq_request(const GPTQConfig& c) {
  QuantizeRequest r;
  r.method = c.rtn ? "rtn" : "gptq";
  r.bits = c.bits;
  r.group_size = c.group_size;
  r.sym = c.sym;
  r.mse = c.mse;
  r.gptq.damp = c.damp_percent;
  r.gptq.act_order = c.actorder;
  r.gptq.static_groups = c.static_groups;
  r.gptq.true_sequential = c.true_sequential;
  r.moe.calibration = c.moe_calibration;
  r.moe.min_tokens = c.moe_min_tokens;
  r.calib.nsamples = c.nsamples;
  r.calib.seqlen = c.seqlen;
  r.calib.seed = c.seed;
  r.format = c.format;
  r.device.device = c.device;
  return r;
}

GPTQQuantizer::GPTQQuantizer(const Model& model, GPTQConfig config) : model_(model), request_(gptq_request(config)) {
  QuantizeRequest check = request_;
  check.method = "rtn";  // the options, without calibration data yet
  quantize_in_memory_check(check);
}

GPTQQuantizedModel GPTQQuantizer::quantize(const CalibrationData& data, const ProgressCallback& progress) const {
  QuantizeRequest r = request_;
  data.fill(r.calib);
  return quantize_in_memory(model_, r, progress);
}

GPTQQuantizedModel GPTQQuantizer::quantize() const {
  if (request_.method != "rtn") fail("GPTQQuantizer::quantize: GPTQ needs calibration data (or set .rtn = true)");
  return quantize_in_memory(model_, request_);
}

}  // namespace quantllm
