// --target-bpw's sensitivity probe (see gguf_target_probe.h).
#include "methods/gguf_target_probe.h"

#include "core/error.h"
#include "core/fs.h"
#include "eval/kld.h"
#include "methods/awq.h"
#include "runtime/forward.h"

#include <map>

namespace quantllm {

namespace {

// The base logits held in memory, served to kl_divergence as if read from its cache.
class HeldLogits final : public BaseLogits {
 public:
  HeldLogits(const std::vector<Tensor>& t, int64_t vocab) : t_(t), vocab_(vocab) {}
  int64_t vocab() const override { return vocab_; }
  std::vector<Tensor> batch(const Windows&, int64_t b0, int64_t nb) override {
    return {t_.begin() + b0, t_.begin() + b0 + nb};
  }

 private:
  const std::vector<Tensor>& t_;
  int64_t vocab_;
};

}  // namespace

TargetProbe::TargetProbe(const LoadedModel& m, const std::filesystem::path& text, int64_t windows, int64_t ctx,
                         const ImportanceMatrix* imatrix)
    : model_(m), imatrix_(imatrix) {
  windows_ = make_windows(*m.tokenizer, read_text_file(text), ctx, windows);
  if (windows_.n_windows < 1)
    fail("--target-bpw: {} has fewer than {} tokens for the sensitivity probe", text.string(), ctx);
  const FullModel base(m);
  base_ = model_base_logits(base, windows_)->batch(windows_, 0, windows_.n_windows);
}

double TargetProbe::kld(const PlannedTensor& p, ggml::GgmlType type) const {
  const std::vector<std::string> names = p.stack.empty() ? std::vector<std::string>{p.hf_name} : p.stack;
  std::vector<float> imat;
  if (imatrix_ && imatrix_->has(p.gguf_name)) imat = imatrix_->values(p.gguf_name);
  std::map<std::string, Tensor> replaced;
  for (size_t e = 0; e < names.size(); ++e) {
    Tensor t = model_.weights->load(names[e]);
    const int64_t n = t.shape.back(), rows = t.numel() / n;
    std::vector<uint8_t> q(ggml::row_size(type, n) * size_t(rows));
    ggml::quantize_rows(type, t.ptr(), q.data(), rows, n, imat.empty() ? nullptr : imat.data() + int64_t(e) * n);
    ggml::dequantize_rows(type, q.data(), t.ptr(), rows, n);
    replaced.emplace(names[e], std::move(t));
  }
  LoadedModel probed = model_;
  probed.weights = overlay_weights(model_.weights, std::move(replaced));
  const FullModel candidate(probed);
  HeldLogits held(base_, model_.config.vocab);
  return kl_divergence(held, {&candidate}, windows_).front().kld;
}

}  // namespace quantllm
