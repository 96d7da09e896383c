// The type of each tensor in a GGUF file, following llama.cpp's rules (see gguf_plan.h): every mix
// llama-quantize offers but Q1_0/Q2_0/NVFP4, per tensor as llama.cpp's llama_tensor_get_type chooses
// (LLM_TYPE_70B's and Falcon's special cases left out).
#include "formats/gguf_plan.h"

#include "core/error.h"
#include "model/gguf_names.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <regex>
#include <set>

namespace quantllm {

using ggml::GgmlType;

namespace {

constexpr GGUFMix kMixes[] = {
    {"F32", 0, GgmlType::F32, "32-bit floats"},
    {"F16", 1, GgmlType::F16, "16-bit floats"},
    {"BF16", 32, GgmlType::BF16, "bfloat16"},
    {"Q8_0", 7, GgmlType::Q8_0, "8-bit, blocks of 32"},
    {"Q4_0", 2, GgmlType::Q4_0, "4-bit, blocks of 32, symmetric"},
    {"Q4_1", 3, GgmlType::Q4_1, "4-bit, blocks of 32, with minimum"},
    {"Q5_0", 8, GgmlType::Q5_0, "5-bit, blocks of 32, symmetric"},
    {"Q5_1", 9, GgmlType::Q5_1, "5-bit, blocks of 32, with minimum"},
    {"Q2_K", 10, GgmlType::Q2_K, "2-bit K-quant mix"},
    {"Q2_K_S", 21, GgmlType::Q2_K, "2-bit K-quant mix, smaller"},
    {"Q3_K_S", 11, GgmlType::Q3_K, "3-bit K-quant mix, small"},
    {"Q3_K_M", 12, GgmlType::Q3_K, "3-bit K-quant mix, medium"},
    {"Q3_K_L", 13, GgmlType::Q3_K, "3-bit K-quant mix, large"},
    {"Q4_K_S", 14, GgmlType::Q4_K, "4-bit K-quant mix, small"},
    {"Q4_K_M", 15, GgmlType::Q4_K, "4-bit K-quant mix, medium"},
    {"Q5_K_S", 16, GgmlType::Q5_K, "5-bit K-quant mix, small"},
    {"Q5_K_M", 17, GgmlType::Q5_K, "5-bit K-quant mix, medium"},
    {"Q6_K", 18, GgmlType::Q6_K, "6-bit K-quant"},
    {"IQ4_NL", 25, GgmlType::IQ4_NL, "4-bit non-linear, blocks of 32"},
    {"IQ4_XS", 30, GgmlType::IQ4_XS, "4-bit non-linear, super-blocks of 256"},
    {"IQ3_M", 27, GgmlType::IQ3_S, "3.66 bits a weight, lattice mix, medium"},
    {"IQ3_S", 26, GgmlType::IQ3_S, "3.44 bits a weight, lattice"},
    {"IQ3_XS", 22, GgmlType::IQ3_S, "3.3 bits a weight, lattice mix"},
    {"IQ3_XXS", 23, GgmlType::IQ3_XXS, "3.06 bits a weight, lattice (needs an imatrix)"},
    {"IQ2_M", 29, GgmlType::IQ2_S, "2.7 bits a weight, lattice mix (needs an imatrix)"},
    {"IQ2_S", 28, GgmlType::IQ2_XS, "2.5 bits a weight, lattice mix (needs an imatrix)"},
    {"IQ2_XS", 20, GgmlType::IQ2_XS, "2.31 bits a weight, lattice (needs an imatrix)"},
    {"IQ2_XXS", 19, GgmlType::IQ2_XXS, "2.06 bits a weight, lattice (needs an imatrix)"},
    {"IQ1_M", 31, GgmlType::IQ1_M, "1.75 bits a weight, lattice (needs an imatrix)"},
    {"IQ1_S", 24, GgmlType::IQ1_S, "1.56 bits a weight, lattice (needs an imatrix)"},
    {"TQ2_0", 37, GgmlType::TQ2_0, "ternary, 2.06 bits a weight (for ternary-trained models)"},
    {"TQ1_0", 36, GgmlType::TQ1_0, "ternary, 1.69 bits a weight (for ternary-trained models)"},
    {"MXFP4_MOE", 38, GgmlType::MXFP4, "MoE experts in MXFP4, the rest Q8_0"},
};

// Which rule applies to a tensor (llama.cpp's tensor categories).
enum class Category { Output, TokenEmbd, AttnV, AttnK, AttnQ, AttnOutput, FfnUp, FfnGate, FfnDown, Other };

Category category_of(const std::string& n) {
  if (n == "output.weight") return Category::Output;
  if (n == "token_embd.weight") return Category::TokenEmbd;
  // Phi-3's fused qkv takes attn_v's rules and count (llama.cpp's category_is_attn_v)
  if (n.find("attn_qkv.weight") != std::string::npos) return Category::AttnV;
  if (n.find("attn_v.weight") != std::string::npos) return Category::AttnV;
  if (n.find("attn_k.weight") != std::string::npos) return Category::AttnK;
  if (n.find("attn_q.weight") != std::string::npos) return Category::AttnQ;
  if (n.find("attn_output.weight") != std::string::npos) return Category::AttnOutput;
  if (n.find("ffn_up") != std::string::npos) return Category::FfnUp;
  if (n.find("ffn_gate") != std::string::npos) return Category::FfnGate;
  if (n.find("ffn_down") != std::string::npos) return Category::FfnDown;
  return Category::Other;
}

// llama.cpp: 2-D, named *weight, not a norm, not the learned position table.
bool allows_quantization(const std::string& gguf_name, size_t n_dims) {
  if (n_dims < 2) return false;
  if (gguf_name.size() < 6 || gguf_name.compare(gguf_name.size() - 6, 6, "weight") != 0) return false;
  if (gguf_name.find("_norm.weight") != std::string::npos) return false;
  if (gguf_name.find("ffn_gate_inp.weight") != std::string::npos) return false;  // MoE routers
  if (gguf_name == "position_embd.weight") return false;
  return true;
}

// Layers that get more bits in the *_M mixes: the first and last eighth, and every third between.
bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

struct Counters {
  int n_attention_wv = 0, i_attention_wv = 0;
  int n_layers = 0, i_ffn_down = 0, i_ffn_gate = 0, i_ffn_up = 0;
  bool tied = true;
  int64_t n_gqa = 1;
  int64_t n_expert = 0;
};

// The block index of "blk.N.…" (llama.cpp reads it from the name for MoE models), else −1.
int layer_of(const std::string& gguf_name) {
  int i = -1;
  return std::sscanf(gguf_name.c_str(), "blk.%d.", &i) == 1 ? i : -1;
}

// The IQ1/IQ2 mixes (IQ2_XXS, IQ2_XS, IQ2_S, IQ2_M, IQ1_S, IQ1_M) past the output and embedding rules.
GgmlType iq12_rule(Counters& qs, GgmlType t, Category cat, bool iq1, bool iq2s) {
  if (cat == Category::AttnV) {
    if (qs.n_gqa >= 4 || qs.n_expert >= 4) t = GgmlType::Q4_K;
    else t = iq2s ? GgmlType::IQ3_S : GgmlType::Q2_K;
    ++qs.i_attention_wv;
  } else if (qs.n_expert == 8 && cat == Category::AttnK) {
    t = GgmlType::Q4_K;
  } else if (cat == Category::FfnDown) {
    // the running count of ffn_down tensors against the layer count (llama.cpp's n_ffn_down)
    if (qs.i_ffn_down < qs.n_layers / 8) t = iq2s ? GgmlType::IQ3_S : GgmlType::Q2_K;
    ++qs.i_ffn_down;
  } else if (cat == Category::AttnOutput) {
    if (qs.n_expert == 8) t = GgmlType::Q5_K;
    else if (iq1) t = GgmlType::IQ2_XXS;
    else if (iq2s) t = GgmlType::IQ3_S;
  }
  return t;
}

GgmlType mix_rule(Counters& qs, GgmlType t, const PlannedTensor& p, uint32_t ftype, const GGUFPlanOptions& opt) {
  const Category cat = category_of(p.gguf_name);
  const auto is = [&](const char* mix) { return ftype == find_gguf_mix(mix).ftype; };
  // The lowest-bit mixes: their own rules for every category below.
  const bool iq12 = is("IQ2_XXS") || is("IQ2_XS") || is("IQ1_S") || is("IQ2_S") || is("IQ2_M") || is("IQ1_M");
  const bool iq2s = is("IQ2_S") || is("IQ2_M");
  if (cat == Category::Output || (qs.tied && cat == Category::TokenEmbd)) {
    if (opt.output_type) return *opt.output_type;
    const int64_t block = ggml::traits(t).block_size;
    if (is("MXFP4_MOE") || p.ne[0] % block != 0) return GgmlType::Q8_0;
    if (iq12 || is("IQ3_XXS")) return GgmlType::Q5_K;
    return t != GgmlType::Q8_0 ? GgmlType::Q6_K : t;
  }
  if (is("MXFP4_MOE")) return p.shape.size() == 3 ? GgmlType::MXFP4 : GgmlType::Q8_0;  // stacked experts: MXFP4
  if (cat == Category::TokenEmbd) {
    if (is("IQ2_XXS") || is("IQ2_XS") || is("IQ1_S") || is("IQ1_M")) return GgmlType::Q2_K;
    if (iq2s || is("IQ3_XXS")) return GgmlType::IQ3_S;
    if (is("TQ1_0") || is("TQ2_0")) return GgmlType::Q4_K;
    return t;
  }
  if (iq12) return iq12_rule(qs, t, cat, is("IQ1_S") || is("IQ1_M"), iq2s);
  if (cat == Category::AttnV) {
    if (is("Q2_K")) t = qs.n_gqa >= 4 ? GgmlType::Q4_K : GgmlType::Q3_K;
    else if (is("Q2_K_S") && qs.n_gqa >= 4) t = GgmlType::Q4_K;
    else if (is("IQ3_XXS")) t = qs.n_gqa >= 4 ? GgmlType::Q4_K : !opt.has_imatrix ? GgmlType::IQ3_S : GgmlType::IQ3_XXS;
    else if ((is("IQ3_XS") || is("IQ3_S")) && qs.n_gqa >= 4) t = GgmlType::Q4_K;
    else if (is("IQ3_M")) t = GgmlType::Q4_K;
    else if (is("Q3_K_M")) t = qs.i_attention_wv < 2 ? GgmlType::Q5_K : GgmlType::Q4_K;
    else if (is("Q3_K_L")) t = GgmlType::Q5_K;
    else if ((is("IQ4_NL") || is("IQ4_XS")) && qs.n_gqa >= 4) t = GgmlType::Q5_K;
    else if ((is("Q4_K_M") || is("Q5_K_M")) && use_more_bits(qs.i_attention_wv, qs.n_attention_wv)) t = GgmlType::Q6_K;
    else if (is("Q4_K_S") && qs.i_attention_wv < 4) t = GgmlType::Q5_K;
    if (qs.n_expert == 8) t = GgmlType::Q8_0;  // llama.cpp: 8-expert models (Mixtral) keep v at 8 bits
    ++qs.i_attention_wv;
    return t;
  }
  if (cat == Category::AttnK || cat == Category::AttnQ) {
    if (cat == Category::AttnK && qs.n_expert == 8) return GgmlType::Q8_0;
    if (is("IQ3_XS")) return GgmlType::IQ3_XXS;
    if (is("IQ3_XXS")) return GgmlType::IQ2_S;
    return t;
  }
  if (cat == Category::FfnDown) {
    // MoE models: the layer from the name (their dense and expert down projections share one count there)
    const int i = qs.n_expert > 1 && layer_of(p.gguf_name) >= 0 ? layer_of(p.gguf_name) : qs.i_ffn_down, n = qs.n_layers;
    if (is("Q2_K")) t = GgmlType::Q3_K;
    else if (is("Q2_K_S")) { if (i < n / 8) t = GgmlType::Q4_K; }
    else if (is("IQ3_XXS") && !opt.has_imatrix) t = i < n / 8 ? GgmlType::Q4_K : GgmlType::Q3_K;
    else if (is("Q3_K_M")) t = i < n / 16 ? GgmlType::Q5_K : GgmlType::Q4_K;
    else if (is("IQ3_M") && (i < n / 8 || (qs.n_expert == 8 && use_more_bits(i, n)))) t = GgmlType::Q4_K;
    else if (is("Q3_K_L")) t = GgmlType::Q5_K;
    else if (is("Q4_K_M")) { if (use_more_bits(i, n)) t = GgmlType::Q6_K; }
    else if (i < n / 8 && (is("IQ4_NL") || is("IQ4_XS")) && !opt.has_imatrix) t = GgmlType::Q5_K;
    else if (is("Q5_K_M") && use_more_bits(i, n)) t = GgmlType::Q6_K;
    else if (is("Q4_K_S") && i < n / 8) t = GgmlType::Q5_K;
    else if ((is("Q4_0") || is("Q5_0")) && opt.has_imatrix && i < n / 8) t = is("Q4_0") ? GgmlType::Q4_1 : GgmlType::Q5_1;
    ++qs.i_ffn_down;
    return t;
  }
  if (cat == Category::AttnOutput) {
    if (qs.n_expert == 8) {
      if (is("Q2_K") || is("IQ3_XS") || is("IQ3_XXS") || is("Q3_K_S") || is("Q3_K_M") || is("IQ4_NL") ||
          is("Q4_K_S") || is("Q4_K_M") || is("IQ3_S") || is("IQ3_M") || is("IQ4_XS"))
        t = GgmlType::Q5_K;
    } else if (is("Q2_K")) t = GgmlType::Q3_K;
    else if (is("IQ3_XXS")) t = GgmlType::IQ3_S;
    else if (is("Q3_K_M") || is("IQ3_M")) t = GgmlType::Q4_K;
    else if (is("Q3_K_L")) t = GgmlType::Q5_K;
    return t;
  }
  if (cat == Category::FfnGate || cat == Category::FfnUp) {
    int& counter = cat == Category::FfnGate ? qs.i_ffn_gate : qs.i_ffn_up;
    const int i = qs.n_expert > 1 && layer_of(p.gguf_name) >= 0 ? layer_of(p.gguf_name) : counter, n = qs.n_layers;
    if (is("IQ3_XS") && i >= n / 8 && i < 7 * n / 8) t = GgmlType::IQ3_XXS;
    ++counter;
  }
  return t;
}

// A type whose block fits the row length (llama.cpp's fallback), or F16 when none does.
GgmlType fallback_type(GgmlType t, int64_t ncols, bool& fell_back) {
  fell_back = false;
  if (ncols % ggml::traits(t).block_size == 0) return t;
  fell_back = true;
  GgmlType r = t;
  switch (t) {
    case GgmlType::IQ1_S:
    case GgmlType::IQ1_M:
    case GgmlType::IQ2_XXS:
    case GgmlType::IQ2_XS:
    case GgmlType::IQ2_S:
    case GgmlType::IQ3_XXS:
    case GgmlType::IQ3_S:
    case GgmlType::IQ4_XS: r = GgmlType::IQ4_NL; break;
    case GgmlType::Q2_K:
    case GgmlType::Q3_K:
    case GgmlType::TQ1_0:
    case GgmlType::TQ2_0: r = GgmlType::Q4_0; break;
    case GgmlType::Q4_K: r = GgmlType::Q5_0; break;
    case GgmlType::Q5_K: r = GgmlType::Q5_1; break;
    case GgmlType::Q6_K: r = GgmlType::Q8_0; break;
    default: break;  // already a 32-block type
  }
  if (ncols % ggml::traits(r).block_size != 0) r = GgmlType::F16;
  return r;
}

// llama.cpp's tensor_requires_imatrix: the lattice types below 3.1 bits (IQ3_XXS included) anywhere but
// the embedding and the head, and Q2_K in a Q2_K_S file.
bool needs_imatrix(const PlannedTensor& p, uint32_t ftype) {
  const Category cat = category_of(p.gguf_name);
  if (cat == Category::Output || cat == Category::TokenEmbd) return false;
  switch (p.type) {
    case GgmlType::IQ3_XXS:
    case GgmlType::IQ2_XXS:
    case GgmlType::IQ2_XS:
    case GgmlType::IQ2_S:
    case GgmlType::IQ1_M:
    case GgmlType::IQ1_S: return true;
    case GgmlType::Q2_K: return ftype == find_gguf_mix("Q2_K_S").ftype;
    default: return false;
  }
}

std::string upper(std::string_view s) {
  std::string u(s);
  for (auto& ch : u) ch = char(std::toupper(static_cast<unsigned char>(ch)));
  return u;
}

}  // namespace

std::span<const GGUFMix> gguf_mixes() { return kMixes; }

const GGUFMix& find_gguf_mix(std::string_view name) {
  std::string u = upper(name);
  if (u == "Q4_K") u = "Q4_K_M";
  if (u == "Q3_K") u = "Q3_K_M";
  if (u == "Q5_K") u = "Q5_K_M";
  for (const auto& m : kMixes)
    if (m.name == u) return m;
  std::string known;
  for (const auto& m : kMixes) known += (known.empty() ? "" : ", ") + std::string(m.name);
  fail("unknown GGUF type '{}' (known: {})", name, known);
}

ggml::GgmlType parse_ggml_type(std::string_view name, std::string_view flag) {
  if (const auto* t = ggml::find_type(upper(name))) return t->type;
  std::string known;
  for (const auto& t : ggml::all_types()) known += (known.empty() ? "" : ", ") + std::string(t.name);
  fail("{}: unknown tensor type '{}' (known: {})", flag, name, known);
}

std::pair<std::string, ggml::GgmlType> parse_tensor_type_override(const std::string& spec) {
  const auto eq = spec.rfind('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
    fail("--tensor-type '{}': expected REGEX=TYPE (e.g. attn_v=Q6_K)", spec);
  const std::string re = spec.substr(0, eq);
  try {
    std::regex check(re);
  } catch (const std::regex_error& e) {
    fail("--tensor-type '{}': bad regular expression: {}", spec, e.what());
  }
  return {re, parse_ggml_type(spec.substr(eq + 1), "--tensor-type")};
}

std::vector<PlannedTensor> plan_gguf(const ModelConfig& c, const WeightSource& w, const GGUFPlanOptions& opt) {
  const GGUFMix& mix = find_gguf_mix(opt.type);
  // File order: embeddings, blocks in order, final norm, head (the order the counters assume).
  std::vector<std::string> order;
  const ArchSpec& a = *c.arch;
  order.push_back(std::string(a.embed_tokens) + ".weight");
  if (!a.embed_positions.empty()) order.push_back(std::string(a.embed_positions) + ".weight");
  if (c.word_embed_proj_dim != c.hidden && !a.project_in.empty()) order.push_back(std::string(a.project_in) + ".weight");
  for (int i = 0; i < c.n_layers; ++i)
    for (auto& name : c.block(i).file_order_names()) order.push_back(std::move(name));
  if (c.final_norm) {
    order.push_back(std::string(a.final_norm) + ".weight");
    if (a.norm == NormKind::LayerNorm) order.push_back(std::string(a.final_norm) + ".bias");
  }
  if (c.word_embed_proj_dim != c.hidden && !a.project_out.empty()) order.push_back(std::string(a.project_out) + ".weight");
  if (!c.tied_embeddings) order.push_back(std::string(a.lm_head) + ".weight");

  std::vector<PlannedTensor> plan;
  Counters qs;
  qs.n_layers = int(c.n_layers);
  qs.n_gqa = c.n_heads / c.n_kv_heads;
  qs.n_expert = c.n_experts;
  std::set<std::string> stacked;  // the ffn_*_exps tensors already planned
  for (const auto& hf : order) {
    PlannedTensor p;
    p.hf_name = hf;
    if (const auto slice = gguf_expert_slice(c, hf)) {  // a MoE expert: its layer's stacked tensor, once
      if (!stacked.insert(slice->gguf_name).second) continue;
      p.gguf_name = slice->gguf_name;
      p.stack = gguf_expert_members(c, slice->gguf_name);
      const Shape one = w.shape(hf);
      p.shape = {int64_t(p.stack.size()), one[0], one[1]};
    } else {
      const auto gg = hf_to_gguf_name(c, hf);
      QL_ASSERT(gg.has_value(), "no GGUF name for {}", hf);
      p.gguf_name = *gg;
      p.shape = w.shape(hf);
    }
    p.ne.assign(p.shape.rbegin(), p.shape.rend());
    if (category_of(p.gguf_name) == Category::AttnV) ++qs.n_attention_wv;
    if (category_of(p.gguf_name) == Category::Output) qs.tied = false;
    plan.push_back(std::move(p));
  }
  const bool quantized_mix = ggml::traits(mix.default_type).is_quantized;
  for (auto& p : plan) {
    if (!allows_quantization(p.gguf_name, p.shape.size())) {
      p.type = GgmlType::F32;  // norms, biases, position table: kept exact, as the converter writes them
    } else {
      const Category cat = category_of(p.gguf_name);
      GgmlType t = mix.default_type;
      if (opt.token_embedding_type && cat == Category::TokenEmbd) {
        t = *opt.token_embedding_type;
        p.note = "--token-embedding-type";
      } else if (opt.output_type && cat == Category::Output) {
        t = *opt.output_type;
        p.note = "--output-tensor-type";
      } else if (quantized_mix) {
        bool manual = false;
        for (const auto& [re, type] : opt.tensor_types) {
          if (std::regex_search(p.gguf_name, std::regex(re))) {
            t = type;
            manual = true;
            p.note = "--tensor-type " + re;
            break;
          }
        }
        if (!manual && !opt.pure) t = mix_rule(qs, t, p, mix.ftype, opt);
        bool fell_back = false;
        t = fallback_type(t, p.ne[0], fell_back);
        if (fell_back) {
          p.fallback = true;
          p.note = fmt::format("row length {} not a multiple of the block size", p.ne[0]);
        }
      }
      p.type = t;
      p.needs_imatrix = needs_imatrix(p, mix.ftype);
    }
    p.bytes = ggml::row_size(p.type, p.ne[0]) * size_t(shape_numel(p.shape) / p.ne[0]);
  }
  return plan;
}

}  // namespace quantllm
