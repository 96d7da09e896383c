// Synthetic checkpoints: a Hugging Face directory with the shapes of a real model (Llama-3.2-1B,
// Llama-2-7B, …) and random weights, so that speed can be measured at sizes where kernels, not overheads,
// dominate, without downloading anything. The same seed gives the same bytes with any thread count.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace quantllm {

// The hyperparameters of one named shape (one row of synth_shapes()).
struct SynthShape {
  std::string_view name;          // "llama-3.2-1b"
  std::string_view architecture;  // config.json "architectures"[0]: LlamaForCausalLM, Qwen2ForCausalLM, …
  int64_t hidden, layers, heads, kv_heads, ffn, vocab, max_positions;
  double rope_theta;
  double llama3_rope_factor;  // 0: no RoPE scaling; else llama3 scaling (low 1, high 4, original 8192)
  double norm_eps;
  bool tied;
  int64_t head_dim = 0;  // 0: hidden / heads (Qwen3: 128 whatever the width; with per-head q/k norms)
  // Mixture of experts (Qwen3-MoE): experts of width moe_ffn, experts_used per token, every layer MoE.
  int64_t experts = 0, experts_used = 0, moe_ffn = 0;
  double parameters() const;  // every weight of the checkpoint it writes
};

// Every named shape, smallest first.
const std::vector<SynthShape>& synth_shapes();
// The row called `name`; Error listing the known names otherwise.
const SynthShape& synth_shape(std::string_view name);

struct SynthOptions {
  SynthShape shape;               // a table row, possibly with fields overridden
  std::filesystem::path out;      // the directory to create
  std::filesystem::path tokenizer_from;  // a model directory whose tokenizer files are copied
  std::string dtype = "bf16";     // "bf16" or "f16"
  uint64_t seed = 0;
  uint64_t shard_bytes = 5'000'000'000;  // largest shard (transformers' default max_shard_size "5GB")
  bool overwrite = false;
  bool weights = true;  // false: only config.json and the tokenizer (what a synth: source keeps on disk)
  // Called after each chunk of tensor data is written: (bytes written, total bytes).
  std::function<void(uint64_t done, uint64_t total)> progress;
};

struct SynthResult {
  uint64_t bytes = 0;       // tensor data written
  int64_t parameters = 0;
  int shards = 0;
};

// Writes the checkpoint; Error (one line) for an impossible shape, an unusable tokenizer directory or
// an output path that exists without overwrite.
SynthResult write_synthetic_checkpoint(const SynthOptions& opt);

}  // namespace quantllm
