// HF ↔ GGUF names and the llama q/k row permutation (see gguf_names.h).
#include "model/gguf_names.h"

#include "core/error.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>

namespace quantllm {

namespace {

// All (hf base, gguf base) pairs of a config, without the .weight / .bias suffix.
std::vector<std::pair<std::string, std::string>> base_pairs(const ModelConfig& c) {
  const ArchSpec& a = *c.arch;
  std::vector<std::pair<std::string, std::string>> v = {
      {std::string(a.embed_tokens), "token_embd"},
      {std::string(a.final_norm), "output_norm"},
      {std::string(a.lm_head), "output"},
  };
  if (!a.embed_positions.empty()) v.emplace_back(std::string(a.embed_positions), "position_embd");
  if (!a.project_in.empty()) {
    v.emplace_back(std::string(a.project_in), "proj_in");
    v.emplace_back(std::string(a.project_out), "proj_out");
  }
  for (int i = 0; i < c.n_layers; ++i) {
    const BlockSpec& b = c.block(i);
    for (size_t n = 0; n < b.norms.size(); ++n) v.emplace_back(b.norm_tensor(int(n)), b.gguf_prefix + b.norms[n].gguf);
    for (size_t l = 0; l < b.linears.size(); ++l)  // experts: slices of a stacked tensor (gguf_expert_slice)
      if (b.linears[l].expert < 0) v.emplace_back(b.linear_tensor(int(l)), b.gguf_prefix + b.linears[l].gguf);
  }
  return v;
}

bool split_suffix(const std::string& name, std::string& base, std::string& suffix) {
  const auto dot = name.rfind('.');
  if (dot == std::string::npos) return false;
  base = name.substr(0, dot);
  suffix = name.substr(dot);
  return suffix == ".weight" || suffix == ".bias";
}

}  // namespace

std::optional<std::string> hf_to_gguf_name(const ModelConfig& c, const std::string& hf_name) {
  std::string base, suffix;
  if (!split_suffix(hf_name, base, suffix)) return std::nullopt;
  for (const auto& [hf, gg] : base_pairs(c))
    if (hf == base) return gg + suffix;
  return std::nullopt;
}

std::optional<std::string> gguf_to_hf_name(const ModelConfig& c, const std::string& gguf_name) {
  std::string base, suffix;
  if (!split_suffix(gguf_name, base, suffix)) return std::nullopt;
  for (const auto& [hf, gg] : base_pairs(c))
    if (gg == base) return hf + suffix;
  return std::nullopt;
}

namespace {
// The block a "blk.N." GGUF name or a block-prefixed HF name belongs to, or nullptr: a MoE model has
// hundreds of expert slots a block, so the lookups below read one block, not all of them.
const BlockSpec* block_of_gguf(const ModelConfig& c, const std::string& gguf_name) {
  int i = -1;
  if (std::sscanf(gguf_name.c_str(), "blk.%d.", &i) != 1 || i < 0 || i >= c.n_layers) return nullptr;
  return &c.block(i);
}
}  // namespace

std::optional<GgufExpertSlice> gguf_expert_slice(const ModelConfig& c, const std::string& hf_name) {
  if (c.n_experts == 0 || !hf_name.ends_with(".weight")) return std::nullopt;
  const std::string base = hf_name.substr(0, hf_name.size() - 7);
  for (int i = 0; i < c.n_layers; ++i) {
    const BlockSpec& b = c.block(i);
    if (!base.starts_with(b.prefix)) continue;
    for (size_t l = 0; l < b.linears.size(); ++l)
      if (b.linears[l].expert >= 0 && b.linear_tensor(int(l)) == base)
        return GgufExpertSlice{b.gguf_prefix + b.linears[l].gguf + ".weight", b.linears[l].expert};
    return std::nullopt;  // the block whose prefix this is: no expert of it
  }
  return std::nullopt;
}

std::vector<std::string> gguf_expert_members(const ModelConfig& c, const std::string& gguf_name) {
  std::vector<std::string> out;
  const BlockSpec* b = c.n_experts > 0 ? block_of_gguf(c, gguf_name) : nullptr;
  if (!b) return out;
  for (size_t l = 0; l < b->linears.size(); ++l)
    if (b->linears[l].expert >= 0 && b->gguf_prefix + b->linears[l].gguf + ".weight" == gguf_name) {
      if (int64_t(out.size()) <= b->linears[l].expert) out.resize(size_t(b->linears[l].expert) + 1);
      out[size_t(b->linears[l].expert)] = b->linear_tensor(int(l)) + ".weight";
    }
  return out;
}

int64_t gguf_rope_permute_heads(const ModelConfig& c, const std::string& hf_name) {
  if (!c.arch->gguf_rope_permute) return 0;
  for (int i = 0; i < c.n_layers; ++i) {
    const BlockSpec& b = c.block(i);
    for (const char* suffix : {".weight", ".bias"}) {
      if (hf_name == b.prefix + b.linear(Role::Q).name + suffix) return c.n_heads;
      if (hf_name == b.prefix + b.linear(Role::K).name + suffix) return c.n_kv_heads;
    }
  }
  return 0;
}

bool gguf_norm_shifted(const ModelConfig& c, const std::string& gguf_name) {
  constexpr std::string_view kSuffix = "norm.weight";
  return c.arch->gguf_norm_plus_one && gguf_name.size() >= kSuffix.size() &&
         gguf_name.compare(gguf_name.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0;
}

Tensor permute_rope_rows(const Tensor& t, int64_t n_heads, bool inverse) {
  const int64_t rows = t.dim(0);
  const int64_t cols = t.numel() / rows;
  QL_ASSERT(rows % n_heads == 0 && (rows / n_heads) % 2 == 0, "rows {} heads {}", rows, n_heads);
  const int64_t hd = rows / n_heads, half = hd / 2;
  Tensor out(t.shape);
  for (int64_t h = 0; h < n_heads; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t gguf_row = h * hd + 2 * i + j, hf_row = h * hd + j * half + i;
        const int64_t src = inverse ? gguf_row : hf_row, dst = inverse ? hf_row : gguf_row;
        std::copy_n(t.ptr() + src * cols, cols, out.ptr() + dst * cols);
      }
  return out;
}

}  // namespace quantllm
