// GPTQ on the GPU: the Hessian accumulated on the device, the upper Cholesky factor of its damped
// inverse in double (cuSOLVER's factorization and a triangular inverse of the reversed matrix, where the CPU factors, inverts and factors again: same matrix, half the work), and the
// column loop in one launch per lazy batch
// (kernels.h gptq_block) followed by one cuBLAS product for the batch's feedback onto later columns.
//
// Same algorithm and conventions as quant/gptq.h (dead inputs, damping schedule, act-order by
// descending diag(H) with stable ties, static groups, g_idx, group parameters found on columns that
// carry all earlier feedback); the lazy batch width is the GPU's choice (≤ 128, so that every group
// lies in one batch or starts one), which the result does not depend on. The factor of H⁻¹ is shared
// by all layers reading the same input (q, k and v; gate and up): it is computed once.
#pragma once

#include "quant/gptq.h"
#include "runtime/cuda/context.h"
#include "runtime/cuda/kernels.h"

#include <span>
#include <string_view>
#include <vector>

namespace quantllm::cuda {

// The scratch of DeviceHessian::add: one chunk's product [in, in] in fp32 and the chunk in bf16. Every
// Hessian of a backend can share one (the adds run in order on one stream): a MoE block's hundreds of
// expert Hessians then need one product's scratch, not one each.
struct HessianScratch {
  DeviceArray<float> product;
  DeviceArray<uint16_t> bf16;
  void release() { product.release(), bf16.release(); }
};

// Σ xᵀx over calibration rows, in double (each chunk's product with fp32 accumulation — operands in fp32,
// tf32 or bf16 by `math` — then added). Only the lower tiles are summed; complete() mirrors the rest.
class DeviceHessian {
 public:
  DeviceHessian(const Context& ctx, int64_t in);
  // An accumulator holding a given Hessian H [in, in] as if from n rows (Σ = H·n/2): for tests.
  static DeviceHessian from_host(const Context& ctx, const std::vector<double>& h, int64_t in, int64_t n);
  void add(const Context& ctx, const float* x, int64_t rows, Math math) { add(ctx, x, rows, math, own_); }
  // The same with a shared scratch.
  void add(const Context& ctx, const float* x, int64_t rows, Math math, HessianScratch& scratch);
  // Fills the upper tiles from the lower ones; no rows may be added after it.
  void complete(const Context& ctx);
  int64_t in() const { return in_; }
  int64_t rows() const { return rows_; }
  // Σ in full once complete() ran (the upper tiles are stale before).
  const double* sum() const {
    QL_ASSERT(mirrored_, "Hessian read before complete()");
    return sum_.data();
  }
  void release() {
    sum_.release();
    own_.release();
  }
  void release_scratch() { own_.release(); }  // once every chunk is added

 private:
  static constexpr int64_t kTile = 1024;  // width of the tiles xᵀx is computed in
  int64_t in_ = 0, rows_ = 0;
  bool mirrored_ = false;
  HessianScratch own_;       // the scratch of add() without a shared one
  DeviceArray<double> sum_;  // [in, in]
};

// What GPTQ needs of one input's Hessian: shared by every layer that reads that input.
struct PreparedHessian {
  int64_t in = 0;
  std::vector<int32_t> perm;        // processing position → original column
  std::vector<uint8_t> dead;        // [in] by original column
  int64_t n_dead = 0;
  double damp_used = 0;
  DeviceArray<int32_t> perm_dev, identity_dev;
  DeviceArray<uint8_t> dead_dev;
  DeviceArray<float> hinv;          // [in, in] upper Cholesky factor of the damped, permuted H⁻¹
  DeviceArray<float> h;             // [in, in] H = 2/n Σ xᵀx as accumulated (for the objective)
};

// Device bytes prepare_hessian holds at its peak for an input of width n besides the accumulator: the
// factor in f64, H⁻¹'s factor in f32 and one slab of the triangular inverse (H in f32 comes after the
// factor is freed).
int64_t factorization_bytes(int64_t n);

// Consumes the accumulator (its buffers are released). `name` names the layers in errors.
PreparedHessian prepare_hessian(const Context& ctx, DeviceHessian& acc, const GPTQOptions& opt, std::string_view name);

struct DeviceGptqResult {
  GroupQuantized q;
  GPTQStats stats;
  double rtn_objective = 0;  // the same objective for round-to-nearest (report)
};

// w: [out, in] fp32 on the device (the layer's weights). deq: [out, in] on the device, receives the
// dequantized result (what the exported checkpoint computes).
// objective_math: precision of the reported objectives' products.
DeviceGptqResult gptq_quantize_device(const Context& ctx, const float* w, int64_t out, const PreparedHessian& h,
                                      const GPTQOptions& opt, std::string_view name, float* deq,
                                      Math objective_math = Math::FP32);

// tr((W−Q) H (W−Q)ᵀ) / tr(W H Wᵀ) for each Q of wqs, sums in double; all on the device, tr(W H Wᵀ) once.
// A reported number, not an input of the algorithm: its products run at the requested precision (tf32
// moves it by ~1e-3 relative).
std::vector<double> relative_objectives_device(const Context& ctx, const float* w, std::span<const float* const> wqs,
                                               int64_t out, int64_t in, const float* h, Math math = Math::FP32);

// Round-to-nearest of w [out, in] on the device with the checkpoint's conventions (quantize_rtn):
// codes, fp16-exact scales, zeros and g_idx downloaded; deq (device, may be null) receives the weights.
GroupQuantized rtn_quantize_device(const Context& ctx, const float* w, int64_t out, int64_t in, const QuantParams& p,
                                   std::string_view name, float* deq);

// The kernels' view of QuantParams.
QuantSpec quant_spec(const QuantParams& p);

}  // namespace quantllm::cuda
