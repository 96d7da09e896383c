// The CUDA calibration backend (methods/backend.h) on one GPU: the calibration windows' hidden states
// on the device when they fit (pinned host memory otherwise, moved a chunk at a time), the current
// block's weights uploaded in fp32 (the next block loaded on a host thread meanwhile), blocks run
// through the block interpreter over the CUDA ops, Hessians / statistics / searches on the device.
//
// True-sequential collection runs each stage of a block once over all windows and keeps what the next
// stage needs instead of recomputing it: for sub-layer s,
//   in-stage:  the residual of sub-layers before s added to X (from a kept mid, or recomputed), then
//              h = s's input → its Hessian
//   mid-stage: mid = s's mix of h (with its quantized in-linears) → its Hessian; an attention output is
//              kept until its residual is added (the next in-stage or advance), a feed-forward's
//              intermediate (wider, cheap to recompute) is not
// which computes exactly what observe-from-the-block-input passes compute, with one forward pass per
// block instead of one per stage. backend.cpp has the flow and GPTQ, awq.cpp AWQ's searches.
#pragma once

#include "methods/backend.h"
#include "methods/cuda/cuda_common.h"
#include "runtime/cuda/gptq.h"

#include <map>
#include <optional>

namespace quantllm::cuda {

class CudaBackend final : public CalibrationBackend {
 public:
  CudaBackend(const LoadedModel& model, const CalibWindows& windows, const BackendOptions& o);

  const ModelConfig& config() const override { return c_; }
  void load_block(int layer, bool check_finite) override;
  void set_tensors(const std::map<std::string, Tensor>& tensors) override;
  Tensor tensor(const std::string& name) override;
  void advance() override;
  void collect_hessians(std::span<const int> points, bool upstream_final) override;
  int64_t hessian_tokens(int point) override { return hessians_.at(point).rows(); }
  std::vector<PointSums> collect_square_sums() override;
  std::vector<PointSums> collect_abs_sums(int64_t sample_windows) override;
  std::vector<GptqLayerResult> gptq(int point, std::span<const int> slots, const GPTQOptions& o) override;
  std::vector<GPTQStats> gptq_onto(int point, std::span<const int> slots, const GPTQOptions& o,
                                   const std::function<GptqGrid&(int slot)>& grid_of) override;
  GroupQuantized rtn(int slot, const QuantParams& p) override;
  std::vector<float> awq_weight_mean(const AwqScalingGroup& g, const QuantParams& p) override;
  std::function<double(std::span<const float> s)> awq_objective(const AwqScalingGroup& g, const QuantParams& p) override;
  std::vector<float> awq_fold(const AwqScalingGroup& g, std::span<const float> s, DType norm_dtype) override;
  AwqLayerResult awq_clip_quantize(int slot, bool clip, const QuantParams& p, const QuantParams& ps) override;
  void finish() override;

 private:
  // fn(r0, rows, n_windows) for each chunk of windows in order.
  template <typename Fn>
  void for_chunks(Fn&& fn) {
    for (int64_t s0 = 0; s0 < n_win_; s0 += cw_) {
      const int64_t ns = std::min(cw_, n_win_ - s0);
      fn(s0 * T_, ns * T_, ns);
    }
  }
  Step step(int64_t n_seq) const { return Step{n_seq, T_, 0, nullptr, layer_}; }
  // Brings X to the input of sub-layer `upto` (the residuals of sub-layers done_ … upto−1 added), then
  // calls fn(x, r0, rows, ns) on each chunk.
  void forward_to(int upto, const std::function<void(float* x, int64_t r0, int64_t rows, int64_t ns)>& fn);
  // Runs every window from the block's input through the block without changing X, calling obs.
  void observe(PointObserver& obs);
  double sum_sq(const float* a, const float* b, int64_t n);

  const LoadedModel& model_;
  const ModelConfig& c_;
  BackendOptions opt_;
  Context ctx_;
  Math math_;          // GPTQ's and AWQ's products
  Math hessian_math_;  // the Hessians' products: math_, or bf16 operands under gpu_bf16
  HessianScratch hessian_scratch_;  // shared by every Hessian's add (one chunk product at a time)
  int64_t T_, n_win_, d_, cw_;
  MemoryPlan plan_;
  PhaseClock clock_;
  ActivationStore X_;  // the windows' hidden states at the current block's input [n_win·T, hidden]
  Ops ops_;
  BlockPrefetcher loader_;
  DeviceArray<float> h_, mid_, xs_;  // one chunk: a point's input, a mid, a copy of X's rows

  // The current block: norms and biases on the host too (AWQ folds them there), matrices on the device.
  int layer_ = -1;
  const BlockSpec* spec_ = nullptr;
  BlockWeights w_;
  DeviceBlock dw_;
  // True-sequential stages: sub-layers whose residual X already holds; the sub-layer whose mid A keeps.
  int done_ = 0, pending_ = -1;
  std::optional<ActivationStore> A_;
  std::map<int, DeviceHessian> hessians_;

  // AWQ: per point the values of the first n_search windows [n_search·T, width]; reductions' scratch.
  int64_t n_search_ = 0;
  std::vector<DeviceArray<float>> sample_;
  DeviceArray<double> col_work_, wsum_, partials_;
  DeviceArray<float> ref_, y_, norm_buf_;
};

}  // namespace quantllm::cuda
