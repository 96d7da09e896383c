// The "gguf" method (see registry.h): AWQ's scaling first when asked, llama.cpp's plan of a type per
// tensor (formats/gguf_plan.h), and the GGUF writer fed by llama.cpp's GGML rounder (with an importance
// matrix when given).
#include "core/error.h"
#include "formats/gguf_model.h"
#include "io/imatrix.h"
#include "methods/awq.h"
#include "methods/group_methods.h"
#include "methods/imatrix.h"
#include "methods/registry.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>

namespace quantllm {

namespace {

GGUFPlanOptions plan_options(const QuantizeRequest& r) {
  GGUFPlanOptions po;
  po.type = r.gguf.type.empty() ? "Q4_K_M" : r.gguf.type;
  po.pure = r.gguf.pure;
  for (const auto& spec : r.gguf.tensor_types) po.tensor_types.push_back(parse_tensor_type_override(spec));
  if (!r.gguf.output_tensor_type.empty()) po.output_type = parse_ggml_type(r.gguf.output_tensor_type, "--output-tensor-type");
  if (!r.gguf.token_embedding_type.empty())
    po.token_embedding_type = parse_ggml_type(r.gguf.token_embedding_type, "--token-embedding-type");
  po.has_imatrix = !r.gguf.imatrix.empty();
  return po;
}

// The request of AWQ's scale search in front of a GGUF mix: the mix's bit width on groups of 32 (the
// K-quants' and legacy types' sub-block) unless --bits / --group-size say otherwise.
QuantizeRequest awq_scale_request(const QuantizeRequest& r, const GGUFMix& mix) {
  const ggml::QuantTraits& t = ggml::traits(mix.default_type);
  if (t.block_size == 1) fail("--awq-scale: type {} is not quantized; nothing to scale for", mix.name);
  QuantizeRequest s = r;
  s.method = "rtn";
  s.bits = r.bits.value_or(std::clamp(int(8 * t.type_size / t.block_size), 2, 8));
  s.group_size = r.group_size.value_or(32);
  return s;
}

}  // namespace

void validate_gguf(const QuantizeRequest& r) {
  find_gguf_mix(r.gguf.type.empty() ? "Q4_K_M" : r.gguf.type);
  plan_options(r);
  if ((r.bits || r.group_size) && !r.awq.scale_first)
    fail("--bits and --group-size do not apply to --method gguf: the type fixes them (--type Q4_K_M, Q8_0, …)");
  if (r.awq.scale_first && !r.gguf.imatrix.empty())
    fail("--awq-scale with --imatrix: the importance matrix holds the unscaled activations; use one or the other");
  if (r.device.device != "cpu" && !r.awq.scale_first)
    fail("--device applies to the calibrated methods (gptq, awq, --awq-scale); --method gguf quantizes on the CPU");
  if (!r.format.empty()) fail("--format applies to --method rtn, gptq and awq; --method gguf writes a GGUF file");
  if (!r.awq.clip) fail("--awq-no-clip applies to --method awq");
  if (!r.awq.duo_scaling && !r.awq.scale_first) fail("--awq-no-duo-scaling applies to --method awq or --awq-scale");
}

QuantizePlan plan_gguf_method(const LoadedModel& m, const QuantizeRequest& r) {
  const GGUFPlanOptions po = plan_options(r);
  const GGUFMix& mix = find_gguf_mix(po.type);
  QuantizePlan plan;
  plan.method = "gguf";
  plan.type = std::string(mix.name);
  int64_t params = 0;
  for (const auto& p : plan_gguf(m.config, *m.weights, po)) {
    params += shape_numel(p.shape);
    plan.bytes += p.bytes;
    plan.layers.push_back({p.gguf_name, p.shape, std::string(ggml::type_name(p.type)), 0, 0, p.bytes, p.note});
  }
  plan.bits_per_weight = 8.0 * double(plan.bytes) / double(params);
  return plan;
}

QuantizeResult run_gguf(const LoadedModel& model, const QuantizeRequest& r, const ProgressCallback& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  GGUFPlanOptions po = plan_options(r);
  const GGUFMix& mix = find_gguf_mix(po.type);
  LoadedModel m = model;
  if (r.awq.scale_first) {
    // AWQ's scales folded into the fp32 weights that the GGUF writer then quantizes.
    const QuantizeRequest s = awq_scale_request(r, mix);
    BlockProgress bp;
    if (progress) bp = [&](int done, int total, const std::string& detail) { progress(done, total, detail); };
    auto scaled = awq_scale_weights(m, s, bp);
    m.weights = overlay_weights(m.weights, std::move(scaled));
  }
  std::optional<ImportanceMatrix> im;
  if (!r.gguf.imatrix.empty()) {
    im = ImportanceMatrix::load(r.gguf.imatrix);
    check_imatrix_fits(*im, m.config, r.gguf.imatrix.string());
  }
  const auto plan = plan_gguf(m.config, *m.weights, po);
  int64_t params = 0;
  uint64_t bytes = 0;
  for (const auto& p : plan) params += shape_numel(p.shape), bytes += p.bytes;
  if (!m.config.arch->llama_cpp_runs)
    std::fprintf(stderr, "quantllm: note: llama.cpp has no OPT architecture: this GGUF runs in quantllm only\n");
  GGUFExportOptions eo;
  eo.mix_name = std::string(mix.name);
  eo.ftype = mix.ftype;
  eo.imatrix = im ? &*im : nullptr;
  eo.overwrite = r.overwrite;
  if (progress) eo.progress = [&](size_t done, size_t total, const std::string& t) { progress(int64_t(done), int64_t(total), t); };
  const auto t_write = std::chrono::steady_clock::now();
  QuantizeResult res;
  res.bytes = write_gguf(m, *m.weights, plan, r.out, eo);
  res.out = r.out;
  res.method = "gguf";
  res.type = std::string(mix.name);
  res.tensors = int64_t(plan.size());
  res.bits_per_weight = 8.0 * double(bytes) / double(params);
  const auto now = std::chrono::steady_clock::now();
  res.write_seconds = std::chrono::duration<double>(now - t_write).count();
  res.seconds = std::chrono::duration<double>(now - t0).count();
  return res;
}

}  // namespace quantllm
