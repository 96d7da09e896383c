// KL divergence and top-1 agreement against a base model (see kld.h).
#include "eval/kld.h"

#include "core/error.h"
#include "core/threads.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace quantllm {

namespace {

// log-softmax of one row, in double. [vocab]
void log_softmax(const float* logits, int64_t vocab, std::vector<double>& out) {
  out.resize(size_t(vocab));
  double mx = logits[0];
  for (int64_t j = 1; j < vocab; ++j) mx = std::max(mx, double(logits[j]));
  double sum = 0;
  for (int64_t j = 0; j < vocab; ++j) sum += std::exp(double(logits[j]) - mx);
  const double lse = std::log(sum) + mx;
  for (int64_t j = 0; j < vocab; ++j) out[size_t(j)] = double(logits[j]) - lse;
}

int64_t argmax(const float* x, int64_t n) { return int64_t(std::max_element(x, x + n) - x); }

}  // namespace

std::vector<KldResult> kl_divergence(const ModelRunner& base, const std::vector<const ModelRunner*>& candidates,
                                     const Windows& w, int64_t batch, const ProgressFn& progress) {
  auto src = model_base_logits(base, w);
  return kl_divergence(*src, candidates, w, batch, progress);
}

std::vector<KldResult> kl_divergence(BaseLogits& base, const std::vector<const ModelRunner*>& candidates,
                                     const Windows& w, int64_t batch, const ProgressFn& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t vocab = base.vocab(), ctx = w.ctx;
  for (const ModelRunner* c : candidates)
    if (c->config().vocab != vocab)
      fail("the candidate's vocabulary ({}) differs from the base's ({})", c->config().vocab, vocab);
  if (batch <= 0) batch = 4;
  const size_t nc = candidates.size();
  const int64_t positions = w.n_windows * (ctx - 1);
  // Per position results, stored by index so the reductions below run in a fixed order.
  std::vector<std::vector<double>> kl(nc, std::vector<double>(size_t(positions)));
  std::vector<std::vector<double>> nll(nc, std::vector<double>(size_t(positions)));
  std::vector<std::vector<char>> agree(nc, std::vector<char>(size_t(positions)));
  std::vector<double> base_nll(static_cast<size_t>(positions));
  for (int64_t b0 = 0; b0 < w.n_windows; b0 += batch) {
    const int64_t nb = std::min(batch, w.n_windows - b0);
    const std::vector<int32_t> toks(w.tokens.begin() + b0 * ctx, w.tokens.begin() + (b0 + nb) * ctx);
    const std::vector<Tensor> base_logits = base.batch(w, b0, nb);
    for (int64_t s = 0; s < nb; ++s)
      for (int64_t t = 0; t + 1 < ctx; ++t)
        base_nll[size_t((b0 + s) * (ctx - 1) + t)] =
            token_nll(base_logits[size_t(s)].row(t), vocab, toks[size_t(s * ctx + t + 1)]);
    for (size_t ci = 0; ci < nc; ++ci) {
      candidates[ci]->forward(toks, nb, ctx, [&](int64_t s, const Tensor& logits) {
        parallel_for(ctx - 1, [&](int64_t t0_, int64_t t1_) {
          std::vector<double> lp, lq;
          for (int64_t t = t0_; t < t1_; ++t) {
            const float* pb = base_logits[size_t(s)].row(t);
            const float* pm = logits.row(t);
            log_softmax(pb, vocab, lp);
            log_softmax(pm, vocab, lq);
            double d = 0;
            for (int64_t j = 0; j < vocab; ++j) d += std::exp(lp[size_t(j)]) * (lp[size_t(j)] - lq[size_t(j)]);
            const size_t pos = size_t((b0 + s) * (ctx - 1) + t);
            kl[ci][pos] = std::max(0.0, d);
            nll[ci][pos] = -lq[size_t(toks[size_t(s * ctx + t + 1)])];
            agree[ci][pos] = argmax(pb, vocab) == argmax(pm, vocab);
          }
        });
      });
    }
    if (progress) progress(b0 + nb, w.n_windows);
  }
  base.finish();
  double base_total = 0;
  for (double v : base_nll) base_total += v;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<KldResult> out(nc);
  for (size_t ci = 0; ci < nc; ++ci) {
    double k = 0, n = 0;
    int64_t a = 0;
    for (int64_t p = 0; p < positions; ++p) k += kl[ci][size_t(p)], n += nll[ci][size_t(p)], a += agree[ci][size_t(p)];
    auto sorted = kl[ci];
    std::sort(sorted.begin(), sorted.end());
    KldResult& r = out[ci];
    r.kld = k / double(positions);
    r.kld_p99 = sorted[size_t(std::min<int64_t>(positions - 1, int64_t(0.99 * double(positions))))];
    r.top1_agreement = double(a) / double(positions);
    r.ppl_base = std::exp(base_total / double(positions));
    r.ppl = std::exp(n / double(positions));
    r.positions = positions;
    r.windows = w.n_windows;
    r.seconds = seconds;
  }
  return out;
}

}  // namespace quantllm
