// The architecture table (see arch.h). Adding an architecture whose pieces exist is adding a row.
#include "model/arch.h"

#include <array>

namespace quantllm {

namespace {

constexpr AttentionNames kLlamaAttention = {
    .norm = "input_layernorm",
    .q = "self_attn.q_proj",
    .k = "self_attn.k_proj",
    .v = "self_attn.v_proj",
    .o = "self_attn.o_proj",
    .q_norm = "",
    .k_norm = "",
    .post_norm = "",
    .qkv = "",
};
constexpr FfnNames kLlamaFfn = {
    .norm = "post_attention_layernorm",
    .gate = "mlp.gate_proj",
    .up = "mlp.up_proj",
    .down = "mlp.down_proj",
    .post_norm = "",
    .gate_up = "",
};
// Phi-3 / Phi-4-mini: Llama's block with q/k/v fused into qkv_proj and gate/up into gate_up_proj.
constexpr AttentionNames kPhi3Attention = {
    .norm = "input_layernorm",
    .q = "",
    .k = "",
    .v = "",
    .o = "self_attn.o_proj",
    .q_norm = "",
    .k_norm = "",
    .post_norm = "",
    .qkv = "self_attn.qkv_proj",
};
constexpr FfnNames kPhi3Ffn = {
    .norm = "post_attention_layernorm",
    .gate = "",
    .up = "",
    .down = "mlp.down_proj",
    .post_norm = "",
    .gate_up = "mlp.gate_up_proj",
};

// Qwen3: Llama's block with an RMSNorm over each head of q and of k before RoPE.
constexpr AttentionNames kQwen3Attention = {
    .norm = "input_layernorm",
    .q = "self_attn.q_proj",
    .k = "self_attn.k_proj",
    .v = "self_attn.v_proj",
    .o = "self_attn.o_proj",
    .q_norm = "self_attn.q_norm",
    .k_norm = "self_attn.k_norm",
    .post_norm = "",
    .qkv = "",
};

// Gemma 2 / 3: a norm before and after each sub-layer; "post_attention_layernorm" is the attention's
// post-norm here (Llama uses that name for the feed-forward's pre-norm). Gemma 3 adds q/k norms.
constexpr AttentionNames gemma_attention(bool qk_norm) {
  return {.norm = "input_layernorm",
          .q = "self_attn.q_proj",
          .k = "self_attn.k_proj",
          .v = "self_attn.v_proj",
          .o = "self_attn.o_proj",
          .q_norm = qk_norm ? "self_attn.q_norm" : "",
          .k_norm = qk_norm ? "self_attn.k_norm" : "",
          .post_norm = "post_attention_layernorm",
          .qkv = ""};
}
constexpr FfnNames kGemmaFfn = {
    .norm = "pre_feedforward_layernorm",
    .gate = "mlp.gate_proj",
    .up = "mlp.up_proj",
    .down = "mlp.down_proj",
    .post_norm = "post_feedforward_layernorm",
    .gate_up = "",
};

constexpr MoeNames kNoMoe = {.router = "", .experts = "", .gate = "", .up = "", .down = "", .always_norm_topk = false};
// Qwen3-MoE (Qwen2-MoE's names, without its shared expert): one 2-D tensor per expert, as on the Hub.
constexpr MoeNames kQwenMoe = {.router = "mlp.gate",
                               .experts = "mlp.experts.{}.",
                               .gate = "gate_proj",
                               .up = "up_proj",
                               .down = "down_proj",
                               .always_norm_topk = false};
// Mixtral: w1 = gate, w3 = up, w2 = down; top-k weights always renormalized.
constexpr MoeNames kMixtralMoe = {.router = "block_sparse_moe.gate",
                                  .experts = "block_sparse_moe.experts.{}.",
                                  .gate = "w1",
                                  .up = "w3",
                                  .down = "w2",
                                  .always_norm_topk = true};

// gguf "llama" (Llama, Mistral, Mixtral): llama.cpp permutes q/k rows; qwen2 / qwen3 keep HF's order (NEOX RoPE).
constexpr ArchSpec llama_like(std::string_view hf, std::string_view type, std::string_view gguf, bool qkv_bias,
                              AttentionNames attn = kLlamaAttention, MoeNames moe = kNoMoe,
                              FfnNames ffn = kLlamaFfn) {
  return ArchSpec{
      .hf_architecture = hf,
      .model_type = type,
      .gguf_arch = gguf,
      .norm = NormKind::RMSNorm,
      .pos = PosKind::RoPE,
      .ffn = FfnKind::GatedSiLU,
      .default_qkv_bias = qkv_bias,
      .default_tied = false,
      .default_sliding_window = type == "mistral" || type == "mixtral" || type == "phi3",
      .default_sliding_pattern = 0,
      .position_offset = 0,
      .norm_gain_offset = 0.0f,
      .embed_scale_sqrt_hidden = false,
      .gguf_rope_permute = gguf == "llama",
      .llama_cpp_runs = true,
      .gguf_norm_plus_one = false,
      .block_prefix = "model.layers.{}.",
      .attn = attn,
      .ffn_names = ffn,
      .moe = moe,
      .embed_tokens = "model.embed_tokens",
      .embed_positions = "",
      .final_norm = "model.norm",
      .lm_head = "lm_head",
      .project_in = "",
      .project_out = "",
  };
}

// Gemma 2 / 3 (text): GeGLU with tanh-approximated GELU, (1 + w) norms, embeddings × √hidden; the
// per-layer sliding window, RoPE base, attention scale and soft-capping come from config.json.
constexpr ArchSpec gemma(std::string_view hf, std::string_view type, std::string_view gguf, bool qk_norm) {
  return ArchSpec{
      .hf_architecture = hf,
      .model_type = type,
      .gguf_arch = gguf,
      .norm = NormKind::RMSNorm,
      .pos = PosKind::RoPE,
      .ffn = FfnKind::GatedGeluTanh,
      .default_qkv_bias = false,
      .default_tied = true,
      .default_sliding_window = true,
      .default_sliding_pattern = gguf == "gemma2" ? 2 : 6,
      .position_offset = 0,
      .norm_gain_offset = 1.0f,
      .embed_scale_sqrt_hidden = true,
      .gguf_rope_permute = false,
      .llama_cpp_runs = true,
      .gguf_norm_plus_one = true,
      .block_prefix = "model.layers.{}.",
      .attn = gemma_attention(qk_norm),
      .ffn_names = kGemmaFfn,
      .moe = kNoMoe,
      .embed_tokens = "model.embed_tokens",
      .embed_positions = "",
      .final_norm = "model.norm",
      .lm_head = "lm_head",
      .project_in = "",
      .project_out = "",
      .gguf_default_swa_theta = gguf == "gemma3" ? 10000.0 : 0.0,
  };
}

constexpr std::array kTable = {
    llama_like("LlamaForCausalLM", "llama", "llama", false),
    llama_like("MistralForCausalLM", "mistral", "llama", false),
    llama_like("Qwen2ForCausalLM", "qwen2", "qwen2", true),
    llama_like("Qwen3ForCausalLM", "qwen3", "qwen3", false, kQwen3Attention),
    llama_like("Qwen3MoeForCausalLM", "qwen3_moe", "qwen3moe", false, kQwen3Attention, kQwenMoe),
    llama_like("MixtralForCausalLM", "mixtral", "llama", false, kLlamaAttention, kMixtralMoe),
    llama_like("Phi3ForCausalLM", "phi3", "phi3", false, kPhi3Attention, kNoMoe, kPhi3Ffn),
    gemma("Gemma2ForCausalLM", "gemma2", "gemma2", false),
    gemma("Gemma3ForCausalLM", "gemma3_text", "gemma3", true),
    ArchSpec{
        .hf_architecture = "OPTForCausalLM",
        .model_type = "opt",
        .gguf_arch = "opt",
        .norm = NormKind::LayerNorm,
        .pos = PosKind::Learned,
        .ffn = FfnKind::ReLU,
        .default_qkv_bias = true,
        .default_tied = true,
        .default_sliding_window = false,
        .default_sliding_pattern = 0,
        .position_offset = 2,
        .norm_gain_offset = 0.0f,
        .embed_scale_sqrt_hidden = false,
        .gguf_rope_permute = false,
        .llama_cpp_runs = false,  // llama.cpp has no OPT architecture
        .gguf_norm_plus_one = false,
        .block_prefix = "model.decoder.layers.{}.",
        // OPT has no gate: fc1 is the "up" projection, fc2 the "down" one.
        .attn = {.norm = "self_attn_layer_norm", .q = "self_attn.q_proj", .k = "self_attn.k_proj",
                 .v = "self_attn.v_proj", .o = "self_attn.out_proj", .q_norm = "", .k_norm = "", .post_norm = "",
                 .qkv = ""},
        .ffn_names = {.norm = "final_layer_norm", .gate = "", .up = "fc1", .down = "fc2", .post_norm = "", .gate_up = ""},
        .moe = kNoMoe,
        .embed_tokens = "model.decoder.embed_tokens",
        .embed_positions = "model.decoder.embed_positions",
        .final_norm = "model.decoder.final_layer_norm",
        .lm_head = "lm_head",
        .project_in = "model.decoder.project_in",
        .project_out = "model.decoder.project_out",
    },
};

}  // namespace

std::span<const ArchSpec> arch_table() { return kTable; }

const ArchSpec* find_arch(std::string_view hf_architecture) {
  for (const auto& a : kTable)
    if (a.hf_architecture == hf_architecture) return &a;
  return nullptr;
}

std::string supported_architectures() {
  std::string s;
  for (const auto& a : kTable) s += (s.empty() ? "" : ", ") + std::string(a.hf_architecture);
  return s;
}

}  // namespace quantllm
