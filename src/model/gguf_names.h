// Hugging Face ↔ GGUF tensor names, and the q/k row permutation of llama.cpp's "llama" architecture.
//
// GGUF names (llama.cpp convention): token_embd, position_embd (learned positions), output_norm,
// output, and per block blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate,
// ffn_up, ffn_down}, each with .weight / .bias. OPT's project_in/out (not in llama.cpp) are
// proj_in / proj_out.
//
// llama.cpp's "llama" architecture applies RoPE to adjacent pairs (x[2i], x[2i+1]) while Hugging
// Face rotates halves (x[i], x[i + d/2]); the converter therefore reorders the rows of q and k
// within each head: GGUF row 2i+j of a head is HF row j·d/2 + i. "qwen2" uses the half rotation
// (NEOX style) and needs no reordering.
#pragma once

#include "core/tensor.h"
#include "model/config.h"

#include <optional>
#include <string>
#include <vector>

namespace quantllm {

// GGUF name of an HF tensor name of this config; nullopt for names with no GGUF counterpart.
std::optional<std::string> hf_to_gguf_name(const ModelConfig& c, const std::string& hf_name);
// The inverse.
std::optional<std::string> gguf_to_hf_name(const ModelConfig& c, const std::string& gguf_name);

// MoE experts: GGUF stacks a layer's experts into one 3-D tensor per projection (blk.N.ffn_gate_exps,
// ffn_up_exps, ffn_down_exps: ne {in, out, n_experts}, expert e the e-th [out, in] slice), as llama.cpp's
// converter writes them. The slice an expert's HF weight is, or nullopt for any other tensor; and the
// HF names of a stacked tensor's slices, in expert order (empty when it is not one).
struct GgufExpertSlice {
  std::string gguf_name;  // "blk.3.ffn_up_exps.weight"
  int expert = 0;
};
std::optional<GgufExpertSlice> gguf_expert_slice(const ModelConfig& c, const std::string& hf_name);
std::vector<std::string> gguf_expert_members(const ModelConfig& c, const std::string& gguf_name);

// Whether the tensor's rows are reordered for GGUF (q and k weights/biases of arch "llama"),
// and over how many heads.
int64_t gguf_rope_permute_heads(const ModelConfig& c, const std::string& hf_name);  // 0: no permutation
// Whether a GGUF tensor holds a Gemma norm's gain as 1 + w (llama.cpp's converter adds 1 to every
// "*norm.weight" of gemma2 / gemma3) rather than transformers' w.
bool gguf_norm_shifted(const ModelConfig& c, const std::string& gguf_name);
// Reorders rows of t ([rows, cols], rows = n_heads · head_dim) HF → GGUF, or back (inverse = true).
Tensor permute_rope_rows(const Tensor& t, int64_t n_heads, bool inverse);

}  // namespace quantllm
