// Group-wise methods over a whole model — round-to-nearest, GPTQ and AWQ — driven block by block
// through a calibration backend (methods/backend.h): for block i, the inputs of its linear layers
// are observed (Hessians for GPTQ, activation magnitudes for AWQ), the layers quantized, and the
// block's quantized outputs become block i+1's inputs. Only one block is held in fp32 at a time.
#pragma once

#include "calib/calibration.h"
#include "export/quantized_model.h"
#include "methods/backend.h"

#include <filesystem>
#include <functional>
#include <string>

namespace quantllm {

struct GroupMethodOptions {
  QuantMethod method = QuantMethod::GPTQ;
  QuantParams quant;            // bits, group size, sym, mse
  double damp_percent = 0.01;   // GPTQ
  int block_size = 128;         // GPTQ lazy-batch width
  bool act_order = false;       // GPTQ desc_act
  bool static_groups = false;   // GPTQ
  bool true_sequential = true;  // GPTQ: q/k/v, then o, then gate/up, then down
  CalibOptions calib;
  int64_t chunk_tokens = 8192;  // tokens per forward chunk of the calibration runner
  bool awq_scale = false;       // RTN/GPTQ: AWQ's scale search and folding first (pipeline/awq.h)
  int64_t awq_search_tokens = 8192;  // AWQ: tokens (the first whole windows) of the grid and clip searches
  std::filesystem::path checkpoint_dir;  // resumable runs: every finished block saved here (empty: off)
  bool resume = false;                   // restore the finished blocks checkpoint_dir holds (pipeline/checkpoints.h)
  Device device = Device::CPU;             // where GPTQ / AWQ calibrate and search
  bool gpu_tf32 = true;                  // CUDA: matrix products on tensor cores with tf32 operands (else plain fp32)
  int64_t gpu_chunk_tokens = 8192;       // CUDA: tokens per forward chunk (whole windows)
  bool gpu_activations_on_host = false;  // CUDA: keep calibration activations in host memory even when they fit
};

// A QuantizedModel over `model` recording opt's method settings (no layers yet).
QuantizedModel new_quantized_model(const Model& model, const GroupMethodOptions& opt);
// GPTQ's notes on stderr for a layer: dead inputs, damping raised.
struct GPTQStats;
struct GPTQOptions;
GPTQOptions gptq_options(const GroupMethodOptions& opt);  // the per-layer options of a whole-model run
void report_gptq_layer(const std::string& name, const GPTQStats& s, int64_t in, double requested_damp);

// The calibration backend's options of a run (device, chunks, GPU precision).
BackendOptions backend_options(const GroupMethodOptions& opt);

// Called after each block with (block index, blocks in all, what was just done).
using BlockProgress = std::function<void(int block, int n_blocks, const std::string& detail)>;

// Quantizes every linear layer inside the decoder blocks (embeddings and lm_head stay as they are).
QuantizedModel quantize_group_method(const Model& model, const GroupMethodOptions& opt,
                                     const BlockProgress& progress = {});
// GPTQ over the whole model with calibration windows already drawn (methods/gptq.cpp).
QuantizedModel quantize_gptq(const Model& model, const GroupMethodOptions& opt, const CalibWindows& windows,
                             const BlockProgress& progress = {});

// Checks every linear layer's shape against the quantization parameters (Error naming the first misfit).
void validate_layers(const ModelConfig& c, const QuantParams& p);

}  // namespace quantllm
