// AWQ's scaling groups and the folding of scales into a block, read from the block spec: which linear
// layers share an input whose columns are scaled together, and the op before them that absorbs the
// inverse scale (a pre-norm's gain, or the rows of v / up). Used by the AWQ driver (awq.cpp) and by the
// backends that fold on their device.
#pragma once

#include "core/dtype.h"
#include "model/block_spec.h"
#include "model/weights.h"

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
  std::vector<int> layers;     // linear slots reading the point: q/k/v; o; gate/up (OPT: fc1); down (OPT: fc2);
                               // a MoE's router and experts' gate/up (each reads its expert's routed rows)
  int sublayer = -1;
  bool inspect_sublayer = false;  // the search inspects the whole sub-layer's output; else the out linear's
  std::string label;           // "attn.qkv", "attn.o", "ffn.in", "ffn.down"
  bool folds_into_linear() const { return source == Point::Source::Linear; }
};

// The scaling groups of a block, in block order — every point whose Source can absorb a scale:
//   input norm → q/k/v             (inspects the attention sub-layer output; pre-norm blocks only)
//   v → o                          (inspects o's output; only when v's out == o's in, i.e. no GQA)
//   post-attention norm → gate/up  (inspects the feed-forward sub-layer output; pre-norm only; a MoE:
//                                   the router and every expert's gate/up, the router unquantized)
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
// A preceding linear's weight may be held elsewhere (a GPU): with w's tensor of shape [out, 0] only its
// bias is folded here.
std::vector<float> awq_fold_prev(const BlockSpec& spec, BlockWeights& w, const AwqScalingGroup& g,
                                 std::span<const float> s, DType norm_dtype = DType::F32);

// The HF names of what folding group g changes besides the group's own weights (the preceding norm's
// weight and bias, or the preceding linear's weight and bias).
std::vector<std::string> prev_op_tensors(const BlockSpec& spec, const AwqScalingGroup& g);
// The dtype that folding group g rounds its preceding op to: the stored dtype of the norm's weight, or
// of the preceding linear's bias (its weight is quantized or kept in fp32 anyway).
DType fold_dtype(const WeightSource& src, const BlockSpec& spec, const AwqScalingGroup& g);

}  // namespace quantllm
