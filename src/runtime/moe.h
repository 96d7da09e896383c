// Routing of a mixture-of-experts feed-forward (transformers' Qwen3MoeSparseMoeBlock / Mixtral's): for each
// token, softmax over the router's logits (in float), the top k experts by probability, their weights
// renormalized to sum 1 when norm_topk. Computed on the host from the router logits, for both devices.
#pragma once

#include <cstdint>
#include <vector>

namespace quantllm {

struct ExpertRoute {
  std::vector<int32_t> rows;   // the tokens (rows of the sub-layer's input) routed to this expert, ascending
  std::vector<float> weights;  // their routing weights
};

// logits: [rows, n_experts] row-major. Ties in probability go to the lower expert index.
std::vector<ExpertRoute> route_tokens(const float* logits, int64_t rows, int64_t n_experts, int top_k, bool norm_topk);

}  // namespace quantllm
