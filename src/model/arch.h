// Architectures as data: one ArchSpec row per supported Hugging Face architecture. A row names the
// checkpoint's tensors and the kinds of the pieces a decoder block is made of (norm, positions,
// feed-forward activation, optional q/k norms); block_spec.h derives every layer's BlockSpec from the
// row and the config once, and nothing else in the code branches on the architecture (the one exception:
// the synthetic-checkpoint writer, model/synthetic.cpp, writes config.json with the keys transformers
// writes for each model_type). Adding an architecture whose pieces exist is adding a row to arch.cpp.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace quantllm {

enum class NormKind { RMSNorm, LayerNorm };
enum class PosKind { RoPE, Learned };         // rotary (rotate-half) or learned absolute positions
// SwiGLU: down(silu(gate(x)) * up(x)); GatedGeluTanh (Gemma's GeGLU): down(gelu_tanh(gate(x)) * up(x));
// else down(act(up(x))).
enum class FfnKind { GatedSiLU, GatedGeluTanh, ReLU, GELU };
constexpr bool is_gated(FfnKind k) { return k == FfnKind::GatedSiLU || k == FfnKind::GatedGeluTanh; }

// Tensor names of a block's attention sub-layer, relative to the block prefix, without ".weight".
// An empty name: the block has no such piece.
struct AttentionNames {
  std::string_view norm;            // the sub-layer's norm (pre-norm, or post-norm for OPT-350m)
  std::string_view q, k, v, o;
  std::string_view q_norm, k_norm;  // per-head RMSNorm of q and k before RoPE (Qwen3, Gemma 3)
  std::string_view post_norm;       // a norm of the sub-layer's output before the residual add (Gemma 2/3)
  std::string_view qkv;             // Phi-3: q, k and v as one fused projection ([q; k; v] rows); q/k/v empty
};
// Tensor names of a block's feed-forward sub-layer. `gate` is empty for an ungated FFN (OPT: up = fc1).
struct FfnNames {
  std::string_view norm;
  std::string_view gate, up, down;
  std::string_view post_norm;  // as AttentionNames::post_norm
  std::string_view gate_up;    // Phi-3: gate and up fused ([gate; up] rows); gate/up empty
};

// Tensor names of a mixture-of-experts feed-forward: the router and each expert's projections. "{}" in
// `experts` is the expert's index. Empty router: the architecture has no MoE layers.
struct MoeNames {
  std::string_view router;           // "mlp.gate": [n_experts, hidden], never quantized
  std::string_view experts;          // "mlp.experts.{}."
  std::string_view gate, up, down;   // relative to an expert: "gate_proj" (Mixtral: w1, w3, w2)
  bool always_norm_topk;             // Mixtral renormalizes the top-k weights whatever the config says
};

struct ArchSpec {
  std::string_view hf_architecture;  // config.json "architectures"[0]
  std::string_view model_type;       // config.json "model_type"
  std::string_view gguf_arch;        // general.architecture in GGUF
  NormKind norm;
  PosKind pos;
  FfnKind ffn;
  bool default_qkv_bias;  // when config.json does not say (Qwen2: true)
  bool default_tied;      // tie_word_embeddings when config.json does not say (OPT: true)
  bool default_sliding_window;  // use_sliding_window when config.json has a window but does not say (Mistral)
  // Which layers are windowed when config.json has no layer_types (nor sliding_window_pattern): every
  // layer but each pattern-th (Gemma 2: 2, Gemma 3: 6); 0 = all of them (Mistral).
  int default_sliding_pattern;
  int position_offset;    // OPT's learned positions start at index 2
  // Gemma: RMSNorm gains are stored as w and applied as (1 + w) (every norm: the blocks', the q/k norms,
  // the final one); the token embeddings are multiplied by √hidden (in fp32).
  float norm_gain_offset;
  bool embed_scale_sqrt_hidden;
  // GGUF conventions of llama.cpp for this architecture: q/k rows permuted from HF's rotate-half order
  // to GGML's interleaved pairs (its "llama" architecture), and whether llama.cpp runs it at all.
  bool gguf_rope_permute;
  bool llama_cpp_runs;
  bool gguf_norm_plus_one;  // llama.cpp's converter stores Gemma's norm gains as 1 + w
  // Checkpoint names. "{}" in block_prefix is the layer index.
  std::string_view block_prefix;  // "model.layers.{}."
  AttentionNames attn;
  FfnNames ffn_names;
  MoeNames moe;  // the MoE layers' feed-forward (its norm is ffn_names.norm)
  std::string_view embed_tokens, embed_positions, final_norm, lm_head;  // without ".weight"
  std::string_view project_in, project_out;  // OPT when word_embed_proj_dim != hidden_size
  // A GGUF file without rope.freq_base_swa (llama.cpp's older converters): the sliding layers' RoPE base
  // llama.cpp assumes (Gemma 3: 10000); 0 = the global one.
  double gguf_default_swa_theta = 0;
};

// The table of supported architectures.
std::span<const ArchSpec> arch_table();
// Finds the row for config.json's "architectures"[0]; nullptr when unsupported.
const ArchSpec* find_arch(std::string_view hf_architecture);
// "LlamaForCausalLM, MistralForCausalLM, …" for error messages.
std::string supported_architectures();

}  // namespace quantllm
