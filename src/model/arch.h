// Architectures as data: one ArchSpec row per supported Hugging Face architecture drives the one
// generic decoder block in runtime/. A row says which norm, positional scheme and feed-forward the
// block uses and how its tensors are named in the checkpoint; nothing else in the code branches on
// the architecture's name.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace quantllm {

enum class NormKind { RMSNorm, LayerNorm };
enum class PosKind { RoPE, Learned };         // rotary (rotate-half) or learned absolute positions
enum class FfnKind { GatedSiLU, ReLU, GELU };  // SwiGLU: down(silu(gate(x)) * up(x)); else down(act(up(x)))

// The linear layers of a decoder block, in true-sequential order of quantization.
enum class Linear { Q, K, V, O, Gate, Up, Down };
inline constexpr int kNumLinear = 7;
std::string_view linear_name(Linear l);  // "q", "k", …

// The norms of a decoder block.
enum class BlockNorm { Attn, Ffn };

struct ArchSpec {
  std::string_view hf_architecture;  // config.json "architectures"[0]
  std::string_view model_type;       // config.json "model_type"
  std::string_view gguf_arch;        // general.architecture in GGUF
  NormKind norm;
  PosKind pos;
  FfnKind ffn;
  bool default_qkv_bias;  // when config.json does not say (Qwen2: true)
  bool has_o_bias;        // OPT: every linear has a bias
  bool has_mlp_bias;
  int position_offset;    // OPT's learned positions start at index 2
  // Checkpoint names. "{}" is the layer index.
  std::string_view block_prefix;                    // "model.layers.{}."
  std::array<std::string_view, kNumLinear> linear;  // relative to block_prefix, without ".weight"
  std::string_view attn_norm, ffn_norm;             // relative to block_prefix, without ".weight"
  std::string_view embed_tokens, embed_positions, final_norm, lm_head;  // without ".weight"
  std::string_view project_in, project_out;         // OPT when word_embed_proj_dim != hidden_size
};

// The table of supported architectures.
const std::vector<ArchSpec>& arch_table();
// Finds the row for config.json's "architectures"[0]; nullptr when unsupported.
const ArchSpec* find_arch(std::string_view hf_architecture);
// "LlamaForCausalLM, MistralForCausalLM, …" for error messages.
std::string supported_architectures();

}  // namespace quantllm
