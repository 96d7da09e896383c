// The CPU half of the block ops (runtime/ops.h): norms, RoPE and attention as threaded loops over rows
// and (window, head) pairs, linear layers through BLAS (fp32 weights) or the packed-weight kernels
// (qmatrix.h), the feed-forward activations through the ISA kernels. Results never depend on the thread
// count: every row (and every (window, head) task) is computed by the same code whatever the split.
#pragma once

#include "core/tensor.h"
#include "model/config.h"
#include "model/weights.h"
#include "runtime/ops.h"

#include <array>
#include <memory>
#include <vector>

namespace quantllm {
namespace cpu {

struct QMatrix;

// A linear layer on the CPU: fp32 weights, or a packed matrix the kernels compute on.
struct LinearRef {
  const Tensor* w = nullptr;     // [out, in]; unused when packed is set
  const Tensor* b = nullptr;     // [out] or null
  const QMatrix* packed = nullptr;
  int64_t out() const;
  int64_t in() const;
};

// y [rows, out] = x [rows, in] · Wᵀ (+ b).
void linear(const LinearRef& w, const float* x, int64_t rows, float* y);
// The same for several layers on one input: one qmatmul_many when every weight is packed (in generation,
// one threaded pass for all), else one linear each.
void linears(std::span<const LinearRef> w, const float* x, int64_t rows, std::span<float* const> y);
// y = norm(x) row by row over rows of `width` (LayerNorm when b is given), gains offset + w; y may be x.
void normalize(NormKind kind, const Tensor& w, const Tensor& b, double eps, const float* x, int64_t rows,
               int64_t width, float* y, float offset = 0);

// Scratch buffers of one forward pass, reused by every block it runs.
struct Scratch {
  std::array<std::vector<float>, size_t(quantllm::Scratch::kCount)> buf;
};

// The ops of one block (spec, fp32 weights; packed[slot] where the quantized engine keeps a linear packed).
class Ops final : public BlockOps {
 public:
  Ops(const ModelConfig& c, const BlockSpec& spec, const BlockWeights& w, Scratch& scratch,
      const std::vector<std::shared_ptr<const QMatrix>>* packed = nullptr)
      : c_(c), spec_(spec), w_(w), scratch_(scratch), packed_(packed) {}

  Act scratch(quantllm::Scratch id, int64_t rows, int64_t cols) override;
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

  LinearRef linear_ref(int slot) const;

 private:
  const ModelConfig& c_;
  const BlockSpec& spec_;
  const BlockWeights& w_;
  Scratch& scratch_;
  const std::vector<std::shared_ptr<const QMatrix>>* packed_;
};

}  // namespace cpu
}  // namespace quantllm
