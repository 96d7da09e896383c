// config.json parsing for every row of the architecture table, in both transformers layouts.
#include "model/config.h"

#include "core/error.h"
#include "core/fs.h"

#include <fmt/format.h>
#include <cmath>
#include <numbers>
#include <nlohmann/json.hpp>

namespace quantllm {

using json = nlohmann::json;

namespace {

// Field accessors that name the file and key on a type mismatch.
struct Reader {
  const json& j;
  const std::string& source;

  bool has(const char* key) const { return j.contains(key) && !j[key].is_null(); }
  int64_t integer(const char* key) const {
    if (!has(key)) fail("{}: missing '{}'", source, key);
    if (!j[key].is_number_integer()) fail("{}: '{}' must be an integer", source, key);
    const int64_t v = j[key].get<int64_t>();
    if (v <= 0) fail("{}: '{}' must be positive, got {}", source, key, v);
    return v;
  }
  int64_t integer_or(const char* key, int64_t dflt) const { return has(key) ? integer(key) : dflt; }
  double number_or(const char* key, double dflt) const {
    if (!has(key)) return dflt;
    if (!j[key].is_number()) fail("{}: '{}' must be a number", source, key);
    return j[key].get<double>();
  }
  bool boolean_or(const char* key, bool dflt) const {
    if (!has(key)) return dflt;
    if (!j[key].is_boolean()) fail("{}: '{}' must be true or false", source, key);
    return j[key].get<bool>();
  }
  std::string string_or(const char* key, const std::string& dflt) const {
    if (!has(key)) return dflt;
    if (!j[key].is_string()) fail("{}: '{}' must be a string", source, key);
    return j[key].get<std::string>();
  }
};

// First integer of a field that may be an int or a list of ints (eos_token_id).
int64_t first_id(const json& j, const char* key) {
  if (!j.contains(key)) return -1;
  const json& v = j[key];
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_array() && !v.empty() && v[0].is_number_integer()) return v[0].get<int64_t>();
  return -1;
}

// One RoPE setting: {"rope_theta": …, "rope_type"|"type": "default"|"linear"|"llama3", "factor": …}.
void parse_rope_scaling(const json& scaling, ModelConfig& c, const std::string& source) {
  Reader r{scaling, source};
  std::string type = r.string_or("rope_type", r.string_or("type", "default"));
  if (type == "default") return;
  c.rope_factor = r.number_or("factor", 1.0);
  if (c.rope_factor <= 0) fail("{}: rope scaling factor must be positive", source);
  if (type == "linear") {
    c.rope_scaling = RopeScaling::Linear;
  } else if (type == "llama3") {
    c.rope_scaling = RopeScaling::Llama3;
    c.rope_low_freq_factor = r.number_or("low_freq_factor", 1.0);
    c.rope_high_freq_factor = r.number_or("high_freq_factor", 4.0);
    c.rope_original_max_positions = int64_t(r.number_or("original_max_position_embeddings", 8192));
  } else if (type == "longrope" || type == "su") {  // "su": Phi-3's earlier name for it
    c.rope_scaling = RopeScaling::LongRope;
    for (auto [key, dst] : {std::pair{"short_factor", &c.rope_short_factor}, std::pair{"long_factor", &c.rope_long_factor}}) {
      if (!scaling.contains(key) || !scaling[key].is_array() || scaling[key].empty())
        fail("{}: longrope scaling needs '{}' (one factor per rotated frequency)", source, key);
      for (const json& v : scaling[key]) {
        if (!v.is_number() || v.get<double>() <= 0) fail("{}: longrope '{}' holds {}, not a positive number", source, key, v.dump());
        dst->push_back(v.get<double>());
      }
    }
    if (scaling.contains("original_max_position_embeddings"))
      c.rope_original_max_positions = int64_t(r.number_or("original_max_position_embeddings", 0));
    c.rope_attn_factor = r.number_or("attention_factor", 0);  // 0: derived once max_position_embeddings is known
  } else {
    fail("{}: rope scaling type '{}' is not supported (supported: default, linear, llama3, longrope)", source, type);
  }
}

// Longrope's remaining settings, from the top level (Phi-3 keeps original_max_position_embeddings there).
void finish_longrope(const json& root, ModelConfig& c, const std::string& source) {
  if (c.rope_scaling != RopeScaling::LongRope) return;
  Reader r{root, source};
  if (r.has("original_max_position_embeddings")) c.rope_original_max_positions = r.integer("original_max_position_embeddings");
  if (c.rope_original_max_positions < 2) fail("{}: longrope needs original_max_position_embeddings", source);
  const size_t half = size_t(c.rope_dim() / 2);
  if (c.rope_short_factor.size() != half || c.rope_long_factor.size() != half)
    fail("{}: longrope short_factor / long_factor have {} / {} values; the {} rotated dims need {}", source,
         c.rope_short_factor.size(), c.rope_long_factor.size(), c.rope_dim(), half);
  if (c.rope_attn_factor <= 0) {  // transformers' default: from the ratio of the two context lengths
    const double f = double(c.max_positions) / double(c.rope_original_max_positions);
    c.rope_attn_factor = f <= 1 ? 1.0 : std::sqrt(1 + std::log(f) / std::log(double(c.rope_original_max_positions)));
  }
}

double theta_of(const json& j, const char* key, const std::string& source, const std::string& where) {
  if (!j[key].is_number() || j[key].get<double>() <= 0) fail("{}: '{}' must be a positive number", source, where);
  return j[key].get<double>();
}

void parse_rope(const json& root, ModelConfig& c, const std::string& source) {
  // transformers 5: "rope_parameters": {"rope_theta": …, "rope_type": "default"|"linear"|"llama3", …}, or one
  //   such object per layer type ({"full_attention": {…}, "sliding_attention": {…}}, Gemma 3).
  // transformers 4: top-level "rope_theta" and optional "rope_scaling": {"type"|"rope_type": …, "factor": …};
  //   Gemma 3's sliding layers: "rope_local_base_freq".
  const json* params = nullptr;
  if (root.contains("rope_parameters") && root["rope_parameters"].is_object()) params = &root["rope_parameters"];
  if (root.contains("rope_theta")) c.rope_theta = theta_of(root, "rope_theta", source, "rope_theta");
  if (root.contains("rope_local_base_freq"))
    c.rope_theta_sliding = theta_of(root, "rope_local_base_freq", source, "rope_local_base_freq");
  if (params && (params->contains("full_attention") || params->contains("sliding_attention"))) {
    if (params->contains("sliding_attention")) {
      const json& sl = (*params)["sliding_attention"];
      if (!sl.is_object()) fail("{}: 'rope_parameters.sliding_attention' must be an object", source);
      if (sl.contains("rope_theta"))
        c.rope_theta_sliding = theta_of(sl, "rope_theta", source, "rope_parameters.sliding_attention.rope_theta");
      const std::string type = Reader{sl, source}.string_or("rope_type", "default");
      if (type != "default")
        fail("{}: rope_type '{}' of the sliding layers is not supported (supported: default)", source, type);
    }
    params = params->contains("full_attention") ? &(*params)["full_attention"] : nullptr;
    if (params && !params->is_object()) fail("{}: 'rope_parameters.full_attention' must be an object", source);
  }
  const json* scaling = nullptr;
  if (params) {
    if (params->contains("rope_theta")) c.rope_theta = theta_of(*params, "rope_theta", source, "rope_parameters.rope_theta");
    scaling = params;
  } else if (root.contains("rope_scaling") && root["rope_scaling"].is_object()) {
    scaling = &root["rope_scaling"];
  }
  if (scaling) parse_rope_scaling(*scaling, c, source);
}

// Which layers attend through the sliding window: layer_types, else a pattern (every pattern-th layer
// global), else all of them.
void parse_sliding_layers(const json& root, ModelConfig& c, const std::string& source) {
  Reader r{root, source};
  if (r.has("layer_types")) {
    const json& lt = root["layer_types"];
    if (!lt.is_array() || int64_t(lt.size()) != c.n_layers)
      fail("{}: 'layer_types' must list one type per layer ({})", source, c.n_layers);
    for (const json& t : lt) {
      const std::string v = t.is_string() ? t.get<std::string>() : "";
      if (v != "sliding_attention" && v != "full_attention")
        fail("{}: layer type '{}' is not supported (supported: sliding_attention, full_attention)", source, t.dump());
      c.sliding_layers.push_back(v == "sliding_attention");
    }
    return;
  }
  int64_t pattern = c.arch->default_sliding_pattern;
  for (const char* key : {"sliding_window_pattern", "_sliding_window_pattern"})
    if (r.has(key)) pattern = r.integer(key);
  if (pattern > 0)
    for (int64_t i = 0; i < c.n_layers; ++i) c.sliding_layers.push_back((i + 1) % pattern != 0);
}

// The MoE fields: Qwen3-MoE (num_experts or, as transformers 5 writes it, num_local_experts;
// moe_intermediate_size; norm_topk_prob; mlp_only_layers and decoder_sparse_step choose the MoE layers)
// and Mixtral (num_local_experts; the experts' width is intermediate_size).
void parse_moe(const json& root, ModelConfig& c, const std::string& source) {
  const MoeNames& m = c.arch->moe;
  if (m.router.empty()) return;
  Reader r{root, source};
  const char* experts_key = r.has("num_experts") ? "num_experts" : "num_local_experts";
  c.n_experts = r.integer(experts_key);
  c.n_experts_used = r.integer("num_experts_per_tok");
  if (c.n_experts_used > c.n_experts)
    fail("{}: num_experts_per_tok {} exceeds {} {}", source, c.n_experts_used, experts_key, c.n_experts);
  c.moe_ffn = m.always_norm_topk ? c.ffn : r.integer("moe_intermediate_size");
  c.norm_topk_prob = m.always_norm_topk || r.boolean_or("norm_topk_prob", false);
  const int64_t step = r.integer_or("decoder_sparse_step", 1);
  std::vector<bool> dense(size_t(c.n_layers), false);
  if (r.has("mlp_only_layers")) {
    const json& l = root["mlp_only_layers"];
    if (!l.is_array()) fail("{}: 'mlp_only_layers' must be a list of layer indices", source);
    for (const json& i : l) {
      if (!i.is_number_integer() || i.get<int64_t>() < 0 || i.get<int64_t>() >= c.n_layers)
        fail("{}: 'mlp_only_layers' entry {} is not a layer index (0..{})", source, i.dump(), c.n_layers - 1);
      dense[size_t(i.get<int64_t>())] = true;
    }
  }
  for (int64_t i = 0; i < c.n_layers; ++i) c.moe_layers.push_back(!dense[size_t(i)] && (i + 1) % step == 0);
}

// A logit soft-capping value: a positive number, or absent / null for none.
double softcap_of(const Reader& r, const char* key) {
  const double v = r.number_or(key, 0.0);
  if (v < 0) fail("{}: '{}' must be positive", r.source, key);
  return v;
}

}  // namespace

