// Test support: small random-weight Hugging Face checkpoints of the architecture variants the
// reference models do not cover (Qwen2 with biases and a byte-level tokenizer, Llama with an explicit
// head_dim and llama3 RoPE scaling, Mistral with a sliding window, OPT with project_in/out and post-LN,
// Gemma 2 with soft-capping and alternating windows, Gemma 3 with per-layer-type RoPE).
//
// The tensor names and shapes are written out here per family, from the transformers modeling code,
// and not taken from src/model: a checkpoint generated from the loader's own expectations could not
// catch a mistake in them. Every weight is a small integer times a power of two with at most 8
// significant bits, so it is stored exactly in bf16, f16 and f32 alike: the values a test holds in
// `TensorMap` are bit for bit the values on disk, whatever the dtype, and a naive reference forward
// can use them directly.
#pragma once

#include "core/dtype.h"
#include "io/safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "support/reference.h"

namespace quantllm::test {

struct HostTensor {
  std::vector<int64_t> shape;
  std::vector<float> v;
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};
using TensorMap = std::map<std::string, HostTensor>;

enum class Family { Llama, Mistral, Qwen2, Qwen3, Opt, Gemma2, Gemma3, Qwen3Moe, Mixtral, Phi3 };
enum class ConfigLayout { Transformers4, Transformers5 };  // top-level rope_theta + torch_dtype, or rope_parameters + dtype
// Copied SentencePiece one, copied OPT one, or the first 4096 tokens of the OPT vocabulary with the Qwen2 pipeline.
enum class TokenizerStyle { Llama, Opt, Qwen2 };

inline constexpr int64_t kQwen2BaseVocab = 4096;  // OPT tokens kept in the Qwen2-style tokenizer

struct Llama3Rope {
  double factor = 8.0, low_freq_factor = 1.0, high_freq_factor = 4.0;
  int64_t original_max_positions = 64;
};

struct SyntheticSpec {
  Family family = Family::Llama;
  int64_t hidden = 64, layers = 2, heads = 4, kv_heads = 4, ffn = 96;
  int64_t head_dim = 0;  // 0: hidden / heads and not written to config.json
  int64_t vocab = 0;     // 0: the tokenizer's size (Qwen2: rounded up to a multiple of 128, as Qwen pads)
  int64_t max_positions = 128;
  bool tied = false;      // tie_word_embeddings: true and no lm_head tensor
  bool qkv_bias = false;  // Llama/Mistral attention_bias (q, k, v and o); Qwen2 always has q/k/v biases
  double rope_theta = 10000.0;
  std::optional<Llama3Rope> llama3;
  int64_t sliding_window = 0;       // Mistral, Gemma
  // Gemma: query_pre_attn_scalar (0: head_dim), soft-capping (0: none), the sliding layers' RoPE base
  // (Gemma 3) and which layers are global (Gemma 3 writes layer_types; Gemma 2 leaves every 2nd layer global).
  int64_t query_pre_attn_scalar = 0;
  double attn_softcap = 0, final_softcap = 0;
  double rope_theta_sliding = 10000.0;
  std::vector<bool> sliding_layers;
  // MoE (Qwen3-MoE, Mixtral): experts of width moe_ffn (Mixtral: ffn), experts_used per token; Qwen3-MoE's
  // dense layers (mlp_only_layers) keep the ffn-wide MLP.
  int64_t experts = 0, experts_used = 0, moe_ffn = 0;
  std::vector<int64_t> dense_layers;
  bool norm_topk = true;
  double partial_rotary_factor = 1.0;  // Phi: RoPE on the leading part of each head
  // Phi-3 / Phi-4-mini longrope: divisors of the rotated frequencies (rot() / 2 each) and the pretrained
  // context (original_max_position_embeddings, written at the top level as Phi-3's configs do); empty: none.
  std::vector<double> longrope_short, longrope_long;
  int64_t longrope_original = 0;
  int64_t rot() const { return int64_t(double(dh()) * partial_rotary_factor); }
  bool moe() const { return family == Family::Qwen3Moe || family == Family::Mixtral; }
  bool moe_layer(int64_t l) const {
    return moe() && std::find(dense_layers.begin(), dense_layers.end(), l) == dense_layers.end();
  }
  int64_t word_embed_proj_dim = 0;  // OPT; 0: hidden
  bool norm_before = true;          // OPT do_layer_norm_before
  ConfigLayout layout = ConfigLayout::Transformers5;
  std::string dtype = "bfloat16";  // float32 | float16 | bfloat16
  int shards = 1;                  // > 1 writes model-0000k-of-0000n.safetensors + index
  uint64_t seed = 1;

