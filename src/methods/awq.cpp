// AWQ over a whole model (see awq.h): the block-by-block driver shared by full AWQ quantization and the
// scale-only pass that other quantizers compose with, written once against the calibration backend
// (methods/backend.h), which runs the searches where the activations are.
#include "methods/awq.h"

#include "core/error.h"
#include "methods/backend.h"
#include "methods/checkpoints.h"
#include "quant/awq_search.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

namespace quantllm {

namespace {

constexpr int kScaleGrid = 20;  // AutoAWQ n_grid

enum class AwqMode { kQuantize, kScaleOnly };

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The block-by-block driver. kQuantize fills qm (layers, replaced norms/biases, stats); kScaleOnly
// fills `scaled` with every tensor folding changed. Both return through the out-parameters.
void run_awq(const LoadedModel& model, const QuantizeRequest& opt, const CalibWindows& windows, AwqMode mode,
             QuantizedModel* qm, std::map<std::string, Tensor>* scaled, const BlockProgress& progress,
             const QuantizedDirWriter* writer) {
  const ModelConfig& c = model.config;
  const WeightSource& src = *model.weights;
  QuantParams p = quant_params(opt);
  if (mode == AwqMode::kQuantize) p.rule = RangeRule::kAwq;  // AutoAWQ's pseudo_quantize_tensor ranges
  QuantParams ps = p;                                         // inside the searches: fp32 scales, plain ranges
  ps.scale_rounding = ScaleRounding::kAfterCodes;
  ps.mse = false;

  BackendOptions bo = backend_options(opt);
  bo.per_window = true;
  if (c.n_experts > 0 && bo.device == Device::CUDA)
    fail("AWQ of mixture-of-experts models ({}) runs on the CPU for now: --device cpu", c.arch->hf_architecture);
  const std::unique_ptr<CalibrationBackend> be = make_calibration_backend(model, windows, bo);
  const int64_t n_search = std::clamp<int64_t>(opt.awq.search_tokens / windows.seqlen, 1, windows.n);
  const int n_blocks = int(c.n_layers);
  BlockCheckpoints ckpt(model, opt, mode == AwqMode::kQuantize ? "awq" : "awq-scale", &windows);
  BlockOutput output(ckpt, qm, writer);
  const int done = output.done();
  auto record = [&](const std::string& name, const Tensor& t) {
    if (mode == AwqMode::kQuantize) qm->replaced[name] = t;
    else (*scaled)[name] = t;
  };

  for (int i = 0; i < n_blocks; ++i) {
    const auto t_block = std::chrono::steady_clock::now();
    const BlockSpec& spec = c.block(i);
    be->load_block(i, i >= done);
    if (i < done) {
      // Finished by an interrupted run: its folded tensors and quantized layers, run forward.
      BlockResult r = output.load(i);
      be->set_tensors(r.tensors);
      for (size_t l = 0; l < spec.linears.size(); ++l) {
        const std::string name = spec.linear_tensor(int(l));
        if (!spec.linears[l].quantized) continue;  // a MoE router: restored with r.tensors
        if (mode == AwqMode::kScaleOnly) {  // the next block saw these weights rounded to the nearest grid point
          be->rtn(int(l), p);
          continue;
        }
        auto it = r.layers.find(name);
        if (it == r.layers.end()) fail("--resume: block {} checkpoint lacks layer {}", i, name);
        be->set_tensors({{name + ".weight", it->second.dequantize()}});
      }
      for (auto& [n, t] : r.tensors) record(n, t);
      if (qm)
        for (auto& [n, st] : r.stats) qm->stats[n] = st;
      be->advance();
      if (progress) progress(i + 1, n_blocks, fmt::format("block {}/{}: restored", i + 1, n_blocks));
      continue;
    }
    BlockResult saved;  // what this block produces, for the checkpoint
    const std::vector<PointSums> sums = be->collect_abs_sums(n_search);
    std::string detail = fmt::format("block {}/{}: awq", i + 1, n_blocks);

    // --- scale search and folding, group by group on the (already folded) block ---
    std::vector<bool> scaled_linear(spec.linears.size(), false);
    for (const AwqScalingGroup& g : awq_scaling_groups(spec)) {
      const std::string name = spec.prefix + g.label;  // "model.layers.3.attn.qkv"
      const std::vector<float> w_mean = be->awq_weight_mean(g, p);
      const PointSums& s = sums[size_t(g.point)];
      std::vector<float> x_mean(s.sum.size());
      for (size_t j = 0; j < s.sum.size(); ++j) x_mean[j] = float(s.sum[j] / double(s.tokens));
      if (opt.awq.act_floor > 0) {
        double m = 0;
        for (float v : x_mean) m += v;
        const float floor = float(opt.awq.act_floor * m / double(x_mean.size()));
        for (float& v : x_mean) v = std::max(v, floor);
      }
      AwqScaleResult best;
      {
        const auto objective = be->awq_objective(g, ps);
        best = awq_search_scale(x_mean, w_mean, objective, name, kScaleGrid, opt.awq.duo_scaling);
      }
      be->awq_fold(g, best.scales, fold_dtype(src, spec, g));
      for (int l : g.layers) scaled_linear[size_t(l)] = true;
      if (g.folds_into_linear()) scaled_linear[size_t(g.source_slot)] = true;
      for (const auto& n : prev_op_tensors(spec, g)) {
        const bool is_weight = n.ends_with(".weight") && g.folds_into_linear();
        if (is_weight) continue;  // a linear's weight: recorded below with the linears
        const Tensor t = be->tensor(n);
        record(n, t);
        saved.tensors[n] = t;
      }
      const auto [s_lo, s_hi] = std::minmax_element(best.scales.begin(), best.scales.end());
      detail += fmt::format(" {} a={:.2f} s=[{:.3g},{:.3g}]", g.label, best.ratio, *s_lo, *s_hi);
    }

    // --- clipping (not q/k, as AutoAWQ: their errors pass through the softmax) and quantization ---
    for (size_t l = 0; l < spec.linears.size(); ++l) {
      const LinearSlot& slot = spec.linears[l];
      const std::string name = spec.linear_tensor(int(l));
      if (!slot.quantized) {  // a MoE router: kept in full precision, with the scales it took
        if (scaled_linear[l]) {
          const Tensor t = be->tensor(name + ".weight");
          saved.tensors[name + ".weight"] = t;
          record(name + ".weight", t);
        }
        continue;
      }
      if (mode == AwqMode::kScaleOnly) {
        if (scaled_linear[l]) {
          const Tensor t = be->tensor(name + ".weight");
          saved.tensors[name + ".weight"] = t;
          (*scaled)[name + ".weight"] = t;
        }
        be->rtn(int(l), p);  // the next block sees the weights rounded: the quantizer that follows does too
        continue;
      }
      const auto t0 = std::chrono::steady_clock::now();
      const bool clip = opt.awq.clip &&  // not q/k (AutoAWQ skips Wqkv too)
                        slot.role != Role::Q && slot.role != Role::K && slot.role != Role::QKV;
      AwqLayerResult r = be->awq_clip_quantize(int(l), clip, p, ps);
      qm->stats[name] = saved.stats[name] = LayerStats{.relative_error = r.relative_error, .seconds = seconds_since(t0)};
      saved.layers[name] = std::move(r.q);
    }

    be->advance();
    output.save(i, std::move(saved));
    if (progress) progress(i + 1, n_blocks, fmt::format("{} ({:.1f}s)", detail, seconds_since(t_block)));
  }
  output.finish();
  be->finish();
}

// Serves replaced tensors over a base source.
class OverlayWeights final : public WeightSource {
 public:
  OverlayWeights(std::shared_ptr<const WeightSource> base, std::map<std::string, Tensor> replaced)
      : base_(std::move(base)), replaced_(std::move(replaced)) {
    for (const auto& [name, t] : replaced_) {
      if (!base_->has(name)) fail("AWQ overlay: tensor '{}' is not in the model", name);
      if (base_->shape(name) != t.shape)
        fail("AWQ overlay: tensor '{}' has shape {} in the model, {} replaced", name, shape_str(base_->shape(name)),
             shape_str(t.shape));
    }
  }
  bool has(const std::string& n) const override { return base_->has(n); }
  Shape shape(const std::string& n) const override { return base_->shape(n); }
  Tensor load(const std::string& n) const override {
    auto it = replaced_.find(n);
    return it != replaced_.end() ? it->second : base_->load(n);
  }
  std::vector<std::string> names() const override { return base_->names(); }
  std::string format(const std::string& n) const override { return base_->format(n); }
  size_t stored_bytes(const std::string& n) const override { return base_->stored_bytes(n); }
  bool mapped() const override { return base_->mapped(); }