ModelConfig parse_config_json(std::string_view json_text, const std::string& source) {
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::exception& e) {
    fail("{}: malformed JSON: {}", source, e.what());
  }
  if (!root.is_object()) fail("{}: expected a JSON object", source);
  std::string arch_name;
  if (root.contains("architectures") && root["architectures"].is_array() && !root["architectures"].empty() &&
      root["architectures"][0].is_string())
    arch_name = root["architectures"][0].get<std::string>();
  ModelConfig c;
  c.arch = find_arch(arch_name);
  if (!c.arch && root.contains("model_type") && root["model_type"].is_string()) {  // no "architectures": use model_type
    for (const auto& a : arch_table())
      if (arch_name.empty() && a.model_type == root["model_type"].get<std::string>()) c.arch = &a;
  }
  if (!c.arch)
    fail("{}: unsupported architecture '{}' (supported: {})", source, arch_name.empty() ? "(none)" : arch_name,
         supported_architectures());
  const ArchSpec& a = *c.arch;
  Reader r{root, source};
  c.hidden = r.integer("hidden_size");
  c.n_layers = r.integer("num_hidden_layers");
  if (c.n_layers > 65536) fail("{}: num_hidden_layers {} is implausible", source, c.n_layers);
  c.n_heads = r.integer("num_attention_heads");
  c.n_kv_heads = r.integer_or("num_key_value_heads", c.n_heads);
  c.vocab = r.integer("vocab_size");
  c.max_positions = r.integer_or("max_position_embeddings", 2048);
  c.bos_token_id = first_id(root, "bos_token_id");
  c.eos_token_id = first_id(root, "eos_token_id");
  c.tied_embeddings = r.boolean_or("tie_word_embeddings", a.default_tied);
  if (a.pos == PosKind::Learned) {  // OPT
    c.ffn = r.integer("ffn_dim");
    c.head_dim = c.hidden / c.n_heads;
    c.word_embed_proj_dim = r.integer_or("word_embed_proj_dim", c.hidden);
    c.norm_eps = 1e-5;  // OPT's LayerNorms use torch's default
    c.qkv_bias = c.o_bias = c.mlp_bias = r.boolean_or("enable_bias", true);
    c.norm_before = r.boolean_or("do_layer_norm_before", true);
    c.final_norm = c.norm_before && !r.boolean_or("_remove_final_layer_norm", false);
    const std::string act = r.string_or("activation_function", "relu");
    if (act != "relu") fail("{}: OPT activation_function '{}' is not supported (supported: relu)", source, act);
  } else {
    c.ffn = r.integer("intermediate_size");
    c.head_dim = r.integer_or("head_dim", c.hidden / c.n_heads);
    c.word_embed_proj_dim = c.hidden;
    c.norm_eps = r.number_or("rms_norm_eps", 1e-6);
    c.qkv_bias = r.boolean_or("attention_bias", a.default_qkv_bias);
    c.o_bias = a.default_qkv_bias ? false : c.qkv_bias;  // Llama's attention_bias covers o_proj; Qwen2 has none
    c.mlp_bias = r.boolean_or("mlp_bias", false);
    // Gemma's configs name the activation hidden_activation (hidden_act is older or absent).
    const char* want = a.ffn == FfnKind::GatedGeluTanh ? "gelu_pytorch_tanh" : "silu";
    const std::string act = r.string_or("hidden_activation", r.string_or("hidden_act", want));
    if (act != want) fail("{}: activation '{}' is not supported for {} (supported: {})", source, act, a.hf_architecture, want);
    parse_rope(root, c, source);
    if (r.has("sliding_window") && r.boolean_or("use_sliding_window", a.default_sliding_window)) {
      c.sliding_window = r.integer("sliding_window");
      parse_sliding_layers(root, c, source);
    }
    parse_moe(root, c, source);
    if (r.has("partial_rotary_factor")) {  // Phi-4-mini: RoPE on the leading part of each head
      const double f = r.number_or("partial_rotary_factor", 1.0);
      c.rotary_dim = int64_t(double(c.head_dim) * f);
      if (f <= 0 || f > 1 || c.rotary_dim % 2 != 0)
        fail("{}: partial_rotary_factor {} must be in (0, 1] and give an even number of rotated dims", source, f);
      if (c.rotary_dim == c.head_dim) c.rotary_dim = 0;
    }
    finish_longrope(root, c, source);
    if (r.has("query_pre_attn_scalar")) c.attn_scale = 1.0 / std::sqrt(double(r.integer("query_pre_attn_scalar")));
    c.attn_softcap = softcap_of(r, "attn_logit_softcapping");
    c.final_softcap = softcap_of(r, "final_logit_softcapping");
  }
  if (c.hidden % c.n_heads != 0 && !r.has("head_dim"))
    fail("{}: hidden_size {} is not a multiple of num_attention_heads {}", source, c.hidden, c.n_heads);
  if (c.n_heads % c.n_kv_heads != 0)
    fail("{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", source, c.n_heads, c.n_kv_heads);
  if (c.head_dim % 2 != 0 && a.pos == PosKind::RoPE) fail("{}: head_dim {} must be even for RoPE", source, c.head_dim);
  std::string dt = r.string_or("torch_dtype", r.string_or("dtype", "float32"));
  if (dt == "bfloat16") c.dtype = DType::BF16;
  else if (dt == "float16") c.dtype = DType::F16;
  else if (dt == "float32") c.dtype = DType::F32;
  else fail("{}: dtype '{}' is not supported (supported: float32, float16, bfloat16)", source, dt);
  derive_block_specs(c);
  return c;
}

