// GGUF quantization plans: which ggml type every tensor gets, as llama.cpp's llama-quantize decides.
//
// A mix (Q4_K_M, Q3_K_S, …) names a default type and an ftype id; llama.cpp then gives some
// tensors more bits (attn_v and ffn_down in the first, last and every third layer for *_M, the
// output matrix Q6_K, …), lets --tensor-type REGEX=TYPE overrides win, and falls back to a type
// whose block fits when a row length is not a multiple of the block size. The rules are rows of
// kMixes plus the per-category function in gguf_plan.cpp, in llama.cpp's order.
#pragma once

#include "model/weights.h"
#include "quant/ggml/types.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace quantllm {

struct GGUFMix {
  std::string_view name;  // "Q4_K_M"
  uint32_t ftype;         // general.file_type (llama_ftype)
  ggml::GgmlType default_type;
  std::string_view description;
};
std::span<const GGUFMix> gguf_mixes();
// Finds a mix by name (case-insensitive; "Q4_K" means Q4_K_M as in llama-quantize). Error lists the known ones.
const GGUFMix& find_gguf_mix(std::string_view name);
// Parses a single ggml type name (for --tensor-type, --output-tensor-type …); Error lists the known ones.
ggml::GgmlType parse_ggml_type(std::string_view name, std::string_view flag);

struct GGUFPlanOptions {
  std::string type = "Q4_K_M";
  bool pure = false;  // every quantizable tensor gets the default type
  std::vector<std::pair<std::string, ggml::GgmlType>> tensor_types;  // REGEX=TYPE, first match wins
  std::optional<ggml::GgmlType> output_type, token_embedding_type;
  bool has_imatrix = false;
};
// Parses "REGEX=TYPE".
std::pair<std::string, ggml::GgmlType> parse_tensor_type_override(const std::string& spec);

struct PlannedTensor {
  std::string hf_name, gguf_name;
  // MoE experts stacked into one tensor (ffn_*_exps): the experts' HF names in order, hf_name the first;
  // shape then [n_experts, out, in] and ne {in, out, n_experts}. Empty for every other tensor.
  std::vector<std::string> stack;
  Shape shape;                 // HF orientation: [out, in]
  std::vector<int64_t> ne;     // ggml order: ne[0] = row length
  ggml::GgmlType type = ggml::GgmlType::F32;
  bool fallback = false;       // the mix's type did not fit the row length
  bool needs_imatrix = false;  // llama.cpp writes this type here only from an importance matrix
  std::string note;            // why (override, fallback …)
  size_t bytes = 0;
};

// The plan for every tensor of the model, in file order.
std::vector<PlannedTensor> plan_gguf(const ModelConfig& c, const WeightSource& w, const GGUFPlanOptions& opt);

}  // namespace quantllm
