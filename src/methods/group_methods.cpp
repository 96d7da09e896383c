// The group-wise methods' entry (see group_methods.h): options shared by RTN, GPTQ and AWQ, round-to-
// nearest itself, and AWQ's scaling in front of another method (--awq-scale). GPTQ's driver is gptq.cpp,
// AWQ's awq.cpp.
#include "methods/group_methods.h"

#include "core/error.h"
#include "formats/quantized_dir_writer.h"
#include "methods/awq.h"
#include "methods/checkpoints.h"
#include "quant/gptq.h"

#include <fmt/format.h>

#include <chrono>
#include <set>

namespace quantllm {

QuantMethod group_method(const QuantizeRequest& r) {
  if (r.method == "rtn") return QuantMethod::RTN;
  if (r.method == "gptq") return QuantMethod::GPTQ;
  QL_ASSERT(r.method == "awq", "'{}' is not a group method", r.method);
  return QuantMethod::AWQ;
}

QuantParams quant_params(const QuantizeRequest& r) {
  QuantParams p;
  p.bits = r.bits.value_or(4);
  p.group_size = r.group_size.value_or(128);
  p.sym = r.sym;
  p.mse = r.mse;
  if (r.method == "awq") p.rule = RangeRule::kAwq;
  return p;
}

GPTQOptions gptq_options(const QuantizeRequest& r) {
  GPTQOptions g;
  g.quant = quant_params(r);
  g.damp_percent = r.gptq.damp;
  g.block_size = r.gptq.block_size;
  g.act_order = r.gptq.act_order;
  g.static_groups = r.gptq.static_groups;
  return g;
}

BackendOptions backend_options(const QuantizeRequest& r) {
  BackendOptions b;
  b.device = parse_device(r.device.device);
  b.chunk_tokens = r.device.chunk_tokens;
  b.gpu_tf32 = r.device.gpu_tf32;
  b.gpu_bf16 = r.device.gpu_bf16;
  b.gpu_chunk_tokens = r.device.gpu_chunk_tokens;
  b.gpu_activations_on_host = r.device.gpu_activations_on_host;
  b.moe_all_experts = r.moe.calibration == "all-experts";
  return b;
}

std::filesystem::path checkpoint_dir(const QuantizeRequest& r) {
  if (r.out.empty()) return {};
  return std::filesystem::path(r.out.string() + ".resume");
}

QuantizedModel new_quantized_model(const LoadedModel& model, const QuantizeRequest& r) {
  QuantizedModel qm;
  qm.base = &model;
  qm.method = group_method(r);
  qm.params = quant_params(r);
  qm.act_order = r.gptq.act_order;
  qm.static_groups = r.gptq.static_groups;
  qm.true_sequential = r.gptq.true_sequential;
  qm.damp_percent = r.gptq.damp;
  return qm;
}

void report_gptq_layer(const std::string& name, const GPTQStats& s, int64_t in, double requested_damp) {
  if (s.dead_inputs > 0)
    std::fprintf(stderr, "quantllm: note: %s: %lld of %lld inputs were 0 in every calibration token; their weights are set to 0\n",
                 name.c_str(), (long long)s.dead_inputs, (long long)in);
  if (s.damp_percent_used > requested_damp * 1.0000001)
    std::fprintf(stderr, "quantllm: %s: Hessian not positive definite at damp %.4g; used damp %.4g\n", name.c_str(),
                 requested_damp, s.damp_percent_used);
}

void validate_layers(const ModelConfig& c, const QuantParams& p) {
  std::set<int64_t> seen;  // input widths already checked (blocks repeat them; MoE blocks add the experts')
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const BlockSpec& spec = c.block(i);
    for (size_t l = 0; l < spec.linears.size(); ++l)
      if (spec.linears[l].quantized && seen.insert(spec.linears[l].in).second)
        validate_quant_params(p, spec.linears[l].in, spec.linear_tensor(int(l)) + ".weight");
  }
}

