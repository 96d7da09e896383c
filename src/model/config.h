// ModelConfig: the hyperparameters of a checkpoint, read from config.json (transformers 4 layout with
// top-level rope_theta / rope_scaling, or transformers 5 with rope_parameters) or from GGUF metadata.
#pragma once

#include "core/dtype.h"
#include "model/arch.h"
#include "model/block_spec.h"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace quantllm {

enum class RopeScaling { None, Linear, Llama3, LongRope };

struct ModelConfig {
  const ArchSpec* arch = nullptr;
  int64_t hidden = 0;          // hidden_size
  int64_t n_layers = 0;        // num_hidden_layers
  int64_t n_heads = 0;         // num_attention_heads
  int64_t n_kv_heads = 0;      // num_key_value_heads (GQA); = n_heads when absent
  int64_t head_dim = 0;        // head_dim when given, else hidden / n_heads
  int64_t rotary_dim = 0;      // Phi: the rotated leading dims of each head (partial_rotary_factor); 0 = head_dim
  int64_t ffn = 0;             // intermediate_size / ffn_dim
  int64_t vocab = 0;           // vocab_size
  int64_t max_positions = 0;   // max_position_embeddings
  int64_t word_embed_proj_dim = 0;  // OPT: embedding width (project_in/out when != hidden)
  double norm_eps = 1e-5;      // rms_norm_eps / layer_norm_eps
  double rope_theta = 10000.0;
  RopeScaling rope_scaling = RopeScaling::None;
  double rope_factor = 1.0;    // linear / llama3
  double rope_low_freq_factor = 1.0, rope_high_freq_factor = 4.0;  // llama3
  int64_t rope_original_max_positions = 8192;                      // llama3, longrope
  // Phi-3 / Phi-4-mini "longrope": per-frequency divisors of the rotated dims' inverse frequencies [rope_dim / 2]
  // (short ones up to original_max_position_embeddings, long ones beyond) and a factor on cos and sin,
  // √(1 + ln(max_position_embeddings / original) / ln(original)) unless the config gives attention_factor.
  std::vector<double> rope_short_factor, rope_long_factor;
  double rope_attn_factor = 1.0;
  // Per-frequency divisors as llama.cpp stores llama3 scaling (GGUF tensor rope_freqs.weight,
  // [head_dim / 2]); when present they replace rope_scaling. Read from GGUF files only.
  std::vector<float> rope_freq_factors;
  bool qkv_bias = false;       // attention_bias (Llama/Mistral), always on for Qwen2 and OPT
  bool o_bias = false;
  bool mlp_bias = false;
  bool tied_embeddings = false;  // tie_word_embeddings (lm_head = embed_tokens)
  bool norm_before = true;       // OPT do_layer_norm_before (post-LN when false, OPT-350m)
  bool final_norm = true;        // OPT: _remove_final_layer_norm
  int64_t sliding_window = 0;    // Mistral, Gemma: the window of the sliding-window layers; 0 = none
  // Per layer: whether its attention is windowed (layer_types "sliding_attention"); empty = every layer
  // when sliding_window > 0 (Mistral).
  std::vector<bool> sliding_layers;
  double rope_theta_sliding = 0;  // Gemma 3: RoPE base of the sliding layers (no scaling); 0 = rope_theta
  double attn_scale = 0;          // query · key multiplier; 0 = 1/√head_dim (Gemma: query_pre_attn_scalar^−½)
  double attn_softcap = 0;        // Gemma 2: scores ← cap · tanh(scores / cap) before the mask; 0 = none
  double final_softcap = 0;       // Gemma 2: logits ← cap · tanh(logits / cap); 0 = none
  // Mixture of experts (Qwen3-MoE, Mixtral): the layers whose feed-forward is n_experts experts of width
  // moe_ffn with a router choosing n_experts_used per token; the others keep the dense ffn.
  int64_t n_experts = 0;         // num_experts / num_local_experts; 0 = dense model
  int64_t n_experts_used = 0;    // num_experts_per_tok
  int64_t moe_ffn = 0;           // moe_intermediate_size (Mixtral: intermediate_size)
  bool norm_topk_prob = true;    // the top-k routing weights renormalized to sum 1
  std::vector<bool> moe_layers;  // per layer (mlp_only_layers, decoder_sparse_step)
  DType dtype = DType::F32;      // torch_dtype / dtype of the stored weights
  int64_t bos_token_id = -1, eos_token_id = -1;

  // One BlockSpec per layer (model/block_spec.h), derived once every field above is set.
  std::shared_ptr<const std::vector<BlockSpec>> blocks;

  bool layer_sliding(int64_t layer) const {
    return sliding_window > 0 && (sliding_layers.empty() || sliding_layers[size_t(layer)]);
  }
  int64_t rope_dim() const { return rotary_dim > 0 ? rotary_dim : head_dim; }
  bool layer_moe(int64_t layer) const { return n_experts > 0 && moe_layers[size_t(layer)]; }
  int64_t q_dim() const { return n_heads * head_dim; }
  int64_t kv_dim() const { return n_kv_heads * head_dim; }
  const BlockSpec& block(int64_t layer) const;
  std::string block_prefix(int64_t layer) const;  // "model.layers.3."
};

// Parses config.json. `source` names the file in error messages. Throws Error for malformed JSON,
// a missing or nonsensical field, or an unsupported architecture (listing the supported ones).
ModelConfig parse_config_json(std::string_view json_text, const std::string& source = "config.json");
ModelConfig load_config(const std::filesystem::path& model_dir);

// RoPE inverse frequencies as Hugging Face computes them (in float32, before any scaling) for base
// `theta` (default: c.rope_theta). [head_dim / 2]
std::vector<double> rope_base_inv_freq(const ModelConfig& c, double theta = 0);
// llama3 scaling as a divisor per frequency (transformers' _compute_llama3_parameters; llama.cpp's
// rope_freqs): 1 for wavelengths below original/high_freq_factor, `factor` above original/low_freq_factor,
// 1 / ((1 − s)/factor + s) between, s = (original/wavelength − low) / (high − low). [head_dim / 2]
std::vector<double> llama3_rope_freq_factors(const ModelConfig& c);

}  // namespace quantllm
