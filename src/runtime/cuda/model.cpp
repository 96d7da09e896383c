// A whole model on the GPU for evaluation (see model.h).
#include "runtime/cuda/model.h"

#include "runtime/block.h"
#include "runtime/cuda/kernels.h"
#include "runtime/forward.h"

namespace quantllm::cuda {

namespace {
DeviceLinear upload_linear(const Context& ctx, const Tensor& w) {
  DeviceLinear d;
  if (w.empty()) return d;
  upload_tensor(ctx, w, d.w);
  d.out = w.dim(0);
  d.in = w.dim(1);
  return d;
}
}  // namespace

DeviceModel::DeviceModel(const LoadedModel& m, Math math) : ctx_(), c_(m.config), math_(math) {
  const Context& ctx = ctx_;
  globals_ = load_globals(c_, *m.weights);
  for (int i = 0; i < c_.n_layers; ++i) blocks_.push_back(upload_block(ctx, load_block(c_, *m.weights, i)));
  if (c_.final_norm) {
    upload_tensor(ctx, globals_.final_norm.w, final_norm_.w);
    upload_tensor(ctx, globals_.final_norm.b, final_norm_.b);
  }
  project_out_ = upload_linear(ctx, globals_.project_out);
  lm_head_ = upload_linear(ctx, globals_.lm_head);
  globals_.lm_head = Tensor();  // on the device now
  globals_.project_out = Tensor();
}

const float* DeviceModel::trunk(const std::vector<int32_t>& tokens, int64_t n_seq, int64_t T) const {
  if (!ops_ || ops_->seq_len() != T) ops_ = std::make_unique<Ops>(ctx_, c_, T, math_);
  const int64_t rows = n_seq * T, d = c_.hidden, e = c_.word_embed_proj_dim;
  const Tensor x_host = embed(c_, globals_, tokens, n_seq, T);  // [rows, hidden] (OPT's project_in applied)
  x_.reserve(rows * d, "hidden states");
  ctx_.upload(x_.data(), x_host.ptr(), size_t(rows * d) * sizeof(float));
  for (int i = 0; i < c_.n_layers; ++i) {
    ops_->bind(c_.block(i), blocks_[size_t(i)]);
    run_block(*ops_, c_.block(i), Act{x_.data(), rows, d}, Step{n_seq, T, 0, nullptr, i});
  }
  // Head: final norm, OPT's project_out; lm_head by the callers.
  const float* h = x_.data();
  if (c_.final_norm) {
    h_.reserve(rows * d, "final norm");
    if (c_.arch->norm == NormKind::LayerNorm)
      k::layer_norm(x_.data(), final_norm_.w.data(), final_norm_.b.data(), h_.data(), rows, d, c_.norm_eps, ctx_.stream());
    else
      k::rms_norm(x_.data(), final_norm_.w.data(), h_.data(), rows, d, c_.norm_eps, c_.arch->norm_gain_offset,
                  ctx_.stream());
    h = h_.data();
  }
  if (project_out_.out > 0) {
    p_.reserve(rows * e, "project_out");
    ops_->linear(project_out_, h, rows, p_.data());
    h = p_.data();
  }
  return h;
}

void DeviceModel::forward(const std::vector<int32_t>& tokens, int64_t n_seq, int64_t T,
                          const std::function<void(int64_t, const Tensor&)>& on_logits) const {
  const float* h = trunk(tokens, n_seq, T);
  logits_.reserve(T * c_.vocab, "logits");
  Tensor logits(Shape{T, c_.vocab});
  for (int64_t s = 0; s < n_seq; ++s) {
    ops_->linear(lm_head_, h + s * T * lm_head_.in, T, logits_.data());
    if (c_.final_softcap > 0) k::softcap(logits_.data(), T * c_.vocab, float(c_.final_softcap), ctx_.stream());
    ctx_.download(logits.ptr(), logits_.data(), size_t(T * c_.vocab) * sizeof(float));
    on_logits(s, logits);
  }
}

std::vector<double> DeviceModel::window_nll(const std::vector<int32_t>& tokens, int64_t n_seq, int64_t T) const {
  QL_ASSERT(int64_t(tokens.size()) == n_seq * T && T >= 2);
  const float* h = trunk(tokens, n_seq, T);
  logits_.reserve(T * c_.vocab, "logits");
  nll_.reserve(n_seq * (T - 1), "nll");
  // targets[s, t] = tokens[s, t + 1] for t < T − 1
  std::vector<int32_t> targets(size_t(n_seq * (T - 1)));
  for (int64_t s = 0; s < n_seq; ++s)
    for (int64_t t = 0; t + 1 < T; ++t) targets[size_t(s * (T - 1) + t)] = tokens[size_t(s * T + t + 1)];
  targets_.reserve(int64_t(targets.size()), "targets");
  ctx_.upload(targets_.data(), targets.data(), targets.size() * sizeof(int32_t));
  for (int64_t s = 0; s < n_seq; ++s) {
    ops_->linear(lm_head_, h + s * T * lm_head_.in, T - 1, logits_.data());
    if (c_.final_softcap > 0) k::softcap(logits_.data(), (T - 1) * c_.vocab, float(c_.final_softcap), ctx_.stream());
    k::token_nll(logits_.data(), targets_.data() + s * (T - 1), T - 1, c_.vocab, nll_.data() + s * (T - 1), ctx_.stream());
  }
  const std::vector<double> nll = to_host(ctx_, nll_.data(), n_seq * (T - 1));
  std::vector<double> out(static_cast<size_t>(n_seq), 0.0);
  for (int64_t s = 0; s < n_seq; ++s)
    for (int64_t t = 0; t + 1 < T; ++t) out[size_t(s)] += nll[size_t(s * (T - 1) + t)];  // position order, as on the CPU
  return out;
}

}  // namespace quantllm::cuda
