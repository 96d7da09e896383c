// Perplexity on the GPU: eval/perplexity.h's protocol and NLL (log-softmax in double, as token_nll,
// computed on the device; the per-window sums added on the host in window order) with the forward pass
// on the device (runtime/cuda/model.h).
#include "pipeline/cuda/cuda_methods.h"

#include "runtime/cuda/model.h"

#include <chrono>
#include <cmath>

namespace quantllm {

PerplexityResult perplexity_cuda(const Model& m, const Windows& w, bool tf32, int64_t batch, const ProgressFn& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  cuda::Context ctx;
  cuda::DeviceModel model(ctx, m, tf32 ? cuda::Math::TF32 : cuda::Math::FP32);
  const int64_t ctx_len = w.ctx;
  if (batch <= 0) batch = 16;
  std::vector<double> window_nll(static_cast<size_t>(w.n_windows), 0.0);
  for (int64_t b0 = 0; b0 < w.n_windows; b0 += batch) {
    const int64_t nb = std::min(batch, w.n_windows - b0);
    std::vector<int32_t> toks(w.tokens.begin() + b0 * ctx_len, w.tokens.begin() + (b0 + nb) * ctx_len);
    const std::vector<double> nll = model.window_nll(toks, nb, ctx_len);
    for (int64_t s = 0; s < nb; ++s) window_nll[size_t(b0 + s)] = nll[size_t(s)];
    if (progress) progress(b0 + nb, w.n_windows);
  }
  return perplexity_of(window_nll, w, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

}  // namespace quantllm