namespace {

// r.method on `model` as it is (its weights already scaled when AWQ's scaling went first).
QuantizedModel quantize_as_is(const LoadedModel& model, const QuantizeRequest& r, const BlockProgress& progress,
                              const QuantizedDirWriter* writer) {
  const QuantMethod method = group_method(r);
  if (method == QuantMethod::AWQ) return quantize_awq(model, r, progress, writer);
  if (method == QuantMethod::GPTQ)
    return quantize_gptq(model, r, calibration_windows(model, r.calib), progress, writer);

  // Round-to-nearest: no calibration, block by block (nothing to resume: the journal only marks the blocks).
  const ModelConfig& c = model.config;
  const QuantParams p = quant_params(r);
  const int n_blocks = int(c.n_layers);
  QuantizedModel qm = new_quantized_model(model, r);
  QuantizeRequest fresh = r;
  fresh.resume = false;
  BlockCheckpoints ckpt(model, fresh, "rtn", nullptr);
  BlockOutput output(ckpt, &qm, writer);
  for (int i = 0; i < n_blocks; ++i) {
    const BlockWeights w = load_block(c, *model.weights, i);
    check_block_finite(c, w, i);
    const BlockSpec& spec = c.block(i);
    BlockResult done;
    for (size_t l = 0; l < spec.linears.size(); ++l) {
      if (!spec.linears[l].quantized) continue;  // MoE routers stay as they are
      const std::string name = spec.linear_tensor(int(l));
      done.layers[name] = quantize_rtn(w.linear[l].w, p, name + ".weight");
    }
    output.save(i, std::move(done));
    if (progress) progress(i + 1, n_blocks, "rtn");
  }
  output.finish();
  return qm;
}

}  // namespace

QuantizedModel quantize_group_method(const LoadedModel& model, const QuantizeRequest& r, const BlockProgress& progress,
                                     std::optional<HfQuantFormat> write) {
  const ModelConfig& c = model.config;
  validate_layers(c, quant_params(r));  // every layer's shape against the options, before any work
  check_globals_finite(c, *model.weights);  // copied to the output as they are; block tensors: as each block loads
  const bool streamed = write && !r.out.empty();
  LoadedModel run_model = model;
  std::map<std::string, Tensor> kept;  // the scaled tensors that are not quantized (norms, biases, routers)
  if (r.awq.scale_first && group_method(r) != QuantMethod::AWQ) {
    // AWQ's scales folded into the fp32 weights, then the method on the scaled model; the folded norms
    // and biases (not quantized themselves) are exported as the overlay serves them. The request keeps
    // awq.scale_first, so the method's resume checkpoints are fingerprinted as taken after the scaling
    // (a plain run of the same method does not restore them, nor this one a plain run's).
    std::map<std::string, Tensor> scaled = awq_scale_weights(model, r, progress);
    std::set<std::string> quantized;
    for (int64_t i = 0; i < c.n_layers; ++i) {
      const BlockSpec& spec = c.block(i);
      for (size_t l = 0; l < spec.linears.size(); ++l)
        if (spec.linears[l].quantized) quantized.insert(spec.linear_tensor(int(l)) + ".weight");
    }
    if (!streamed)
      for (const auto& [name, t] : scaled)
        if (!quantized.count(name)) kept[name] = t;
    run_model.weights = overlay_weights(model.weights, std::move(scaled));
  }
  std::optional<QuantizedDirWriter> writer;
  if (streamed) {
    QuantizedModel settings = new_quantized_model(model, r);
    if (group_method(r) == QuantMethod::AWQ) settings.act_order = settings.static_groups = false;
    writer.emplace(model, *run_model.weights, checkpoint_dir(r), quant_dir_format(settings, *write), r.resume);
  }
  QuantizedModel qm = quantize_as_is(run_model, r, progress, writer ? &*writer : nullptr);
  qm.base = &model;
  qm.replaced.merge(kept);
  if (writer) {
    const auto t0 = std::chrono::steady_clock::now();
    writer->finish(r.out, r.overwrite);
    qm.finish_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  return qm;
}

}  // namespace quantllm
