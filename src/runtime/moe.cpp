// MoE routing (see moe.h).
#include "runtime/moe.h"

#include "core/error.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace quantllm {

std::vector<ExpertRoute> route_tokens(const float* logits, int64_t rows, int64_t n_experts, int top_k, bool norm_topk) {
  QL_ASSERT(top_k >= 1 && top_k <= n_experts, "top-{} of {} experts", top_k, n_experts);
  std::vector<ExpertRoute> routes(static_cast<size_t>(n_experts));
  std::vector<float> p(static_cast<size_t>(n_experts));
  std::vector<int> order(static_cast<size_t>(n_experts));
  for (int64_t r = 0; r < rows; ++r) {
    const float* l = logits + r * n_experts;
    // softmax in float, as F.softmax(router_logits, dtype=torch.float)
    float mx = l[0];
    for (int64_t e = 1; e < n_experts; ++e) mx = std::max(mx, l[e]);
    float sum = 0;
    for (int64_t e = 0; e < n_experts; ++e) sum += (p[size_t(e)] = std::exp(l[e] - mx));
    for (float& v : p) v /= sum;
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + top_k, order.end(),
                      [&](int a, int b) { return p[size_t(a)] > p[size_t(b)] || (p[size_t(a)] == p[size_t(b)] && a < b); });
    float kept = 0;
    for (int i = 0; i < top_k; ++i) kept += p[size_t(order[size_t(i)])];
    for (int i = 0; i < top_k; ++i) {
      const int e = order[size_t(i)];
      routes[size_t(e)].rows.push_back(int32_t(r));
      routes[size_t(e)].weights.push_back(norm_topk ? p[size_t(e)] / kept : p[size_t(e)]);
    }
  }
  return routes;
}

}  // namespace quantllm
