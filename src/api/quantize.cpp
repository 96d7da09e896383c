// quantize() and plan() of the public API (include/quantllm/quantize.h): the request checked once, the
// method looked up in the registry (src/methods/registry.h) and run; resumable runs' checkpoint
// directory managed here, for every front end alike.
#include "quantllm/quantize.h"

#include "core/error.h"
#include "core/fs.h"
#include "formats/quantized_model.h"
#include "methods/group_methods.h"
#include "methods/registry.h"

#include <fmt/format.h>

namespace quantllm {

namespace {

// Everything that can be checked without the model, in the order a user meets the options.
void validate(const QuantizeRequest& r, bool dry_run) {
  const MethodEntry& m = find_method(r.method);
  parse_device(r.device.device);
  if (r.moe.calibration != "routed" && r.moe.calibration != "all-experts")
    fail("--moe-calibration '{}' is not known (known: routed, all-experts)", r.moe.calibration);
  if (r.moe.min_tokens < 0) fail("--moe-min-tokens must be 0 or more, got {}", r.moe.min_tokens);
  m.validate(r);
  if (!dry_run) {
    if (r.out.empty()) fail("no output path: --out");
    check_output_path(r.out, r.overwrite);
  }
  if (needs_calibration(r) && r.calib.empty())
    fail("{} needs calibration data: --calib FILE (or --calib self)",
         r.method != "gguf" ? "--method " + r.method : r.gguf.gptq ? std::string("--gptq") : std::string("--awq-scale"));
}

}  // namespace

std::vector<std::pair<std::string, std::string>> quantize_methods() {
  std::vector<std::pair<std::string, std::string>> v;
  for (const auto& m : method_registry()) v.emplace_back(std::string(m.name), std::string(m.summary));
  return v;
}

QuantizeResult quantize(const Model& model, const QuantizeRequest& r, const ProgressCallback& progress) {
  validate(r, false);
  // Finished blocks are checkpointed beside the output (methods/checkpoints.h) so that an interrupted run
  // continues with resume; a run without calibration has nothing worth saving and just runs again.
  std::error_code ec;
  const bool calibrated = needs_calibration(r);
  const std::filesystem::path ckpt = checkpoint_dir(r);
  // (RTN and GGUF write there too, but do not resume: an interrupted run of theirs just runs again.)
  const bool ckpt_existed = !ckpt.empty() && std::filesystem::exists(ckpt, ec);
  {
    if (ckpt_existed && (!r.resume || !calibrated)) {
      if (!r.overwrite)
        fail("{} holds an interrupted run: {}--force starts over", ckpt.string(),
             calibrated ? "--resume continues it, " : "");
      std::filesystem::remove_all(ckpt, ec);
    }
    if (calibrated && r.resume && !ckpt_existed)
      fmt::print(stderr, "quantllm: --resume: no interrupted run at {}; starting from the first block\n", ckpt.string());
  }
  QuantizeRequest run = r;
  if (!calibrated) run.resume = false;
  QuantizeResult res;
  try {
    res = find_method(r.method).run(model.loaded(), run, progress);
  } catch (const Error&) {
    // A user error repeats on every run: drop the checkpoints this run started (not older ones).
    if (!ckpt_existed && !ckpt.empty()) std::filesystem::remove_all(ckpt, ec);
    throw;
  }
  if (!ckpt.empty()) std::filesystem::remove_all(ckpt, ec);
  return res;
}

QuantizeResult quantize(const QuantizeRequest& r, const ProgressCallback& progress) {
  validate(r, false);
  return quantize(Model(r.model), r, progress);
}

QuantizePlan plan(const Model& m, const QuantizeRequest& r) {
  validate(r, true);
  return find_method(r.method).plan(m.loaded(), r);
}

QuantizePlan plan(const QuantizeRequest& r) {
  validate(r, true);
  return plan(Model(r.model), r);
}

QuantizedResult::QuantizedResult(Model base, std::shared_ptr<QuantizedModel> qm, QuantizeRequest request)
    : base_(std::move(base)), qm_(std::move(qm)), request_(std::move(request)) {}

void QuantizedResult::save(const std::filesystem::path& dir, bool overwrite) const {
  qm_->save(dir, request_.format, overwrite);
}

Model QuantizedResult::as_model() const {
  auto m = std::make_shared<LoadedModel>(base_.loaded());
  // The view borrows qm_ and the base's weights: keep both alive with the model.
  struct View final : WeightSource {
    std::shared_ptr<QuantizedModel> qm;
    std::shared_ptr<const LoadedModel> base;
    std::unique_ptr<WeightSource> v;
    bool has(const std::string& n) const override { return v->has(n); }
    Shape shape(const std::string& n) const override { return v->shape(n); }
    Tensor load(const std::string& n) const override { return v->load(n); }
    std::vector<std::string> names() const override { return v->names(); }
    std::string format(const std::string& n) const override { return v->format(n); }
    size_t stored_bytes(const std::string& n) const override { return v->stored_bytes(n); }
  };
  auto view = std::make_shared<View>();
  view->qm = qm_;
  view->base = base_.shared();
  view->v = qm_->as_weights();
  m->weights = view;
  return Model(std::shared_ptr<const LoadedModel>(std::move(m)));
}

std::map<std::string, LayerReport> QuantizedResult::layers() const { return qm_->stats; }

void quantize_in_memory_check(const QuantizeRequest& r) {
  const MethodEntry& entry = find_method(r.method);
  if (r.method == "gguf") fail("quantize_in_memory: --method gguf writes a file; use quantize()");
  entry.validate(r);
  parse_device(r.device.device);
}

QuantizedResult quantize_in_memory(const Model& model, const QuantizeRequest& r, const ProgressCallback& progress) {
  quantize_in_memory_check(r);
  if (needs_calibration(r) && r.calib.empty()) fail("--method {} needs calibration data", r.method);
  QuantizeRequest run = r;
  run.out.clear();  // no checkpoints: nothing is written
  run.resume = false;
  BlockProgress bp;
  if (progress) bp = [&](int done, int total, const std::string& detail) { progress(done, total, detail); };
  auto qm = std::make_shared<QuantizedModel>(quantize_group_method(model.loaded(), run, bp));
  qm->base = &model.loaded();
  return QuantizedResult(model, std::move(qm), r);
}

}  // namespace quantllm