  int64_t dh() const { return head_dim ? head_dim : hidden / heads; }
  int64_t embed_dim() const { return word_embed_proj_dim ? word_embed_proj_dim : hidden; }
  TokenizerStyle tokenizer() const {
    return family == Family::Qwen2 ? TokenizerStyle::Qwen2 : family == Family::Opt ? TokenizerStyle::Opt
                                                                                   : TokenizerStyle::Llama;
  }
  // Tokenizer sizes: llama 8000, OPT 16384, Qwen2 = 4096 OPT tokens + 3 chat special tokens.
  int64_t tokenizer_size() const {
    return tokenizer() == TokenizerStyle::Llama ? 8000 : tokenizer() == TokenizerStyle::Opt ? 16384 : 4099;
  }
  int64_t vocab_size() const {
    if (vocab) return vocab;
    const int64_t n = tokenizer_size();
    return family == Family::Qwen2 ? (n + 127) / 128 * 128 : n;
  }
  const char* architecture() const {
    switch (family) {
      case Family::Llama: return "LlamaForCausalLM";
      case Family::Mistral: return "MistralForCausalLM";
      case Family::Qwen2: return "Qwen2ForCausalLM";
      case Family::Qwen3: return "Qwen3ForCausalLM";
      case Family::Opt: return "OPTForCausalLM";
      case Family::Gemma2: return "Gemma2ForCausalLM";
      case Family::Gemma3: return "Gemma3ForCausalLM";
      case Family::Qwen3Moe: return "Qwen3MoeForCausalLM";
      case Family::Mixtral: return "MixtralForCausalLM";
      case Family::Phi3: return "Phi3ForCausalLM";
    }
    return "";
  }
};

// config.json as the transformers version of `layout` writes it for this family.
inline nlohmann::json config_json(const SyntheticSpec& s) {
  using json = nlohmann::json;
  const bool tf5 = s.layout == ConfigLayout::Transformers5;
  json c = {{"architectures", json::array({s.architecture()})},
            {"hidden_size", s.hidden},
            {"num_hidden_layers", s.layers},
            {"num_attention_heads", s.heads},
            {"vocab_size", s.vocab_size()},
            {"max_position_embeddings", s.max_positions},
            {"tie_word_embeddings", s.tied},
            {tf5 ? "dtype" : "torch_dtype", s.dtype},
            {"transformers_version", tf5 ? "5.0.0" : "4.46.0"},
            {"use_cache", true}};
  if (s.family == Family::Opt) {
    c["model_type"] = "opt";
    c["ffn_dim"] = s.ffn;
    c["word_embed_proj_dim"] = s.embed_dim();
    c["do_layer_norm_before"] = s.norm_before;
    c["_remove_final_layer_norm"] = false;
    c["activation_function"] = "relu";
    c["enable_bias"] = true;
    c["bos_token_id"] = 2;
    c["eos_token_id"] = 2;
    c["pad_token_id"] = 1;
    return c;
  }
  if (s.family == Family::Gemma2 || s.family == Family::Gemma3) {
    // As Gemma2Config / Gemma3TextConfig serialize: hidden_activation, query_pre_attn_scalar, soft-capping
    // (null when off), sliding_window; Gemma 3 lists layer_types and one RoPE setting per layer type.
    c["model_type"] = s.family == Family::Gemma2 ? "gemma2" : "gemma3_text";
    c["intermediate_size"] = s.ffn;
    c["num_key_value_heads"] = s.kv_heads;
    c["head_dim"] = s.dh();
    c["hidden_activation"] = "gelu_pytorch_tanh";
    c["rms_norm_eps"] = 1e-6;
    c["query_pre_attn_scalar"] = s.query_pre_attn_scalar ? s.query_pre_attn_scalar : s.dh();
    c["attn_logit_softcapping"] = s.attn_softcap > 0 ? json(s.attn_softcap) : json(nullptr);
    c["final_logit_softcapping"] = s.final_softcap > 0 ? json(s.final_softcap) : json(nullptr);
    c["sliding_window"] = s.sliding_window;
    c["attention_bias"] = false;
    c["bos_token_id"] = 1;
    c["eos_token_id"] = 2;
    c["pad_token_id"] = 0;
    if (s.family == Family::Gemma2) {
      c["rope_theta"] = s.rope_theta;
      return c;
    }
    json types = json::array();
    for (bool sl : s.sliding_layers) types.push_back(sl ? "sliding_attention" : "full_attention");
    c["layer_types"] = types;
    c["rope_parameters"] = {{"full_attention", {{"rope_type", "default"}, {"rope_theta", s.rope_theta}}},
                            {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", s.rope_theta_sliding}}}};
    return c;
  }
  c["model_type"] = s.family == Family::Qwen2      ? "qwen2"
                    : s.family == Family::Qwen3    ? "qwen3"
                    : s.family == Family::Qwen3Moe ? "qwen3_moe"
                    : s.family == Family::Mixtral  ? "mixtral"
                    : s.family == Family::Phi3     ? "phi3"
                    : s.family == Family::Mistral ? "mistral"
                                                  : "llama";
  c["intermediate_size"] = s.ffn;
  c["num_key_value_heads"] = s.kv_heads;
  c["hidden_act"] = "silu";
  c["rms_norm_eps"] = 1e-6;
  if (s.head_dim) c["head_dim"] = s.head_dim;
  if (s.family == Family::Qwen2) {
    // Qwen2 configs carry a sliding window that is off unless use_sliding_window says so.
    c["use_sliding_window"] = false;
    c["sliding_window"] = 4096;
    c["max_window_layers"] = s.layers;
    c["bos_token_id"] = kQwen2BaseVocab;
    c["eos_token_id"] = kQwen2BaseVocab;
  } else {
    c["attention_bias"] = s.qkv_bias;
    c["mlp_bias"] = false;
    c["bos_token_id"] = 1;
    c["eos_token_id"] = 2;
    c["sliding_window"] = s.sliding_window ? json(s.sliding_window) : json(nullptr);
    if (s.family == Family::Qwen3 || s.family == Family::Qwen3Moe) {  // as the Hub's Qwen3 configs: head_dim
      c["head_dim"] = s.dh();                                            // explicit, sliding window off
      c["use_sliding_window"] = false;
      c["max_window_layers"] = s.layers;
    }
    if (s.family == Family::Qwen3Moe) {  // the Hub's num_experts (transformers 4), num_local_experts (5)
      c[tf5 ? "num_local_experts" : "num_experts"] = s.experts;
      c["num_experts_per_tok"] = s.experts_used;
      c["moe_intermediate_size"] = s.moe_ffn;
      c["norm_topk_prob"] = s.norm_topk;
      c["mlp_only_layers"] = s.dense_layers;
      c["decoder_sparse_step"] = 1;
    }
    if (s.family == Family::Phi3 && s.partial_rotary_factor != 1.0) c["partial_rotary_factor"] = s.partial_rotary_factor;
    if (s.family == Family::Mixtral) {  // experts of intermediate_size, always renormalized
      c["num_local_experts"] = s.experts;
      c["num_experts_per_tok"] = s.experts_used;
    }
  }
  json scaling = nullptr;
  if (s.llama3) {
    scaling = {{"factor", s.llama3->factor},
               {"low_freq_factor", s.llama3->low_freq_factor},
               {"high_freq_factor", s.llama3->high_freq_factor},
               {"original_max_position_embeddings", s.llama3->original_max_positions},
               {"rope_type", "llama3"}};
  }
  if (!s.longrope_short.empty()) {
    scaling = {{"rope_type", "longrope"}, {"short_factor", s.longrope_short}, {"long_factor", s.longrope_long}};
    c["original_max_position_embeddings"] = s.longrope_original;
  }
  if (tf5) {
    json p = scaling.is_null() ? json{{"rope_type", "default"}} : scaling;
    p["rope_theta"] = s.rope_theta;
    c["rope_parameters"] = p;
  } else {
    c["rope_theta"] = s.rope_theta;
    c["rope_scaling"] = scaling;
  }
  return c;
}

// Deterministic values k * 2^e with |k| <= 127: exact in bf16 (8 significant bits), f16 and f32.
class ExactRandom {
 public:
  explicit ExactRandom(uint64_t seed) : rng_(seed) {}
  // Uniform on about [-amplitude, amplitude], amplitude rounded to a power of two.
  std::vector<float> uniform(int64_t n, double amplitude) {
    const int e = int(std::lround(std::log2(amplitude))) - 7;
    std::uniform_int_distribution<int> k(-127, 127);
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = std::ldexp(float(k(rng_)), e);
    return v;
  }
  // 1 + k/128 with |k| <= 16: norm gains near one, still exact in bf16.
  std::vector<float> near_one(int64_t n) {
    std::uniform_int_distribution<int> k(-16, 16);
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = 1.0f + std::ldexp(float(k(rng_)), -7);
    return v;
  }

 private:
  std::mt19937_64 rng_;
};

// Every tensor of the checkpoint with random values, named as transformers names them.
inline TensorMap random_tensors(const SyntheticSpec& s) {
  ExactRandom r(s.seed);
  TensorMap t;
  // Linear weights keep activations near unit scale (amplitude ~ 1/sqrt(in)); embeddings are small
  // enough that tied logits (hidden-long dot products) stay in a few units.
  auto linear = [&](const std::string& base, int64_t out, int64_t in, bool bias) {
    t[base + ".weight"] = {{out, in}, r.uniform(out * in, 1.0 / std::sqrt(double(in)))};
    if (bias) t[base + ".bias"] = {{out}, r.uniform(out, 0.25)};
  };
  const int64_t d = s.hidden, e = s.embed_dim(), V = s.vocab_size();
  const double embed_amp = 4.0 / std::sqrt(double(e));
  if (s.family == Family::Opt) {
    t["model.decoder.embed_tokens.weight"] = {{V, e}, r.uniform(V * e, embed_amp)};
    t["model.decoder.embed_positions.weight"] = {{s.max_positions + 2, d}, r.uniform((s.max_positions + 2) * d, 0.25)};
    if (e != d) {
      linear("model.decoder.project_in", d, e, false);
      linear("model.decoder.project_out", e, d, false);
    }
    // OPTDecoder has a final LayerNorm only for pre-LN models (do_layer_norm_before).
    if (s.norm_before) {
      t["model.decoder.final_layer_norm.weight"] = {{d}, r.near_one(d)};
      t["model.decoder.final_layer_norm.bias"] = {{d}, r.uniform(d, 0.125)};
    }
    for (int64_t i = 0; i < s.layers; ++i) {
      const std::string p = "model.decoder.layers." + std::to_string(i) + ".";
      for (const char* n : {"q_proj", "k_proj", "v_proj", "out_proj"}) linear(p + "self_attn." + n, d, d, true);
      linear(p + "fc1", s.ffn, d, true);
      linear(p + "fc2", d, s.ffn, true);
      for (const char* n : {"self_attn_layer_norm", "final_layer_norm"}) {
        t[p + n + ".weight"] = {{d}, r.near_one(d)};
        t[p + n + ".bias"] = {{d}, r.uniform(d, 0.125)};
      }
    }
    if (!s.tied) t["lm_head.weight"] = {{V, e}, r.uniform(V * e, embed_amp)};
    return t;
  }
  const int64_t q = s.heads * s.dh(), kv = s.kv_heads * s.dh();
  const bool qkv_bias = s.family == Family::Qwen2 || s.qkv_bias;
  const bool o_bias = s.family != Family::Qwen2 && s.qkv_bias;
  // Gemma stores norm gains as w and applies 1 + w: small values around zero.
  const bool gemma = s.family == Family::Gemma2 || s.family == Family::Gemma3;
  auto gain = [&](int64_t n) { return gemma ? r.uniform(n, 0.125) : r.near_one(n); };
  t["model.embed_tokens.weight"] = {{V, d}, r.uniform(V * d, gemma ? embed_amp / 8 : embed_amp)};
  t["model.norm.weight"] = {{d}, gain(d)};
  for (int64_t i = 0; i < s.layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    if (s.family == Family::Phi3) {  // fused: rows [q; k; v]
      linear(p + "self_attn.qkv_proj", q + 2 * kv, d, false);
    } else {
      linear(p + "self_attn.q_proj", q, d, qkv_bias);
      linear(p + "self_attn.k_proj", kv, d, qkv_bias);
      linear(p + "self_attn.v_proj", kv, d, qkv_bias);
    }
    linear(p + "self_attn.o_proj", d, q, o_bias);
    if (s.moe_layer(i)) {
      const bool mixtral = s.family == Family::Mixtral;
      const std::string m = mixtral ? "block_sparse_moe." : "mlp.";
      const int64_t f = mixtral ? s.ffn : s.moe_ffn;
      linear(p + m + "gate", s.experts, d, false);
      for (int64_t e = 0; e < s.experts; ++e) {
        const std::string x = p + m + "experts." + std::to_string(e) + ".";
        linear(x + (mixtral ? "w1" : "gate_proj"), f, d, false);
        linear(x + (mixtral ? "w3" : "up_proj"), f, d, false);
        linear(x + (mixtral ? "w2" : "down_proj"), d, f, false);
      }
    } else if (s.family == Family::Phi3) {  // fused: rows [gate; up]
      linear(p + "mlp.gate_up_proj", 2 * s.ffn, d, false);
      linear(p + "mlp.down_proj", d, s.ffn, false);
    } else {
      linear(p + "mlp.gate_proj", s.ffn, d, false);
      linear(p + "mlp.up_proj", s.ffn, d, false);
      linear(p + "mlp.down_proj", d, s.ffn, false);
    }
    t[p + "input_layernorm.weight"] = {{d}, gain(d)};
    t[p + "post_attention_layernorm.weight"] = {{d}, gain(d)};
    if (gemma) {  // Gemma's sandwich: a norm before and after the feed-forward as well
      t[p + "pre_feedforward_layernorm.weight"] = {{d}, gain(d)};
      t[p + "post_feedforward_layernorm.weight"] = {{d}, gain(d)};
    }
    if (s.family == Family::Qwen3 || s.family == Family::Qwen3Moe || s.family == Family::Gemma3) {  // per-head q/k gains
      t[p + "self_attn.q_norm.weight"] = {{s.dh()}, gain(s.dh())};
      t[p + "self_attn.k_norm.weight"] = {{s.dh()}, gain(s.dh())};
    }
  }
  if (!s.tied) t["lm_head.weight"] = {{V, d}, r.uniform(V * d, embed_amp)};
  return t;
}

inline DType dtype_of(const std::string& torch_dtype) {
  return torch_dtype == "bfloat16" ? DType::BF16 : torch_dtype == "float16" ? DType::F16 : DType::F32;
}

inline TensorData to_tensor_data(const std::string& name, const HostTensor& h, DType dt) {
  return TensorData::from_f32_as(name, Tensor(Shape(h.shape.begin(), h.shape.end()), h.v), dt);
}

// Writes the tensors as one model.safetensors, or `shards` shards (tensors dealt round-robin in name
// order) plus model.safetensors.index.json.
inline void write_weights(const std::filesystem::path& dir, const TensorMap& tensors, DType dt, int shards = 1) {
  if (shards <= 1) {
    std::vector<TensorData> all;
    for (const auto& [name, h] : tensors) all.push_back(to_tensor_data(name, h, dt));
    write_safetensors(dir / "model.safetensors", all, {{"format", "pt"}});
    return;
  }
  std::vector<std::vector<TensorData>> parts(static_cast<size_t>(shards));
  nlohmann::json weight_map = nlohmann::json::object();
  size_t i = 0, total = 0;
  auto shard_name = [&](size_t k) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "model-%05zu-of-%05d.safetensors", k + 1, shards);
    return std::string(buf);
  };
  for (const auto& [name, h] : tensors) {
    const size_t k = i++ % size_t(shards);
    parts[k].push_back(to_tensor_data(name, h, dt));
    total += parts[k].back().bytes.size();
    weight_map[name] = shard_name(k);
  }
  for (size_t k = 0; k < parts.size(); ++k) write_safetensors(dir / shard_name(k), parts[k], {{"format", "pt"}});
  const nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  std::ofstream(dir / "model.safetensors.index.json") << index.dump(2);
}

inline void write_json(const std::filesystem::path& p, const nlohmann::json& j) { std::ofstream(p) << j.dump(2); }

// The Qwen2 pre-tokenizer regex (Split, Isolated), as in Qwen2's tokenizer.json.
inline const char* kQwen2SplitRegex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// tokenizer.json (+ tokenizer_config.json) of the style. Qwen2: the OPT byte-level vocabulary cut to
// its first 4096 tokens (ids 0-259 are the specials and bytes, id 260 + r the result of merge r, so the
// first 3836 merges are closed over the cut) with Qwen2's pipeline (NFC, Split regex then ByteLevel
// without regex, no BOS) and its chat special tokens appended (ids 4096..4098). The small vocabulary
// keeps the hidden-640 model's embedding small.
inline void write_tokenizer(const std::filesystem::path& dir, TokenizerStyle style) {
  namespace fs = std::filesystem;
  using json = nlohmann::json;
  if (style == TokenizerStyle::Llama) {
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
      fs::copy_file(model_dir("gutenberg-llama-33m") / f, dir / f, fs::copy_options::overwrite_existing);
    return;
  }
  if (style == TokenizerStyle::Opt) {
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
      fs::copy_file(model_dir("gutenberg-opt-28m") / f, dir / f, fs::copy_options::overwrite_existing);
    return;
  }
  std::ifstream in(model_dir("gutenberg-opt-28m") / "tokenizer.json");
  json t = json::parse(in);
  json vocab = json::object();
  for (const auto& [tok, id] : t["model"]["vocab"].items())
    if (id.get<int64_t>() < kQwen2BaseVocab) vocab[tok] = id;
  json merges = json::array();
  for (int64_t r = 0; r < kQwen2BaseVocab - 260; ++r) merges.push_back(t["model"]["merges"][size_t(r)]);
  t["model"]["vocab"] = vocab;
  t["model"]["merges"] = merges;
  const json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  t["normalizer"] = {{"type", "NFC"}};
  t["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers", json::array({{{"type", "Split"}, {"pattern", {{"Regex", kQwen2SplitRegex}}},
                                      {"behavior", "Isolated"}, {"invert", false}},
                                     byte_level})}};
  t["post_processor"] = byte_level;
  t["decoder"] = byte_level;
  int64_t id = kQwen2BaseVocab;
  for (const char* tok : {"<|endoftext|>", "<|im_start|>", "<|im_end|>"})
    t["added_tokens"].push_back({{"id", id++}, {"content", tok}, {"single_word", false}, {"lstrip", false},
                                 {"rstrip", false}, {"normalized", false}, {"special", true}});
  write_json(dir / "tokenizer.json", t);
  write_json(dir / "tokenizer_config.json", {{"tokenizer_class", "Qwen2Tokenizer"},
                                             {"add_bos_token", false},
                                             {"bos_token", nullptr},
                                             {"eos_token", "<|endoftext|>"},
                                             {"pad_token", "<|endoftext|>"},
                                             {"unk_token", nullptr}});
}

// A whole checkpoint directory: config.json, weights and tokenizer. `config` defaults to config_json(s).
inline void write_model(const std::filesystem::path& dir, const SyntheticSpec& s, const TensorMap& tensors,
                        const std::optional<nlohmann::json>& config = std::nullopt) {
  std::filesystem::create_directories(dir);
  write_json(dir / "config.json", config ? *config : config_json(s));
  write_weights(dir, tensors, dtype_of(s.dtype), s.shards);
  write_tokenizer(dir, s.tokenizer());
}

}  // namespace quantllm::test
