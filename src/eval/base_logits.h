// Where KL divergence gets the base model's next-token logits: the base model run now, or a cache
// file an earlier run wrote, so that `eval kld` of several candidates against one base computes the
// base's distributions once.
//
// Cache file (little-endian), one per (base model, evaluation windows):
//   "QLKLDv1\0"  u64 key  i64 vocab  i64 ctx  i64 n_windows
//   then for each window, the logits of its scored positions 0 … ctx−2: [ctx−1, vocab] f32
// The raw fp32 logits are stored (not rounded log-probabilities), so results from the cache are
// bit-identical to running the base. key hashes the base's identity (canonical path; name, size
// and modification time of its files) and the window tokens (text, tokenizer, ctx, window count).
// Files live in $XDG_CACHE_HOME/quantllm/kld (or ~/.cache/…), are written atomically when the
// whole pass has run, only when no larger than QUANTLLM_KLD_CACHE_MB (default 4096), and only the
// 4 most recently used are kept.
#pragma once

#include "eval/perplexity.h"
#include "io/mapped_file.h"

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string_view>
#include <vector>

namespace quantllm {

class BaseLogits {
 public:
  virtual ~BaseLogits() = default;
  virtual int64_t vocab() const = 0;
  // Logits of windows b0 … b0+nb−1 of w: one tensor per window, rows 0 … ctx−2 used. [ctx(−1), vocab]
  virtual std::vector<Tensor> batch(const Windows& w, int64_t b0, int64_t nb) = 0;
  // Called once after the last batch.
  virtual void finish() {}
};

// Runs the base model; with a non-empty cache_path, also writes the cache file (see above).
std::unique_ptr<BaseLogits> model_base_logits(const ModelRunner& base, const Windows& w,
                                              const std::filesystem::path& cache_path = {}, uint64_t key = 0);
// Reads a cache file; nullptr when it is missing or was written for another key or shape.
std::unique_ptr<BaseLogits> cached_base_logits(const std::filesystem::path& path, uint64_t key, const Windows& w,
                                               int64_t vocab);

// The cache key of a base model path, the windows and how the logits were computed (`how`: the
// engine, whose logits differ in the last bits), and the cache file for it ("" when caching is off
// because the file would exceed the size limit).
uint64_t base_logits_key(const std::filesystem::path& base, const Windows& w, std::string_view how);
std::filesystem::path base_logits_cache_path(uint64_t key, const Windows& w, int64_t vocab);

}  // namespace quantllm