 private:
  std::shared_ptr<const WeightSource> base_;
  std::map<std::string, Tensor> replaced_;
};

}  // namespace

void validate_awq_options(const ModelConfig& c, const QuantizeRequest& opt) {
  validate_layers(c, quant_params(opt));
  if (opt.awq.search_tokens < 1) fail("AWQ search sample of {} tokens: need at least 1", opt.awq.search_tokens);
  if (!(opt.awq.act_floor >= 0 && opt.awq.act_floor <= 1))
    fail("--awq-act-floor must be in [0, 1] (a fraction of the mean activation), got {}", opt.awq.act_floor);
}

QuantizedModel quantize_awq(const LoadedModel& model, const QuantizeRequest& opt, const CalibWindows& windows,
                            const BlockProgress& progress, const QuantizedDirWriter* writer) {
  validate_awq_options(model.config, opt);
  if (opt.mse) fail("--mse does not apply to --method awq (AWQ searches each group's clipping range itself)");
  if (opt.gptq.act_order) fail("--act-order is a GPTQ option; --method awq quantizes groups of contiguous columns");
  if (opt.awq.scale_first) fail("--awq-scale composes AWQ scaling with --method gptq; --method awq scales already");
  QuantizedModel qm;
  qm.base = &model;
  qm.method = QuantMethod::AWQ;
  qm.params = quant_params(opt);
  qm.params.rule = RangeRule::kAwq;
  qm.act_order = false;
  qm.static_groups = false;
  qm.true_sequential = true;
  run_awq(model, opt, windows, AwqMode::kQuantize, &qm, nullptr, progress, writer);
  return qm;
}

QuantizedModel quantize_awq(const LoadedModel& model, const QuantizeRequest& opt, const BlockProgress& progress,
                            const QuantizedDirWriter* writer) {
  validate_awq_options(model.config, opt);
  const CalibWindows windows = calibration_windows(model, opt.calib);
  return quantize_awq(model, opt, windows, progress, writer);
}

std::map<std::string, Tensor> awq_scale_weights(const LoadedModel& model, const QuantizeRequest& opt,
                                                const BlockProgress& progress) {
  validate_awq_options(model.config, opt);
  const CalibWindows windows = calibration_windows(model, opt.calib);
  std::map<std::string, Tensor> scaled;
  run_awq(model, opt, windows, AwqMode::kScaleOnly, nullptr, &scaled, progress, nullptr);
  return scaled;
}

std::unique_ptr<WeightSource> overlay_weights(std::shared_ptr<const WeightSource> base,
                                              std::map<std::string, Tensor> replaced) {
  return std::make_unique<OverlayWeights>(std::move(base), std::move(replaced));
}

}  // namespace quantllm
