// Measuring and running models: perplexity, KL divergence from a base model, the comparison report of
// several candidates, text generation with a KV cache, logits of windows, and the importance matrix.
// Every call takes opened Models (model.h); the text protocol is ../shared/models/README.md's: the text
// tokenized whole, cut into consecutive windows of ctx − 1 tokens with BOS in front when the tokenizer
// adds one, every token after the first position scored.
#pragma once

#include "quantllm/model.h"
#include "quantllm/util.h"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace quantllm {

struct EvalOptions {
  int64_t ctx = 512;
  int64_t max_windows = 0;      // 0: every complete window
  int64_t batch = 0;            // windows per forward pass (0: the device's default)
  std::string engine = "quant"; // cpu: "quant" (weights stay packed, ISA kernels) or "fp32" (every weight widened)
  std::string device = "cpu";   // "cpu" or "cuda" (perplexity, compare, Runner; kl_divergence: cpu only)
  bool gpu_tf32 = false;        // cuda: tf32 products (else fp32)
};

struct PerplexityResult {
  double ppl = 0, nll = 0;  // nll: mean negative log-likelihood (nats)
  int64_t tokens_scored = 0, windows = 0;
  double seconds = 0, tokens_per_second = 0;
};

// Perplexity of a model on a text file.
PerplexityResult perplexity(const Model& model, const std::filesystem::path& text_file, const EvalOptions& options = {},
                            const ProgressCallback& progress = {});

struct KldResult {
  double kld = 0;             // mean KL(base ‖ model), nats
  double kld_p99 = 0;         // 99th percentile of the per-position KL
  double top1_agreement = 0;  // share of positions where argmax(model) == argmax(base)
  double ppl_base = 0, ppl = 0;
  double seconds = 0;
  int64_t positions = 0, windows = 0;
  bool base_from_cache = false;
};

// KL divergence of `model`'s next-token distributions from `base`'s over the windows of a text. With
// use_cache the base's logits are kept on disk (~/.cache/quantllm/kld) for the next candidate.
KldResult kl_divergence(const Model& base, const Model& model, const std::filesystem::path& text_file,
                        const EvalOptions& options = {}, bool use_cache = true, const ProgressCallback& progress = {});

// `quantllm compare`: one row per model — format, size, bits per weight, perplexity, KL divergence and
// top-1 agreement against the base, evaluation throughput — as Markdown, JSON and an SVG chart.
struct CompareRow {
  std::string name, format;
  uint64_t bytes = 0;
  double bits_per_weight = 0;
  double ppl = 0, kld = 0, top1 = 1;
  double tokens_per_second = 0;
  bool is_base = false;
};
struct CompareReport {
  std::vector<CompareRow> rows;  // the base first
  std::string data_name;
  int64_t windows = 0;
  std::string markdown() const;
  std::string json() const;
  std::string svg() const;  // KL divergence and perplexity against bits per weight
};
CompareReport compare(const Model& base, const std::vector<Model>& candidates, const std::filesystem::path& text_file,
                      const EvalOptions& options = {}, const ProgressCallback& progress = {});

struct GenerateOptions {
  int max_tokens = 64;
  double temperature = 0;  // 0: greedy
  int top_k = 0;           // 0: off
  double top_p = 1.0;      // 1: off
  uint64_t seed = 0;
  bool chat = false;       // wrap the prompt in the model's chat template
  std::string engine = "quant";
};
struct GenerateResult {
  std::string text;              // the continuation
  std::vector<int32_t> tokens;   // its tokens
  int64_t prompt_tokens = 0;
  double tokens_per_second = 0, prompt_tokens_per_second = 0;
};
// Continues a prompt with the KV cache. on_text receives the prompt's text first, then every new piece
// of text as soon as it decodes to whole characters (streaming).
GenerateResult generate(const Model& model, const std::string& prompt, const GenerateOptions& options = {},
                        const std::function<void(const std::string& text)>& on_text = {});

// A model ready to compute logits (the Python package's forward pass).
class Runner {
 public:
  Runner(const Model& model, const std::string& engine = "fp32", const std::string& device = "cpu",
         bool gpu_tf32 = false);
  ~Runner();
  Runner(Runner&&) noexcept;
  // tokens [n_seq · seq_len] (windows from position 0) → logits [n_seq · seq_len · vocab].
  std::vector<float> logits(const std::vector<int32_t>& tokens, int64_t n_seq, int64_t seq_len) const;
  int64_t vocab() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct ImatrixOptions {
  int64_t ctx = 512;       // tokens per chunk
  int64_t chunks = 128;    // at most this many chunks (≤ 0: all)
  std::string device = "cpu";
};
struct ImatrixResult {
  int64_t tensors = 0, chunks = 0, chunk_size = 0;
};
// llama.cpp's importance matrix (Σx² per input channel of every linear layer) from a text file, written
// to `out` (llama.cpp's imatrix GGUF format) atomically.
ImatrixResult compute_imatrix(const Model& model, const std::filesystem::path& text_file,
                              const std::filesystem::path& out, const ImatrixOptions& options = {},
                              bool overwrite = false, const ProgressCallback& progress = {});

}  // namespace quantllm
