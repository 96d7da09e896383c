// RTN and GPTQ over a whole model, block by block (see group_methods.h). AWQ lives in awq.cpp and
// shares the driver below.
#include "pipeline/group_methods.h"

#include "calib/runner.h"
#include "core/error.h"
#include "pipeline/awq.h"
#include "pipeline/checkpoints.h"
#ifdef QUANTLLM_HAVE_CUDA
#include "pipeline/cuda/cuda_methods.h"
#include "runtime/cuda/context.h"
#endif
#include "quant/gptq.h"

#include <fmt/format.h>

#include <chrono>
#include <map>

namespace quantllm {

GPTQOptions gptq_options(const GroupMethodOptions& opt) {
  GPTQOptions g;
  g.quant = opt.quant;
  g.damp_percent = opt.damp_percent;
  g.block_size = opt.block_size;
  g.act_order = opt.act_order;
  g.static_groups = opt.static_groups;
  return g;
}

QuantizedModel new_quantized_model(const Model& model, const GroupMethodOptions& opt) {
  QuantizedModel qm;
  qm.base = &model;
  qm.method = opt.method;
  qm.params = opt.quant;
  qm.act_order = opt.act_order;
  qm.static_groups = opt.static_groups;
  qm.true_sequential = opt.true_sequential;
  qm.damp_percent = opt.damp_percent;
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

bool cuda_backend_built() {
#ifdef QUANTLLM_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

bool cuda_device_usable() {
#ifdef QUANTLLM_HAVE_CUDA
  return cuda::device_available();
#else
  return false;
#endif
}

ComputeDevice compute_device(const std::string& name) {
  if (name == "cpu") return ComputeDevice::CPU;
  if (name != "cuda") fail("device '{}' is not known (known: cpu, cuda)", name);
  if (!cuda_backend_built()) fail("device 'cuda': this build has no CUDA backend (configure with -DQUANTLLM_CUDA=ON; needs nvcc)");
  return ComputeDevice::CUDA;
}

namespace {

// Accumulates the Hessian 2XᵀX/n of each point the given slots read; stops the block after the last.
class HessianObserver final : public PointObserver {
 public:
  HessianObserver(const BlockSpec& spec, const std::vector<int>& slots) {
    for (int slot : slots) {
      const int p = spec.linears[size_t(slot)].input;
      if (!acc_.count(p)) acc_.emplace(p, HessianAccumulator(spec.points[size_t(p)].width));
      last_ = std::max(last_, p);
    }
  }
  bool observe(int point, Act x) override {
    auto it = acc_.find(point);
    if (it != acc_.end()) it->second.add_batch(x.p, x.rows, x.cols);
    return point < last_;
  }
  const HessianAccumulator& at(int point) const { return acc_.at(point); }

 private:
  std::map<int, HessianAccumulator> acc_;
  int last_ = -1;
};

}  // namespace

void validate_layers(const ModelConfig& c, const QuantParams& p) {
  const BlockSpec& spec = c.block(0);
  for (size_t l = 0; l < spec.linears.size(); ++l)
    validate_quant_params(p, spec.linears[l].in, spec.linear_tensor(int(l)) + ".weight");
}

QuantizedModel quantize_group_method(const Model& model, const GroupMethodOptions& opt, const BlockProgress& progress) {
  const ModelConfig& c = model.config;
  QuantizedModel qm = new_quantized_model(model, opt);
  validate_layers(c, opt.quant);  // every layer's shape against the options, before any work
  check_globals_finite(c, *model.weights);  // copied to the output as they are; block tensors: as each block loads

  const int n_blocks = int(c.n_layers);
  if (opt.awq_scale && opt.method != QuantMethod::AWQ) {
    // AWQ's scales folded into the fp32 weights, then the method on the scaled model; the folded
    // norms and biases (not quantized themselves) are exported from `replaced`.
    std::map<std::string, Tensor> scaled = awq_scale_weights(model, opt, progress);
    Model scaled_model = model;
    scaled_model.weights = overlay_weights(model.weights, scaled);
    GroupMethodOptions inner = opt;
    inner.awq_scale = false;
    QuantizedModel qm_scaled = quantize_group_method(scaled_model, inner, progress);
    qm_scaled.base = &model;
    for (auto& [name, t] : scaled) {
      std::string base = name;
      const bool quantized = name.ends_with(".weight") && qm_scaled.layers.count(base.erase(base.size() - 7));
      if (!quantized) qm_scaled.replaced[name] = std::move(t);
    }
    return qm_scaled;
  }
  if (opt.method == QuantMethod::RTN) {
    for (int i = 0; i < n_blocks; ++i) {
      const BlockWeights w = load_block(c, *model.weights, i);
      check_block_finite(c, w, i);
      const BlockSpec& spec = c.block(i);
      for (size_t l = 0; l < spec.linears.size(); ++l) {
        const std::string name = spec.linear_tensor(int(l));
        qm.layers[name] = quantize_rtn(w.linear[l].w, opt.quant, name + ".weight");
      }
      if (progress) progress(i + 1, n_blocks, "rtn");
    }
    return qm;
  }
  if (opt.method == QuantMethod::AWQ) return quantize_awq(model, opt, progress);

  const CalibWindows windows = calibration_windows(model, opt.calib);
  if (opt.device == ComputeDevice::CUDA) {
#ifdef QUANTLLM_HAVE_CUDA
    return quantize_gptq_cuda(model, opt, windows, progress);
#else
    fail("--device cuda: this build has no CUDA backend (configure with -DQUANTLLM_CUDA=ON)");
#endif
  }
  BlockCheckpoints ckpt(model, opt, "gptq", &windows);
  BlockRunner runner(model, windows, opt.chunk_tokens);
  const GPTQOptions g = gptq_options(opt);
  for (int i = 0; i < n_blocks; ++i) {
    BlockWeights w = runner.load(i);
    if (i < ckpt.done()) {
      // Finished by an interrupted run (--resume): its quantized layers, run forward.
      BlockResult r = ckpt.load(i);
      restore_quantized_layers(c, i, r, w, qm);
      runner.advance(i, w);
      if (progress) progress(i + 1, n_blocks, fmt::format("block {}/{}: restored", i + 1, n_blocks));
      continue;
    }
    check_block_finite(c, w, i);
    BlockResult saved;  // what this block produces, for the checkpoint
    const BlockSpec& spec = c.block(i);
    for (const auto& group : spec.sequential_groups(opt.true_sequential)) {
      HessianObserver obs(spec, group);
      runner.observe(i, w, obs);  // inputs seen through the already-quantized layers of this block
      for (int slot : group) {
        const std::string name = spec.linear_tensor(slot);
        const HessianAccumulator& acc = obs.at(spec.linears[size_t(slot)].input);
        Tensor& lw = w.linear[size_t(slot)].w;
        GPTQResult r = gptq_quantize(lw, acc, g, name + ".weight");
        // The same objective for plain rounding, so the report shows what GPTQ gained per layer.
        const double rtn_err =
            relative_objective(lw, quantize_rtn(lw, opt.quant, name + ".weight").dequantize(), acc.hessian());
        lw = r.q.dequantize();
        qm.stats[name] = saved.stats[name] = LayerStats{r.stats.objective, rtn_err, r.stats.damp_percent_used,
                                                        r.stats.seconds, r.stats.dead_inputs};
        if (ckpt.enabled()) saved.layers[name] = r.q;
        report_gptq_layer(name, r.stats, acc.in(), opt.damp_percent);
        qm.layers[name] = std::move(r.q);
      }
      if (progress) progress(i, n_blocks, fmt::format("block {}/{}: gptq {}", i + 1, n_blocks,
                                                       role_name(spec.linears[size_t(group.front())].role)));
    }
    runner.advance(i, w);
    ckpt.save(i, saved);
    if (progress) progress(i + 1, n_blocks, fmt::format("block {}/{} done", i + 1, n_blocks));
  }
  return qm;
}

}  // namespace quantllm
