// A whole model on the GPU for evaluation: every block's weights uploaded in fp32 (dequantized when
// the source is quantized, as FullModel does on the CPU), the embeddings computed on the host, the
// final norm and the LM head on the device. forward() hands each window's logits [T, vocab] back to
// the host, like FullModel::forward.
#pragma once

#include "runtime/cuda/ops.h"
#include "runtime/model_runner.h"

#include <functional>
#include <memory>
#include <vector>

namespace quantllm::cuda {

class DeviceModel final : public ModelRunner {
 public:
  // Owns its context: one device, one stream.
  DeviceModel(const LoadedModel& m, Math math);
  const ModelConfig& config() const override { return c_; }
  // Windows [n_seq, seq_len] → on_logits(window, logits [seq_len, vocab]) on the host.
  void forward(const std::vector<int32_t>& tokens, int64_t n_seq, int64_t seq_len,
               const std::function<void(int64_t seq, const Tensor& logits)>& on_logits) const override;
  // Σ over positions 0 … seq_len−2 of −log p(token at t+1) for each window, computed on the device
  // (only the sums come back). [n_seq]
  std::vector<double> window_nll(const std::vector<int32_t>& tokens, int64_t n_seq, int64_t seq_len) const override;
  int64_t default_batch() const override { return 16; }

 private:
  Context ctx_;
  ModelConfig c_;
  Math math_;
  GlobalWeights globals_;  // host: embeddings (computed on the host)
  std::vector<DeviceBlock> blocks_;
  DeviceNorm final_norm_;
  DeviceLinear project_out_, lm_head_;
  mutable std::unique_ptr<Ops> ops_;  // for the current window length
  // The blocks and the head's input for windows [n_seq, T]: returns the head input (device) [n_seq·T, e].
  const float* trunk(const std::vector<int32_t>& tokens, int64_t n_seq, int64_t T) const;
  mutable DeviceArray<float> x_, h_, p_, logits_;
  mutable DeviceArray<int32_t> targets_;
  mutable DeviceArray<double> nll_;
};

}  // namespace quantllm::cuda
