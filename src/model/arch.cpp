// The architecture table (see arch.h). Adding a Llama-like architecture is adding a row.
#include "model/arch.h"

#include <fmt/format.h>

namespace quantllm {

namespace {

constexpr std::array<std::string_view, kNumLinear> kLlamaLinears = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};
// OPT has no gate: fc1 is the "up" projection, fc2 the "down" one.
constexpr std::array<std::string_view, kNumLinear> kOptLinears = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "", "fc1", "fc2"};

ArchSpec llama_like(std::string_view hf, std::string_view type, std::string_view gguf, bool qkv_bias) {
  return ArchSpec{
      .hf_architecture = hf,
      .model_type = type,
      .gguf_arch = gguf,
      .norm = NormKind::RMSNorm,
      .pos = PosKind::RoPE,
      .ffn = FfnKind::GatedSiLU,
      .default_qkv_bias = qkv_bias,
      .has_o_bias = false,
      .has_mlp_bias = false,
      .position_offset = 0,
      .block_prefix = "model.layers.{}.",
      .linear = kLlamaLinears,
      .attn_norm = "input_layernorm",
      .ffn_norm = "post_attention_layernorm",
      .embed_tokens = "model.embed_tokens",
      .embed_positions = "",
      .final_norm = "model.norm",
      .lm_head = "lm_head",
      .project_in = "",
      .project_out = "",
  };
}

}  // namespace

const std::vector<ArchSpec>& arch_table() {
  static const std::vector<ArchSpec> table = {
      llama_like("LlamaForCausalLM", "llama", "llama", false),
      llama_like("MistralForCausalLM", "mistral", "llama", false),
      llama_like("Qwen2ForCausalLM", "qwen2", "qwen2", true),
      ArchSpec{
          .hf_architecture = "OPTForCausalLM",
          .model_type = "opt",
          .gguf_arch = "opt",
          .norm = NormKind::LayerNorm,
          .pos = PosKind::Learned,
          .ffn = FfnKind::ReLU,
          .default_qkv_bias = true,
          .has_o_bias = true,
          .has_mlp_bias = true,
          .position_offset = 2,
          .block_prefix = "model.decoder.layers.{}.",
          .linear = kOptLinears,
          .attn_norm = "self_attn_layer_norm",
          .ffn_norm = "final_layer_norm",
          .embed_tokens = "model.decoder.embed_tokens",
          .embed_positions = "model.decoder.embed_positions",
          .final_norm = "model.decoder.final_layer_norm",
          .lm_head = "lm_head",
          .project_in = "model.decoder.project_in",
          .project_out = "model.decoder.project_out",
      },
  };
  return table;
}

const ArchSpec* find_arch(std::string_view hf_architecture) {
  for (const auto& a : arch_table())
    if (a.hf_architecture == hf_architecture) return &a;
  return nullptr;
}

std::string supported_architectures() {
  std::string s;
  for (const auto& a : arch_table()) s += (s.empty() ? "" : ", ") + std::string(a.hf_architecture);
  return s;
}

std::string_view linear_name(Linear l) {
  static constexpr std::string_view names[] = {"q", "k", "v", "o", "gate", "up", "down"};
  return names[int(l)];
}

}  // namespace quantllm
