// quantllm::AWQQuantizer (include/quantllm/awq.h): AWQConfig as a QuantizeRequest, run in memory.
#include "quantllm/awq.h"

#include "core/error.h"

#include <cctype>

namespace quantllm {

QuantizeRequest awq_request(const AWQConfig& c) {
  std::string v = c.version;
  for (auto& ch : v) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  if (v != "gemm") fail("AWQConfig.version '{}' is not supported (supported: gemm)", c.version);
  if (c.seqlen < 2) fail("AWQConfig.seqlen must be at least 2, got {}", c.seqlen);
  QuantizeRequest r;
  r.method = "awq";
  r.bits = c.bits;
  r.group_size = c.group_size;
  r.sym = !c.zero_point;
  r.awq.search_tokens = c.search_tokens;
  r.awq.act_floor = c.act_floor;
  r.calib.seqlen = c.seqlen;
  r.calib.seed = c.seed;
  r.format = "awq_gemm";
  r.device.device = c.device;
  return r;
}

AWQQuantizer::AWQQuantizer(const Model& model, AWQConfig config) : model_(model), request_(awq_request(config)) {
  quantize_in_memory_check(request_);
}

AWQQuantizer::AWQQuantizer(const std::filesystem::path& model_dir, AWQConfig config)
    : AWQQuantizer(Model(model_dir), std::move(config)) {}

AWQQuantizedModel AWQQuantizer::quantize(const CalibrationData& data, int64_t calibration_steps,
                                         const ProgressCallback& progress) const {
  QuantizeRequest r = request_;
  r.calib.nsamples = calibration_steps;
  data.fill(r.calib);
  return quantize_in_memory(model_, r, progress);
}

}  // namespace quantllm
