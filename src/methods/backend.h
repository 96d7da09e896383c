// Where the calibrated methods compute. The drivers — GPTQ (gptq.cpp), AWQ (awq.cpp), the importance
// matrix (imatrix.cpp) — are written once against CalibrationBackend; the CPU (cpu/backend.cpp) and one
// CUDA GPU (cuda/backend.cpp) implement it, and devices.cpp picks one. A backend holds the calibration
// windows' hidden states at the current block's input and the current block's weights, runs blocks
// through the block interpreter (runtime/block.h) over its device's ops, collects what the methods need
// at the block's activation points (Hessians, Σx², Σ|x| and a search sample), and runs the rounders
// that need the activations or the device (GPTQ, AWQ's searches) where the data is.
//
// A block's life in a driver:
//   load_block(i) → [collect_* → rounders …]* → advance()   (block i+1's inputs = block i's outputs
//                                                            with its final, quantized weights)
#pragma once

#include "calib/calibration.h"
#include "methods/awq_groups.h"
#include "model/weights.h"
#include "quant/awq_search.h"
#include "quant/gptq.h"
#include "quant/group_quant.h"
#include "quantllm/util.h"
#include "runtime/forward.h"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace quantllm {

enum class Device { CPU, CUDA };
// "cpu" / "cuda" → the device; Error for another name, or "cuda" in a build without the CUDA backend.
Device parse_device(const std::string& name);
// cuda_backend_built / cuda_device_usable: include/quantllm/util.h.

struct BackendOptions {
  Device device = Device::CPU;
  int64_t chunk_tokens = 8192;  // CPU: tokens per forward chunk (whole windows)
  // CPU: every window a task with single-threaded BLAS, windows in parallel (AWQ's many small passes),
  // instead of chunks of windows through threaded ops.
  bool per_window = false;
  bool gpu_tf32 = true;                  // CUDA: products on tensor cores with tf32 operands (else fp32)
  bool gpu_bf16 = false;                 // CUDA: bf16 operands in the forward linears and the Hessians
  int64_t gpu_chunk_tokens = 8192;       // CUDA: tokens per forward chunk (whole windows)
  bool gpu_activations_on_host = false;  // CUDA: activations in pinned host memory even when they fit
  bool keep_mids = false;                // CUDA: plan memory for keeping an attention output between stages
  bool moe_all_experts = false;          // MoE: the Hessians see every token through every expert
};

// Σ over tokens of a per-channel statistic at one activation point.
struct PointSums {
  std::vector<double> sum;  // [point width]
  int64_t tokens = 0;
};

struct GptqLayerResult {
  int slot = -1;
  GroupQuantized q;
  GPTQStats stats;
  double rtn_objective = 0;  // the same objective for round-to-nearest on the same grid (the report)
  int64_t in = 0;
};

struct AwqLayerResult {
  GroupQuantized q;
  double relative_error = 0;  // tr((W−Q) H (W−Q)ᵀ) / tr(W H Wᵀ), H = XᵀX over the search sample
};

class CalibrationBackend {
 public:
  virtual ~CalibrationBackend() = default;
  virtual const ModelConfig& config() const = 0;

  // --- the current block ---
  // Block `layer`'s weights as the current block (checked for NaN / Inf when check_finite).
  virtual void load_block(int layer, bool check_finite) = 0;
  // Replaces tensors of the current block by HF name (restored checkpoints).
  virtual void set_tensors(const std::map<std::string, Tensor>& tensors) = 0;
  // A tensor of the current block by HF name, as it is now (a host copy).
  virtual Tensor tensor(const std::string& name) = 0;
  // Passes the windows through the current block as it now is: its outputs become the next block's inputs.
  virtual void advance() = 0;

  // --- collectors (each runs the windows through the current block as far as it needs) ---
  // The Hessian Σ xᵀx of each point in `points`. upstream_final: every linear before the last of the
  // points is final (true-sequential GPTQ), so a backend may keep work from earlier calls of this block.
  virtual void collect_hessians(std::span<const int> points, bool upstream_final) = 0;
  // The tokens behind a collected Hessian (MoE experts: those routed to the expert).
  virtual int64_t hessian_tokens(int point) = 0;
  // Σx² per channel at every point of the block (the importance matrix).
  virtual std::vector<PointSums> collect_square_sums() = 0;
  // Σ|x| per channel at every point of the block over all windows; the points' values in the first
  // `sample_windows` windows are kept as the AWQ search sample.
  virtual std::vector<PointSums> collect_abs_sums(int64_t sample_windows) = 0;

  // --- rounders that run where the data is ---
  // GPTQ of `slots` (all reading `point`) from the point's collected Hessian; the slots' weights become
  // their dequantized results (what the checkpoint computes).
  virtual std::vector<GptqLayerResult> gptq(int point, std::span<const int> slots, const GPTQOptions& o) = 0;
  // GPTQ of `slots` (all reading `point`) onto grids of the caller's (GGML blocks: quant/ggml/gptq_grid.h),
  // grid_of(slot) giving each slot's; the slots' weights become the grids' results. Per slot, its stats
  // with the objective filled in. (The column loop runs on the host; on a GPU the Hessian comes down.)
  virtual std::vector<GPTQStats> gptq_onto(int point, std::span<const int> slots, const GPTQOptions& o,
                                           const std::function<GptqGrid&(int slot)>& grid_of) = 0;
  // Round-to-nearest of a slot's current weights; the slot then holds the dequantized result.
  virtual GroupQuantized rtn(int slot, const QuantParams& p) = 0;

  // --- AWQ (methods/awq.cpp) on the sample of collect_abs_sums ---
  // w̄ of the group's layers (quant/awq_search.h awq_weight_mean).
  virtual std::vector<float> awq_weight_mean(const AwqScalingGroup& g, const QuantParams& p) = 0;
  // The search's objective for group g: the mean squared error of the inspected output on the sample
  // with the group's weights replaced by Q(W·diag(s))·diag(s)⁻¹ (p: the searches' pseudo-quantization).
  virtual std::function<double(std::span<const float> s)> awq_objective(const AwqScalingGroup& g,
                                                                         const QuantParams& p) = 0;
  // Folds s into the block (awq_groups.h awq_fold_scales; norms rounded to norm_dtype) and divides the
  // group's sample by the realized scales; returns them.
  virtual std::vector<float> awq_fold(const AwqScalingGroup& g, std::span<const float> s, DType norm_dtype) = 0;
  // Clipping search (when clip) on the slot's sample inputs, then round-to-nearest with p (ps: the
  // searches' pseudo-quantization); the slot then holds the dequantized result.
  virtual AwqLayerResult awq_clip_quantize(int slot, bool clip, const QuantParams& p, const QuantParams& ps) = 0;

  // The end of a run: the device's report (GPU: time per phase, peak memory) on stderr.
  virtual void finish() {}
};

// A backend over `model` whose hidden states start as the embedded calibration windows.
std::unique_ptr<CalibrationBackend> make_calibration_backend(const LoadedModel& model, const CalibWindows& windows,
                                                             const BackendOptions& options);

// A whole model for evaluation on a device: the CPU's FullModel with `engine` (fp32 or the quantized
// engine), or a GPU's DeviceModel (fp32 weights; tf32 or fp32 products).
std::unique_ptr<ModelRunner> make_model_runner(const LoadedModel& model, Device device, Engine engine = Engine::Quant,
                                               bool gpu_tf32 = false);

}  // namespace quantllm
