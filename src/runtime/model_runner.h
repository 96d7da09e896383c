// ModelRunner: a whole model that turns windows of tokens into next-token logits, on some device — the
// CPU's FullModel (runtime/forward.h) or a GPU's DeviceModel (runtime/cuda/model.h). Evaluation
// (eval/perplexity.h, eval/kld.h) is written once against it; methods/devices.cpp makes one for a device.
#pragma once

#include "core/tensor.h"
#include "model/config.h"

#include <cstdint>
#include <functional>
#include <vector>

namespace quantllm {

class ModelRunner {
 public:
  virtual ~ModelRunner() = default;
  virtual const ModelConfig& config() const = 0;
  // Windows [n_seq, seq_len] (each from position 0) → on_logits(window, logits [seq_len, vocab]) on the host.
  virtual void forward(const std::vector<int32_t>& tokens, int64_t n_seq, int64_t seq_len,
                       const std::function<void(int64_t seq, const Tensor& logits)>& on_logits) const = 0;
  // Σ over positions 0 … seq_len−2 of −log p(token at t+1), for each window, summed in position order
  // (log-softmax in double). [n_seq]
  virtual std::vector<double> window_nll(const std::vector<int32_t>& tokens, int64_t n_seq, int64_t seq_len) const;
  // Windows per forward pass when the caller does not say.
  virtual int64_t default_batch() const { return 4; }
};

// log-softmax of one row of logits, in double; returns −log p(target).
double token_nll(const float* logits, int64_t vocab, int32_t target);

}  // namespace quantllm
