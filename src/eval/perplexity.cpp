// Perplexity over evaluation windows (see perplexity.h).
#include "eval/perplexity.h"

#include "core/error.h"

#include <chrono>
#include <cmath>

namespace quantllm {

Windows make_windows(const Tokenizer& tok, const std::string& text, int64_t ctx, int64_t max_windows) {
  if (ctx < 2) fail("--ctx must be at least 2, got {}", ctx);
  const auto ids = tok.encode(text, /*add_special=*/false);
  const bool bos = tok.adds_bos() && tok.bos_id().has_value();
  const int64_t span = bos ? ctx - 1 : ctx;  // text tokens per window
  Windows w;
  w.ctx = ctx;
  w.text_tokens = int64_t(ids.size());
  w.n_windows = int64_t(ids.size()) / span;
  if (max_windows > 0) w.n_windows = std::min(w.n_windows, max_windows);
  if (w.n_windows == 0)
    fail("the text has {} tokens, fewer than one window of {} tokens", ids.size(), span);
  w.tokens.reserve(size_t(w.n_windows * ctx));
  for (int64_t i = 0; i < w.n_windows; ++i) {
    if (bos) w.tokens.push_back(*tok.bos_id());
    w.tokens.insert(w.tokens.end(), ids.begin() + i * span, ids.begin() + (i + 1) * span);
  }
  return w;
}

PerplexityResult perplexity(const ModelRunner& model, const Windows& w, int64_t batch, const ProgressFn& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t ctx = w.ctx;
  if (batch <= 0) batch = model.default_batch();
  std::vector<double> window_nll(static_cast<size_t>(w.n_windows), 0.0);
  for (int64_t b0 = 0; b0 < w.n_windows; b0 += batch) {
    const int64_t nb = std::min(batch, w.n_windows - b0);
    const std::vector<int32_t> toks(w.tokens.begin() + b0 * ctx, w.tokens.begin() + (b0 + nb) * ctx);
    const std::vector<double> nll = model.window_nll(toks, nb, ctx);
    for (int64_t s = 0; s < nb; ++s) window_nll[size_t(b0 + s)] = nll[size_t(s)];
    if (progress) progress(b0 + nb, w.n_windows);
  }
  return perplexity_of(window_nll, w, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

PerplexityResult perplexity_of(const std::vector<double>& window_nll, const Windows& w, double seconds) {
  QL_ASSERT(int64_t(window_nll.size()) == w.n_windows);
  PerplexityResult r;
  double total = 0;
  for (double v : window_nll) total += v;  // fixed order: independent of batching and threads
  r.windows = w.n_windows;
  r.tokens_scored = w.n_windows * (w.ctx - 1);
  r.nll = total / double(r.tokens_scored);
  r.ppl = std::exp(r.nll);
  r.seconds = seconds;
  r.tokens_per_second = double(w.n_windows * w.ctx) / r.seconds;
  return r;
}

}  // namespace quantllm
