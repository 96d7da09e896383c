// Perplexity and KL divergence over fixed windows of a text (the protocol of
// ../shared/models/README.md): the text is tokenized whole without special tokens and cut into
// consecutive windows of ctx−1 tokens (ctx when the tokenizer adds no BOS); each window gets BOS
// in front when the tokenizer adds one; every token after the first position is scored.
#pragma once

#include "model/weights.h"
#include "quantllm/eval.h"
#include "runtime/model_runner.h"
#include "tokenizer/tokenizer.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace quantllm {

struct Windows {
  std::vector<int32_t> tokens;  // [n_windows, ctx]
  int64_t n_windows = 0;
  int64_t ctx = 0;
  int64_t text_tokens = 0;  // tokens of the whole text
};

// Cuts tokenized text into evaluation windows (max_windows <= 0: all complete windows).
Windows make_windows(const Tokenizer& tok, const std::string& text, int64_t ctx, int64_t max_windows);

// PerplexityResult: include/quantllm/eval.h.

using ProgressFn = std::function<void(int64_t done, int64_t total)>;

// Runs `model` (on any device) over the windows in batches; `batch` windows at a time (<= 0: the
// runner's default).
PerplexityResult perplexity(const ModelRunner& model, const Windows& w, int64_t batch = 0,
                            const ProgressFn& progress = {});

// The result from each window's summed NLL (added in window order, so independent of batching).
PerplexityResult perplexity_of(const std::vector<double>& window_nll, const Windows& w, double seconds);

}  // namespace quantllm
