// KL divergence of a model's next-token distributions from a base model's, over the perplexity
// windows (same protocol as perplexity.h): mean over scored positions of Σ p_base · (log p_base −
// log p_model), the share of positions whose argmax agrees, and both perplexities. Candidates are
// compared in lockstep with the base, one batch of windows at a time, so the base distribution of
// each window is computed once however many candidates there are; `eval kld` also keeps it on
// disk for the next candidate (base_logits.h).
#pragma once

#include "eval/base_logits.h"
#include "eval/perplexity.h"

#include <vector>

namespace quantllm {

// KldResult: include/quantllm/eval.h.


// One result per candidate. The base's logits come from `base` (a model run now or a cache file).
std::vector<KldResult> kl_divergence(BaseLogits& base, const std::vector<const ModelRunner*>& candidates,
                                     const Windows& w, int64_t batch = 0, const ProgressFn& progress = {});
// The same, running the base model (no cache).
std::vector<KldResult> kl_divergence(const ModelRunner& base, const std::vector<const ModelRunner*>& candidates,
                                     const Windows& w, int64_t batch = 0, const ProgressFn& progress = {});

}  // namespace quantllm
