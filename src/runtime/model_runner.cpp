// The default window NLL of a ModelRunner (see model_runner.h): logits on the host, log-softmax in double.
#include "runtime/model_runner.h"

#include "core/error.h"

#include <cmath>

namespace quantllm {

double token_nll(const float* logits, int64_t vocab, int32_t target) {
  double mx = logits[0];
  for (int64_t j = 1; j < vocab; ++j) mx = std::max(mx, double(logits[j]));
  double sum = 0;
  for (int64_t j = 0; j < vocab; ++j) sum += std::exp(double(logits[j]) - mx);
  return std::log(sum) + mx - double(logits[target]);
}

std::vector<double> ModelRunner::window_nll(const std::vector<int32_t>& tokens, int64_t n_seq, int64_t ctx) const {
  QL_ASSERT(int64_t(tokens.size()) == n_seq * ctx && ctx >= 2);
  const int64_t vocab = config().vocab;
  std::vector<double> out(static_cast<size_t>(n_seq), 0.0);
  forward(tokens, n_seq, ctx, [&](int64_t s, const Tensor& logits) {
    double sum = 0;  // positions 0..ctx-2 predict tokens 1..ctx-1
    for (int64_t t = 0; t + 1 < ctx; ++t) sum += token_nll(logits.row(t), vocab, tokens[size_t(s * ctx + t + 1)]);
    out[size_t(s)] = sum;
  });
  return out;
}

}  // namespace quantllm
