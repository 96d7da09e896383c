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
// n_sample_token). Every window is computed by the same code on one thread (single-threaded BLAS,
// windows in parallel) and reductions run in window order: the result does not depend on the thread
// count.
#pragma once

#include "pipeline/group_methods.h"
#include "runtime/forward.h"

#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace quantllm {

// Linear layers sharing one input point whose columns are scaled together, and the op the scales are
// moved into (the point's Source in the block spec: a pre-norm, or v / up).
struct AwqScalingGroup {
  int point = -1;              // the layers' common input point
  Point::Source source = Point::Source::None;
  int source_slot = -1;        // norm slot (Source::Norm) or linear slot (Source::Linear)
  std::vector<int> layers;     // linear slots reading the point: q/k/v; o; gate/up (OPT: fc1); down (OPT: fc2)
  int sublayer = -1;
  bool inspect_sublayer = false;  // the search inspects the whole sub-layer's output; else the out linear's
  std::string label;           // "attn.qkv", "attn.o", "ffn.in", "ffn.down"
  bool folds_into_linear() const { return source == Point::Source::Linear; }
};

// The scaling groups of a block, in block order — every point whose Source can absorb a scale:
//   input norm → q/k/v             (inspects the attention sub-layer output; pre-norm blocks only)
//   v → o                          (inspects o's output; only when v's out == o's in, i.e. no GQA)
//   post-attention norm → gate/up  (inspects the feed-forward sub-layer output; pre-norm only)
//   up → down                      (inspects down's output; gated FFNs and ReLU, whose act(u/s) = act(u)/s)
std::vector<AwqScalingGroup> awq_scaling_groups(const BlockSpec& spec);

// Folds s: [in of the group's layers] (positive) into w: the preceding op's weight (and bias) ÷ s,
// the group's weight columns × s. When norm_dtype is narrower than f32 the folded norm weight is
// rounded to it (what a checkpoint stores) and the columns are multiplied by the scale the rounded
// weight realizes, so the stored model still computes the same function. Returns the realized scales.
std::vector<float> awq_fold_scales(const BlockSpec& spec, BlockWeights& w, const AwqScalingGroup& g,
                                   std::span<const float> s, DType norm_dtype = DType::F32);
// The first half of awq_fold_scales: only the preceding op (norm weight and bias, or the preceding
// linear's rows and bias) ÷ s; returns the realized scales the group's columns are then multiplied by.
std::vector<float> awq_fold_prev(const BlockSpec& spec, BlockWeights& w, const AwqScalingGroup& g,
                                 std::span<const float> s, DType norm_dtype = DType::F32);

QuantizedModel quantize_awq(const Model& model, const GroupMethodOptions& opt, const BlockProgress& progress);
// The same with calibration windows already drawn (the C++ API's texts).
QuantizedModel quantize_awq(const Model& model, const GroupMethodOptions& opt, const CalibWindows& windows,
                            const BlockProgress& progress);

// AWQ's scale search and folding only (no clipping, no quantization), for composing with another
// quantizer (GPTQ: --awq-scale; GGUF). Returns every tensor the folding changed, by HF name
// ("model.layers.0.input_layernorm.weight", "….q_proj.weight", biases), in fp32. Block i+1's inputs
// come from block i's scaled weights rounded to the nearest grid point (RTN with opt.quant): the
// quantizer that follows sees quantized inputs too.
std::map<std::string, Tensor> awq_scale_weights(const Model& model, const GroupMethodOptions& opt,
                                                const BlockProgress& progress = {});

// The HF names of what folding group g changes besides the group's own weights (the preceding norm's
// weight and bias, or the preceding linear's weight and bias).
std::vector<std::string> prev_op_tensors(const BlockSpec& spec, const AwqScalingGroup& g);
// The dtype a tensor is stored in (F32 when absent): folded norms are rounded to it.
DType stored_dtype(const WeightSource& src, const std::string& name);
// Throws Error for options AWQ cannot run with (bad bits / group size for a layer, empty search sample).
void validate_awq_options(const ModelConfig& c, const GroupMethodOptions& opt);

// --resume: block `block` as a finished run saved it (pipeline/checkpoints.h): folds r's tensors into w
// (the block's fp32 weights as loaded) and returns the block as it ran on — its quantized layers
// (recorded in qm) or, scale-only (scaled given), its folded weights rounded with p.
struct BlockResult;
BlockWeights restore_awq_block(const ModelConfig& c, int block, BlockResult& r, BlockWeights& w, const QuantParams& p,
                               QuantizedModel* qm, std::map<std::string, Tensor>* scaled);

// A WeightSource that serves `replaced` tensors (fp32, same shapes) over `base`; format and stored
// bytes are the base's, so writers keep each tensor's original dtype.
std::unique_ptr<WeightSource> overlay_weights(std::shared_ptr<const WeightSource> base,
                                              std::map<std::string, Tensor> replaced);

}  // namespace quantllm