ModelConfig load_config(const std::filesystem::path& model_dir) {
  const auto path = model_dir / "config.json";
  return parse_config_json(read_file(path), path.string());
}

const BlockSpec& ModelConfig::block(int64_t layer) const {
  QL_ASSERT(blocks && layer >= 0 && layer < int64_t(blocks->size()), "block {} of {}", layer,
            blocks ? blocks->size() : 0);
  return (*blocks)[size_t(layer)];
}

std::string ModelConfig::block_prefix(int64_t layer) const { return fmt::format(fmt::runtime(arch->block_prefix), layer); }

std::vector<double> rope_base_inv_freq(const ModelConfig& c, double theta) {
  if (theta <= 0) theta = c.rope_theta;
  const int64_t dim = c.rope_dim(), half = dim / 2;
  std::vector<double> inv(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    // Hugging Face computes these in float32; keep that rounding so positions line up exactly.
    const float exponent = float(2 * i) / float(dim);
    inv[size_t(i)] = double(1.0f / std::pow(float(theta), exponent));
  }
  return inv;
}

std::vector<double> llama3_rope_freq_factors(const ModelConfig& c) {
  const double old_ctx = double(c.rope_original_max_positions);
  const double low_wavelen = old_ctx / c.rope_low_freq_factor, high_wavelen = old_ctx / c.rope_high_freq_factor;
  std::vector<double> factors;
  for (double f : rope_base_inv_freq(c)) {
    const double wavelen = 2 * std::numbers::pi / f;
    if (wavelen > low_wavelen) {
      factors.push_back(c.rope_factor);
    } else if (wavelen >= high_wavelen) {
      const double smooth = (old_ctx / wavelen - c.rope_low_freq_factor) /
                            (c.rope_high_freq_factor - c.rope_low_freq_factor);
      factors.push_back(1.0 / ((1 - smooth) / c.rope_factor + smooth));
    } else {
      factors.push_back(1.0);
    }
  }
  return factors;
}

}  // namespace quantllm
