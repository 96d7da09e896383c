// The CUDA half of the block ops (runtime/ops.h): one decoder block's weights uploaded in fp32, linear
// layers through cuBLAS, norms / RoPE / causal softmax / activations as kernels, attention as two
// batched products per group of windows with the softmax between. The block interpreter
// (runtime/block.h) runs blocks through it exactly as it runs them through the CPU's ops.
//
// Precision: Math::FP32 computes the products on the fp32 units (the CPU's arithmetic, another
// summation order); Math::TF32 rounds their operands to tf32 (10-bit mantissa, the precision of the
// fp16 activations the reference GPTQ code runs with) for tensor-core speed.
#pragma once

#include "model/config.h"
#include "model/weights.h"
#include "runtime/cuda/context.h"
#include "runtime/ops.h"

#include <array>
#include <vector>

namespace quantllm::cuda {

struct DeviceLinear {
  DeviceArray<float> w;  // [out, in]
  DeviceArray<float> b;  // [out] or empty
  int64_t out = 0, in = 0;
};
struct DeviceNorm {
  DeviceArray<float> w, b;  // [width]; b only for LayerNorm
};
// One block's weights on the device, keyed by the slots of its BlockSpec.
struct DeviceBlock {
  std::vector<DeviceLinear> linear;
  std::vector<DeviceNorm> norm;
};

// Uploads every tensor of w (fp32 host) to the device.
DeviceBlock upload_block(const Context& ctx, const BlockWeights& w);
// Replaces a linear's weight (same shape) or a norm from host tensors.
void upload_tensor(const Context& ctx, const Tensor& t, DeviceArray<float>& dst);

class Ops final : public BlockOps {
 public:
  // seq_len: tokens per window; every call's rows are whole windows starting at position 0.
  Ops(const Context& ctx, const ModelConfig& c, int64_t seq_len, Math math);

  // The block the ops act on (until the next bind).
  void bind(const BlockSpec& spec, const DeviceBlock& w) {
    spec_ = &spec;
    w_ = &w;
  }
  const ModelConfig& config() const { return c_; }
  Math math() const { return math_; }
  int64_t seq_len() const { return T_; }
  const Context& context() const { return ctx_; }

  // y[rows, out] = x[rows, in] · Wᵀ + b
  void linear(const DeviceLinear& l, const float* x, int64_t rows, float* y, bool exact = false) const;  // exact: fp32

  Act scratch(Scratch id, int64_t rows, int64_t cols) override;
  void norm(int slot, Act x, Act y) override;
  void head_norm(int slot, Act x) override;
  void linears(std::span<const int> slots, Act x, std::span<const Act> ys) override;
  void rope(int sublayer, Act x, const Step& step) override;
  void attention(int sublayer, Act q, Act k, Act v, Act out, const Step& step) override;
  void activate(int sublayer, Act gate, Act up) override;
  void add(Act x, Act y) override;
  void copy(Act from, Act to) override;
  void copy_cols(Act from, int64_t col0, Act to) override;
  void to_host(Act x, float* host) override;
  void gather_rows(Act x, std::span<const int32_t> rows, Act out) override;
  void scatter_add_rows(Act y, std::span<const int32_t> rows, std::span<const float> weights, Act out) override;
  void zero(Act x) override;

 private:
  void norm_rows(const NormSlot& n, const DeviceNorm& w, const float* x, int64_t rows, float* y) const;
  const Context& ctx_;
  ModelConfig c_;
  int64_t T_;
  Math math_;
  const BlockSpec* spec_ = nullptr;
  const DeviceBlock* w_ = nullptr;
  int64_t seqs_per_attention_;  // windows whose score matrices are materialized at once
  // RoPE tables [T, head_dim/2], one per base (Gemma 3: the sliding layers' and the global ones)
  struct RopeTable {
    double theta = 0;
    bool scaled = true;
    DeviceArray<float> cos, sin;
  };
  std::vector<RopeTable> rope_;
  const RopeTable& rope_table(const Sublayer& sl);
  std::array<DeviceArray<float>, size_t(Scratch::kCount)> scratch_;
  DeviceArray<float> scores_;
  DeviceArray<int32_t> rows_;     // MoE: the rows of one expert
  DeviceArray<float> weights_;    // MoE: their routing weights
  DeviceArray<const float*> ptr_a_, ptr_b_;
  DeviceArray<float*> ptr_c_;
};

}  // namespace quantllm::cuda
