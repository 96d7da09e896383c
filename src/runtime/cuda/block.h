// The generic decoder block on the GPU (the CPU's runtime/forward.h, piece by piece): weights of one
// block uploaded in fp32, linear layers through cuBLAS, norms / RoPE / causal softmax / activations
// as kernels, attention as two batched products per group of windows with the softmax between.
//
// Calibration drivers call the pieces directly so that each stage of a block runs once over all
// windows (pipeline/cuda/); `forward` runs a whole block with an observer, like block_forward.
// Precision: Math::FP32 computes the products on the fp32 units (the CPU's arithmetic, another
// summation order); Math::TF32 rounds their operands to tf32 (10-bit mantissa, the precision of the
// fp16 activations the reference GPTQ code runs with) for tensor-core speed.
#pragma once

#include "model/config.h"
#include "model/weights.h"
#include "runtime/cuda/context.h"
#include "runtime/forward.h"

#include <array>
#include <functional>

namespace quantllm::cuda {

struct DeviceLinear {
  DeviceArray<float> w;  // [out, in]
  DeviceArray<float> b;  // [out] or empty
  int64_t out = 0, in = 0;
};
struct DeviceNorm {
  DeviceArray<float> w, b;  // [hidden]; b only for LayerNorm
};
struct DeviceBlock {
  std::array<DeviceLinear, kNumLinear> linear;
  DeviceNorm attn_norm, ffn_norm;
  DeviceLinear& operator[](Linear l) { return linear[size_t(l)]; }
  const DeviceLinear& operator[](Linear l) const { return linear[size_t(l)]; }
};

// Uploads every tensor of w (fp32 host) to the device.
DeviceBlock upload_block(const Context& ctx, const ModelConfig& c, const BlockWeights& w);
// Replaces a linear's weight (same shape) or a norm from host tensors.
void upload_tensor(const Context& ctx, const Tensor& t, DeviceArray<float>& dst);

// Receives the input of each linear layer during BlockForward::forward (x: [rows, in] on the device);
// returning false stops the block there (x is then partly updated).
using DeviceObserver = std::function<bool(LinearInput which, const float* x, int64_t rows)>;

class BlockForward {
 public:
  // seq_len: tokens per window; every call's rows are whole windows.
  BlockForward(const Context& ctx, const ModelConfig& c, int64_t seq_len, Math math);

  const ModelConfig& config() const { return c_; }
  Math math() const { return math_; }
  int64_t seq_len() const { return T_; }

  // y[rows, out] = x[rows, in] · Wᵀ + b
  void linear(const DeviceLinear& l, const float* x, int64_t rows, float* y) const;
  // h = the attention (resp. feed-forward) sub-layer's input: norm(x) for pre-norm blocks, x otherwise.
  void attn_input(const DeviceBlock& w, const float* x, int64_t rows, float* h) const;
  void ffn_input(const DeviceBlock& w, const float* x, int64_t rows, float* h) const;
  // att [n_seq·T, q_dim] = softmax(q kᵀ / √d, causal) v with q, k, v = the block's projections of h (RoPE applied).
  void attention_mix(const DeviceBlock& w, const float* h, int64_t n_seq, float* att);
  // mid [rows, ffn] = act(gate(h)) ⊙ up(h), or act(up(h))
  void ffn_mix(const DeviceBlock& w, const float* h, int64_t rows, float* mid);
  // x ← x + o(att) (then the attention norm for post-norm blocks); x ← x + down(mid) (then the ffn norm).
  void attn_residual(const DeviceBlock& w, float* x, const float* att, int64_t rows);
  void ffn_residual(const DeviceBlock& w, float* x, const float* mid, int64_t rows);
  // The whole block in place on x [n_seq·T, hidden]; false when the observer stopped it.
  bool forward(const DeviceBlock& w, float* x, int64_t n_seq, const DeviceObserver& observer = {});

 private:
  void norm(const DeviceNorm& n, const float* x, int64_t rows, float* y) const;
  const Context& ctx_;
  ModelConfig c_;
  int64_t T_;
  Math math_;
  int64_t seqs_per_attention_;  // windows whose score matrices are materialized at once
  DeviceArray<float> cos_, sin_;  // RoPE tables [T, head_dim/2]
  DeviceArray<float> q_, k_, v_, scores_, gate_, tmp_, h_, mid_, att_;
  DeviceArray<const float*> ptr_a_, ptr_b_;
  DeviceArray<float*> ptr_c_;
};

}  // namespace quantllm::cuda
