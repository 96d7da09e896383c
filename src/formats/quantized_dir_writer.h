// The writer of quantized Hugging Face directories (GPTQ, AWQ GEMM, compressed-tensors, FP8), streamed one
// decoder block at a time: each block's tensors go to their own shard as soon as the block is final, so a
// run holds one block's codes, never the whole model's, and the shards already written are the checkpoint
// an interrupted run resumes from (methods/checkpoints.h keeps the small journal beside them).
//
// Layout while writing (the work directory, OUT.resume for a quantize run):
//   model-00001-of-000NN.safetensors … one shard per decoder block (block i in shard i + 1), every tensor
//   whose name starts with the block's prefix: its quantized layers in the format's parts, its norms,
//   biases and routers in their source dtype (fp32 where a method changed one beyond it);
//   the last shard: the tensors outside the blocks (embeddings, final norm, lm_head), copied as stored.
// finish() adds config.json with quantization_config, the format's extra files, the tokenizer files and
// model.safetensors.index.json — or, when all shards together are below HF's default shard size (5 GB),
// joins them into one model.safetensors (the bytes write_safetensors would write for all the tensors) —
// removes whatever else the work directory holds (the journal), and renames it into place.
#pragma once

#include "formats/quantized_model.h"
#include "io/safetensors.h"

#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace quantllm {

// What a packed directory format contributes: its parts per layer and their inverse, its config.
struct QuantDirFormat {
  PackLayer pack;
  // The layer `layer` back from the parts pack wrote into `shard` (exact: the codes, scales and zeros
  // that were packed); Error naming the shard when a part is missing or inconsistent.
  std::function<GroupQuantized(const SafetensorsFile& shard, const std::string& layer)> unpack;
  nlohmann::json quantization_config;
  std::map<std::string, std::string> extra_files;  // name → text (quantize_config.json for GPTQ)
};

// The format's parts for results with the settings of `settings` (method, bits, group size, symmetry,
// act-order, static groups, damping): GPTQ v1/v2, AWQ GEMM, compressed-tensors pack-quantized.
QuantDirFormat quant_dir_format(const QuantizedModel& settings, HfQuantFormat format);
QuantDirFormat compressed_tensors_format(const QuantizedModel& settings);  // formats/compressed_tensors.cpp

class QuantizedDirWriter {
 public:
  // Writes the shards of `base`'s tensors as `src` gives them (the base's own weights, or an overlay of
  // them that a transform changed; read from several threads at once) into `work` (created if need be;
  // nothing in it is removed). The shard of the tensors outside the blocks is started here, on a
  // background thread (one tensor and a small buffer held), unless resuming finds it there.
  QuantizedDirWriter(const LoadedModel& base, const WeightSource& src, std::filesystem::path work,
                     QuantDirFormat format, bool resume);
  QuantizedDirWriter(const QuantizedDirWriter&) = delete;  // the background write holds `this`
  QuantizedDirWriter& operator=(const QuantizedDirWriter&) = delete;
  ~QuantizedDirWriter();  // waits for the background write (its error, if any, is dropped)

  // Rethrows the error of the background write of the tensors outside the blocks if it failed (a NaN in
  // the embeddings, a full disk); returns at once while it runs.
  void check_background() const;

  int n_blocks() const { return int(block_names_.size()); }
  // The decoder block whose prefix the tensor name starts with, or −1 (a tensor outside the blocks).
  int block_of(const std::string& name) const;
  const std::filesystem::path& work() const { return work_; }
  bool has_block(int block) const;
  // Block `block`'s shard: every tensor of the block, `layers` (HF base names) packed in place of their
  // "X.weight", `replaced` in place of the source's tensors, `own_layers`' "X.weight" left to
  // `own_tensors` (layers encoded elsewhere, FP8). Atomic (temporary name, then rename).
  void write_block(int block, const std::map<std::string, GroupQuantized>& layers,
                   const std::map<std::string, Tensor>& replaced, const std::set<std::string>& own_layers = {},
                   std::vector<TensorData> own_tensors = {}) const;
  // The quantized layers of a shard written before (what a resumed run continues from).
  std::map<std::string, GroupQuantized> read_block(int block) const;
  // Completes the directory (see the top of this file) and renames it to `out` (replacing it only with
  // `overwrite`). Every block's shard must have been written.
  void finish(const std::filesystem::path& out, bool overwrite) const;

 private:
  std::filesystem::path shard_path(int index) const;  // index n_blocks(): the tensors outside the blocks
  void write_globals() const;

  const LoadedModel& base_;
  const WeightSource& src_;
  std::filesystem::path work_;
  QuantDirFormat format_;
  std::vector<std::vector<std::string>> block_names_;  // source tensor names of each block
  std::vector<std::string> global_names_;              // the rest
  std::shared_future<void> globals_;                   // the background write of their shard
};

// Tensors of this many bytes in all or more are written as shards with an index, fewer as one file:
// HF's default max shard size, 5 GB; the environment variable QUANTLLM_SINGLE_FILE_MAX (bytes) sets
// another (the tests shard small models with it).
uint64_t max_single_file_bytes();

}  // namespace quantllm
