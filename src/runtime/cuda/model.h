// A whole model on the GPU for evaluation: every block's weights uploaded in fp32 (dequantized when
// the source is quantized, as FullModel does on the CPU), the embeddings computed on the host, the
// final norm and the LM head on the device. forward() hands each window's logits [T, vocab] back to
// the host, like FullModel::forward.
#pragma once

#include "runtime/cuda/ops.h"

#include <functional>
#include <memory>
#include <vector>

namespace quantllm::cuda {

class DeviceModel {
 public:
  DeviceModel(const Context& ctx, const Model& m, Math math);
  const ModelConfig& config() const { return c_; }
  // Windows [n_seq, seq_len] → on_logits(window, logits [seq_len, vocab]) on the host.
  void forward(const std::vector<int32_t>& tokens, int64_t n_seq, int64_t seq_len,
               const std::function<void(int64_t seq, const Tensor& logits)>& on_logits);
  // Σ over positions 0 … seq_len−2 of −log p(token at t+1) for each window, computed on the device
  // (only the sums come back). [n_seq]
  std::vector<double> window_nll(const std::vector<int32_t>& tokens, int64_t n_seq, int64_t seq_len);

 private:
  const Context& ctx_;
  ModelConfig c_;
  Math math_;
  GlobalWeights globals_;  // host: embeddings (computed on the host)
  std::vector<DeviceBlock> blocks_;
  DeviceNorm final_norm_;
  DeviceLinear project_out_, lm_head_;
  std::unique_ptr<Ops> ops_;  // for the current window length
  // The blocks and the head's input for windows [n_seq, T]: returns the head input (device) [n_seq·T, e].
  const float* trunk(const std::vector<int32_t>& tokens, int64_t n_seq, int64_t T);
  DeviceArray<float> x_, h_, p_, logits_;
  DeviceArray<int32_t> targets_;
  DeviceArray<double> nll_;
};

}  // namespace quantllm::cuda
