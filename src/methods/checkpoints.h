// Resumable block-by-block runs (quantize --resume).
//
// The group-wise methods finish one decoder block at a time, and block i+1's calibration inputs
// depend only on block i's inputs and block i's final weights. So after each finished block its
// quantized layers go to the output at once — a shard of the quantized directory, written by the
// streamed writer (formats/quantized_dir_writer.h) into OUT.resume — and a small journal records the
// rest of what the block produced: the full-precision tensors the method changed (AWQ's folded norms
// and biases, exact fp32) and the per-layer statistics. A restarted run rebuilds the calibration state
// by reading the finished blocks' layers back from their shards (exactly: codes, fp16 scales, zeros)
// and running them forward instead of searching them again, so a resumed run writes the same bytes as
// an uninterrupted one; on success the finished directory is renamed from OUT.resume to OUT.
//
// The journal in OUT.resume:
//   STAGE-block-NNN.safetensors   one finished block: "T" F32 per changed tensor T; metadata
//                                 "block" = JSON {stats: {L: {…}}} per quantized layer L
//   STAGE-state.json              {fingerprint, blocks_done}, written (atomically) after the block's
//                                 shard and journal file
// STAGE is "gptq", "rtn", "awq" or "awq-scale" (the scale-only pass before --awq-scale's GPTQ, which
// writes no shards: its journal holds every tensor the scaling changed). The fingerprint covers every
// option that changes the result, the model path and its configuration, and a hash of the calibration
// tokens: resuming with anything else is an error.
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
  std::map<std::string, GroupQuantized> layers;  // by HF base name (written to the shard, not the journal)
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
  BlockResult load(int block) const;  // its tensors and stats (no layers)
  // Saves block `block`'s tensors and stats (it must be the next one) and marks it finished.
  void save(int block, const BlockResult& r);

 private:
  std::filesystem::path block_path(int block) const;
  std::filesystem::path dir_;
  std::string stage_, fingerprint_;
  int done_ = 0, next_ = 0;
};

// The tensor of w that an HF name of the block refers to (norms, linears, biases); asserts it exists.
Tensor& block_tensor(const BlockSpec& spec, BlockWeights& w, const std::string& name);

// --resume of GPTQ: the block's saved stats into qm; returns its layers' dequantized weights by HF name, for
// the block to run on (the layers themselves are in the output already).
std::map<std::string, Tensor> restore_quantized_layers(const BlockSpec& spec, BlockResult& r, QuantizedModel& qm);

class QuantizedDirWriter;

// Where a driver's finished blocks go. Without a writer (a run without output: the in-memory API), the
// layers into qm; with one, each block's shard (writer) and then its journal entry (ckpt), on a host
// thread while the next block is computed — one write in flight, so the run holds at most two blocks'
// codes whatever the depth. qm may be null (the scale-only pass, which has no layers).
class BlockOutput {
 public:
  BlockOutput(BlockCheckpoints& ckpt, QuantizedModel* qm, const QuantizedDirWriter* writer)
      : ckpt_(ckpt), qm_(qm), writer_(writer) {}
  ~BlockOutput();
  // Blocks finished by an interrupted run (their shards and journal entries are there).
  int done() const;
  // A finished block: its journal entry, and its layers read back from the shard.
  BlockResult load(int block) const;
  void save(int block, BlockResult r);
  // Waits for the write in flight (rethrowing its error).
  void finish();

 private:
  BlockCheckpoints& ckpt_;
  QuantizedModel* qm_;
  const QuantizedDirWriter* writer_;
  std::future<void> pending_;
};

// Error (one line, for --resume) unless `name` is a tensor of the block and `shape` is `expected`.
void check_restored_tensor(const BlockSpec& spec, const std::string& name, const Shape& shape, const Shape& expected);
// Folds a restored block's changed tensors (HF names of the block) into w (check_restored_tensor first).
void apply_block_tensors(const BlockSpec& spec, BlockWeights& w, const std::map<std::string, Tensor>& t);

}  // namespace quantllm
