// A whole model on the GPU for evaluation: every block's weights uploaded in fp32 (dequantized when
// the source is quantized, as FullModel does on the CPU), the embeddings computed on the host, the
// final norm and the LM head on the device. forward() hands each window's logits [T, vocab] back to
// the host, like FullModel::forward.
#pragma once

#include "runtime/cuda/block.h"

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

 private:
  const Context& ctx_;
  ModelConfig c_;
  Math math_;
  GlobalWeights globals_;  // host: embeddings (computed on the host)
  std::vector<DeviceBlock> blocks_;
  DeviceNorm final_norm_;
  DeviceLinear project_out_, lm_head_;
  std::unique_ptr<BlockForward> forward_;  // for the current window length
  DeviceArray<float> x_, h_, p_, logits_;
};

}  // namespace quantllm::cuda
