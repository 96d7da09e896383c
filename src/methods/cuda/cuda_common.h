// Pieces of the CUDA calibration backend (backend.h): the next block's weights loaded on a host thread
// while the GPU works, the memory plan (chunk size; activations on the device or in host memory), timing
// of the phases for the report printed at the end of a run, and the windows' embeddings on the device.
#pragma once

#include "calib/calibration.h"
#include "methods/backend.h"
#include "runtime/cuda/activations.h"
#include "runtime/cuda/ops.h"

#include <chrono>
#include <future>
#include <map>
#include <string>

namespace quantllm::cuda {

// Block i's fp32 weights, checked for NaN/Inf; block i+1's load starts when block i is taken. The
// linear weights come page-locked (registered with the driver on the loading thread), so their upload
// runs at full speed; unpin() them once uploaded (after a sync) and before they are freed.
class BlockPrefetcher {
 public:
  BlockPrefetcher(const LoadedModel& model, bool check_finite) : model_(model), check_(check_finite) {}
  ~BlockPrefetcher();
  BlockWeights take(int layer, bool check_this = true);
  // Starts loading `layer` on the host thread now (take(layer) collects it); nothing if one is pending.
  void prefetch(int layer);
  static void unpin(BlockWeights& w);

 private:
  BlockWeights load(int layer, bool check) const;
  const LoadedModel& model_;
  bool check_;
  int next_ = -1;
  bool pending_checked_ = false;  // whether the prefetched block was checked for NaN / Inf
  std::future<BlockWeights> pending_;
};

struct MemoryPlan {
  int64_t chunk_windows = 1;
  bool on_device = true;
  size_t activation_bytes = 0;  // hidden states (+ attention outputs kept between stages)
  size_t working_bytes = 0;     // everything else at its peak (estimate)
};
// keep_attention: the backend keeps every window's attention output between two stages.
MemoryPlan plan_memory(const Context& ctx, const ModelConfig& c, int64_t n_windows, int64_t seq_len,
                       const BackendOptions& opt, bool keep_attention);

// Wall time per phase, synchronized with the device at each boundary.
class PhaseClock {
 public:
  explicit PhaseClock(const Context& ctx) : ctx_(ctx), t_(std::chrono::steady_clock::now()) {}
  void mark(const std::string& phase);  // adds the time since the last mark to `phase`
  std::string report() const;           // "load 1.2s, forward 3.4s, …"

 private:
  const Context& ctx_;
  std::chrono::steady_clock::time_point t_;
  std::vector<std::pair<std::string, double>> totals_;
};

// The calibration windows' embeddings (OPT: projected, positions added, as runtime/forward.cpp embed)
// computed on the device into X [n·T, hidden], chunk by chunk.
void embed_on_device(const Context& ctx, const LoadedModel& model, const CalibWindows& windows, ActivationStore& X,
                     int64_t chunk_rows);

// The one-line summary printed when a GPU run starts.
void print_gpu_plan(const Context& ctx, const MemoryPlan& plan, const BackendOptions& opt);

}  // namespace quantllm::cuda
