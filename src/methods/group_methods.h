// Group-wise methods over a whole model — round-to-nearest, GPTQ and AWQ — driven block by block
// through a calibration backend (methods/backend.h): for block i, the inputs of its linear layers
// are observed (Hessians for GPTQ, activation magnitudes for AWQ), the layers quantized, and the
// block's quantized outputs become block i+1's inputs. Only one block is held in fp32 at a time.
//
// Every method reads the public QuantizeRequest (include/quantllm/quantize.h) — the one place the
// options are declared — through the accessors below, which apply the defaults and parse the names.
#pragma once

#include "calib/calibration.h"
#include "formats/gguf_plan.h"
#include "formats/quantized_model.h"
#include "methods/backend.h"
#include "quant/gptq.h"
#include "quantllm/quantize.h"

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>

namespace quantllm {

class QuantizedDirWriter;

// "rtn" / "gptq" / "awq" → the group method (asserts it is one).
QuantMethod group_method(const QuantizeRequest& r);
// bits / group size (defaults 4 / 128), symmetric, MSE, AWQ's range rule for --method awq.
QuantParams quant_params(const QuantizeRequest& r);
GPTQOptions gptq_options(const QuantizeRequest& r);  // the per-layer options of a whole-model run
BackendOptions backend_options(const QuantizeRequest& r);
// Where finished blocks are saved (OUT.resume beside the output); empty when the run has no output path.
std::filesystem::path checkpoint_dir(const QuantizeRequest& r);

// A QuantizedModel over `model` recording the request's method settings (no layers yet).
QuantizedModel new_quantized_model(const LoadedModel& model, const QuantizeRequest& r);
// GPTQ's notes on stderr for a layer: dead inputs, damping raised.
void report_gptq_layer(const std::string& name, const GPTQStats& s, int64_t in, double requested_damp);

// Called after each block with (block index, blocks in all, what was just done).
using BlockProgress = std::function<void(int block, int n_blocks, const std::string& detail)>;

// Quantizes every linear layer inside the decoder blocks (embeddings and lm_head stay as they are):
// r.method rtn, gptq or awq, with AWQ's scaling first when r.awq.scale_first. With `write` (and r.out),
// the result is streamed to r.out in that format block by block (formats/quantized_dir_writer.h; the
// resume checkpoint) and the returned model has the statistics but no layers; without, the layers are
// kept in the result.
QuantizedModel quantize_group_method(const LoadedModel& model, const QuantizeRequest& r,
                                     const BlockProgress& progress = {},
                                     std::optional<HfQuantFormat> write = std::nullopt);
// GPTQ over the whole model with calibration windows already drawn (methods/gptq.cpp); with a writer,
// each finished block's layers go to it instead of the result.
QuantizedModel quantize_gptq(const LoadedModel& model, const QuantizeRequest& r, const CalibWindows& windows,
                             const BlockProgress& progress = {}, const QuantizedDirWriter* writer = nullptr);

// Whether routed calibration left an expert that saw `tokens` calibration tokens too few for a Hessian
// worth trusting (none at all, whatever --moe-min-tokens says): it is rounded without one. Never under
// all-experts calibration, where every expert sees every token.
inline bool expert_starved(int64_t tokens, const QuantizeRequest& r) {
  return (tokens == 0 || tokens < r.moe.min_tokens) && r.moe.calibration != "all-experts";
}

// GPTQ into the GGML blocks of a GGUF plan (methods/gguf_gptq.cpp; gguf --gptq): block by block with
// calibration, each planned layer of a type with per-weight codes rounded onto its blocks with GPTQ's
// error feedback (quant/ggml/gptq_grid.h). Returns the encoded rows by HF weight name, in HF row order.
// Layers of other types (F16 …) and MoE experts below --moe-min-tokens are absent: the writer's llama.cpp
// quantizer makes them, as the calibration assumed.
std::map<std::string, std::vector<uint8_t>> gptq_gguf_layers(const LoadedModel& model, const QuantizeRequest& r,
                                                             const std::vector<PlannedTensor>& plan,
                                                             const BlockProgress& progress = {});

// Checks every linear layer's shape against the quantization parameters (Error naming the first misfit).
void validate_layers(const ModelConfig& c, const QuantParams& p);

}  // namespace quantllm
