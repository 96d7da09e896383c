// Block-by-block calibration runner (../shared/docs/design.md, "Data flow").
//
// Holds the hidden states of all calibration windows at the input of the current block — for
// block i they are the outputs of blocks 0..i-1 *as already quantized* — and nothing else of the
// model but one block's fp32 weights, loaded when asked. Windows are pushed through in chunks so
// intermediate activations stay small; observers see every chunk in a fixed order, so statistics
// do not depend on the thread count.
#pragma once

#include "calib/calibration.h"
#include "runtime/forward.h"

#include <cstdint>

namespace quantllm {

class BlockRunner {
 public:
  // chunk_tokens: tokens per forward chunk (whole windows).
  BlockRunner(const LoadedModel& model, const CalibWindows& windows, int64_t chunk_tokens = 8192);

  const ModelConfig& config() const { return model_.config; }
  int n_layers() const { return int(model_.config.n_layers); }
  int64_t n_tokens() const { return windows_ * seqlen_; }
  BlockWeights load(int layer) const { return load_block(model_.config, *model_.weights, layer); }

  // Runs the current inputs through block `layer` with weights w, calling obs for every chunk;
  // the inputs are not changed.
  void observe(int layer, const BlockWeights& w, PointObserver& obs);
  // Replaces the inputs by block `layer`'s outputs with weights w (its final, quantized ones).
  void advance(int layer, const BlockWeights& w);

  // Hidden states at the current block's input: [n_windows * seqlen, hidden].
  const Tensor& hidden() const { return hidden_; }
  Tensor& hidden() { return hidden_; }
  int64_t windows() const { return windows_; }
  int64_t seqlen() const { return seqlen_; }
  int64_t chunk_windows() const { return chunk_; }

 private:
  const LoadedModel& model_;
  int64_t windows_, seqlen_, chunk_;
  Tensor hidden_;
};

}  // namespace quantllm
