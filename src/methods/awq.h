// AWQ (Lin et al. 2024) over a whole model, block by block: activation-aware scale search per
// scaling group, scales folded into the preceding operation, then a clipping search, then
// group-wise quantization with the searched ranges.
//
// Per decoder block i (inputs: block i−1's outputs with its *quantized* weights, design.md):
//   1. one fp32 pass over all calibration windows: x̄ = mean |x| per input channel of every linear
//      input over all tokens, and the inputs of the first `awq_search_tokens` tokens (whole windows)
//      kept as the search sample;
//   2. for each scaling group (awq_scaling_groups) in block order: the 20-point grid over α of
//      s = x̄^α / w̄^(1−α) (quant/awq_search.h), each candidate scored by the mean squared error of the
//      inspected output on the sample with the group's weights replaced by Q(W·diag(s))·diag(s)⁻¹;
//      the best s is folded (preceding op ÷ s, the group's weight columns × s) and the sample of the
//      group's input divided by s — the full-precision block computes the same function;
//   3. the clipping search per linear layer except q and k (as AutoAWQ) on the scaled sample inputs;
//   4. group-wise quantization (RangeRule::kAwq) of the clipped weights; the block with its quantized
//      weights then produces block i+1's inputs.
//
// Difference from AutoAWQ: AutoAWQ feeds block i+1 with block i's fp16 outputs *before* quantization
// (its scales and clips for a block are searched as if every earlier block were exact); here block
// i+1 sees the outputs of the already-quantized blocks, as GPTQ does (design.md), so each block's
// search adapts to the error that reaches it. Both use the fp outputs of the block's own unquantized
// weights as the search target.
//
// Token subsample: the x̄ statistics use every calibration token, but the grid search evaluates each
// group's output 20× and the clip search 11× per group of weights, so both run on the first
// `awq_search_tokens` tokens (default 8192 = the first 16 windows of 512; at least one window). The
// windows are drawn at random positions of the calibration text already, so the first ones are an
// unbiased sample. The clip search further strides that sample down to 512 tokens (AutoAWQ's
// n_sample_token). The driver (awq.cpp) is written once against the calibration backend
// (methods/backend.h); on the CPU every window is computed by the same code on one thread
// (single-threaded BLAS, windows in parallel) and reductions run in window order, so the result does
// not depend on the thread count; the GPU runs the windows in chunks and the searches on the device.
#pragma once

#include "methods/awq_groups.h"
#include "methods/group_methods.h"

#include <map>
#include <memory>
#include <string>

namespace quantllm {

class QuantizedDirWriter;

// With a writer, each finished block's layers are written to it (and not kept in the result).
QuantizedModel quantize_awq(const LoadedModel& model, const QuantizeRequest& opt, const BlockProgress& progress,
                            const QuantizedDirWriter* writer = nullptr);
// The same with calibration windows already drawn (the C++ API's texts).
QuantizedModel quantize_awq(const LoadedModel& model, const QuantizeRequest& opt, const CalibWindows& windows,
                            const BlockProgress& progress, const QuantizedDirWriter* writer = nullptr);

// AWQ's scale search and folding only (no clipping, no quantization), for composing with another
// quantizer (GPTQ: --awq-scale; GGUF). Returns every tensor the folding changed, by HF name
// ("model.layers.0.input_layernorm.weight", "….q_proj.weight", biases), in fp32. Block i+1's inputs
// come from block i's scaled weights rounded to the nearest grid point (RTN with opt.quant): the
// quantizer that follows sees quantized inputs too.
std::map<std::string, Tensor> awq_scale_weights(const LoadedModel& model, const QuantizeRequest& opt,
                                                const BlockProgress& progress = {});

// Throws Error for options AWQ cannot run with (bad bits / group size for a layer, empty search sample).
void validate_awq_options(const ModelConfig& c, const QuantizeRequest& opt);

// A WeightSource that serves `replaced` tensors (fp32, same shapes) over `base`; format and stored
// bytes are the base's, so writers keep each tensor's original dtype.
std::unique_ptr<WeightSource> overlay_weights(std::shared_ptr<const WeightSource> base,
                                              std::map<std::string, Tensor> replaced);

}  // namespace quantllm
