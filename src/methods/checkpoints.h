// Resumable block-by-block runs (quantize --resume).
//
// The group-wise methods finish one decoder block at a time, and block i+1's calibration inputs
// depend only on block i's inputs and block i's final weights. So after each finished block the
// drivers save what the block produced — its quantized layers (codes, fp16-exact scales, zeros,
// g_idx), the full-precision tensors the method changed (AWQ's folded norms, biases and scaled
// weights) and the per-layer statistics — and a restarted run rebuilds the calibration state by
// running the saved blocks forward instead of searching them again. Everything is stored exactly
// (fp32 bits, int32 codes), so a resumed run writes the same bytes as an uninterrupted one.
//
// Layout of the checkpoint directory (by default OUT.resume beside the output):
//   STAGE-block-NNN.safetensors   one finished block: tensors "L.qweight" U8 [out, in], "L.scales"
//                                 F32 [groups, out], "L.zeros" I32 [groups, out], "L.g_idx" I32 [in]
//                                 per quantized layer L, "T" F32 per changed tensor T; metadata
//                                 "block" = JSON {layers: {L: {bits, group_size}}, stats: {L: {…}}}
//   STAGE-state.json              {fingerprint, blocks_done}, written (atomically) after the block file
// STAGE is "gptq", "rtn", "awq" or "awq-scale" (the scale-only pass before --awq-scale's GPTQ). The
// fingerprint covers every option that changes the result, the model path and its configuration,
// and a hash of the calibration tokens: resuming with anything else is an error.
#pragma once

#include "calib/calibration.h"
#include "formats/quantized_model.h"
#include "methods/group_methods.h"

#include <filesystem>
#include <future>
#include <map>
#include <string>

namespace quantllm {

// What one finished block produced.
struct BlockResult {
  std::map<std::string, GroupQuantized> layers;  // by HF base name
  std::map<std::string, Tensor> tensors;         // changed full-precision tensors, by HF name
  std::map<std::string, LayerStats> stats;
};

class BlockCheckpoints {
 public:
  // Off (every call a no-op, done() == 0) when the request has no output (checkpoint_dir). With opt.resume, the
  // blocks recorded for `stage` under the same fingerprint are restored; a state written with a
  // different fingerprint is an Error naming the directory. windows: the calibration windows
  // (nullptr for RTN, which has none).
  BlockCheckpoints(const LoadedModel& model, const QuantizeRequest& opt, std::string stage, const CalibWindows* windows);

  bool enabled() const { return !dir_.empty(); }
  int done() const { return done_; }  // finished blocks restored from disk (0 without --resume)
  BlockResult load(int block) const;
  // Saves block `block` (which must be the next one) and marks it finished.
  void save(int block, const BlockResult& r);

 private:
  std::filesystem::path block_path(int block) const;
  std::filesystem::path dir_;
  std::string stage_, fingerprint_;
  int done_ = 0, next_ = 0;
};

// The tensor of w that an HF name of the block refers to (norms, linears, biases); asserts it exists.
Tensor& block_tensor(const BlockSpec& spec, BlockWeights& w, const std::string& name);

// --resume of GPTQ: the block's saved layers moved into qm (with their stats); returns their dequantized
// weights by HF name, for the block to run on.
std::map<std::string, Tensor> restore_quantized_layers(const BlockSpec& spec, BlockResult& r, QuantizedModel& qm);

// Saves finished blocks' checkpoints on a host thread while the next block is computed (one save in
// flight; the next save, finish() or the destructor waits for it and rethrows its error).
class AsyncCheckpoints {
 public:
  explicit AsyncCheckpoints(BlockCheckpoints& ckpt) : ckpt_(ckpt) {}
  ~AsyncCheckpoints();
  void save(int block, BlockResult r);
  void finish();

 private:
  BlockCheckpoints& ckpt_;
  std::future<void> pending_;
};

// Error (one line, for --resume) unless `name` is a tensor of the block and `shape` is `expected`.
void check_restored_tensor(const BlockSpec& spec, const std::string& name, const Shape& shape, const Shape& expected);
// Folds a restored block's changed tensors (HF names of the block) into w (check_restored_tensor first).
void apply_block_tensors(const BlockSpec& spec, BlockWeights& w, const std::map<std::string, Tensor>& t);

}  // namespace quantllm
