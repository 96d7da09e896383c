// AWQ's scaling groups read from the block spec, and the folding of scales into a block (see awq_groups.h).
#include "methods/awq_groups.h"

#include "core/dtype.h"
#include "core/error.h"

#include <cmath>

namespace quantllm {

std::vector<AwqScalingGroup> awq_scaling_groups(const BlockSpec& spec) {
  std::vector<AwqScalingGroup> groups;
  for (size_t p = 0; p < spec.points.size(); ++p) {
    const Point& pt = spec.points[p];
    if (pt.source == Point::Source::None) continue;
    AwqScalingGroup g;
    g.point = int(p);
    g.source = pt.source;
    g.source_slot = pt.source_slot;
    g.layers = spec.readers(int(p));
    // A MoE's input norm feeds the router and, through the routing, every expert's gate and up: one group
    // (AutoAWQ's Mixtral mapping) whose scales the router takes too, exactly (it is not quantized), so its
    // choices do not change.
    const Sublayer& sl = spec.sublayers[size_t(pt.sublayer)];
    if (sl.kind == SublayerKind::Moe && !pt.is_mid && pt.expert < 0)
      for (const Sublayer::Expert& e : sl.experts) g.layers.push_back(e.gate), g.layers.push_back(e.up);
    g.sublayer = pt.sublayer;
    g.inspect_sublayer = !pt.is_mid;
    g.label = pt.label;
    QL_ASSERT(!g.layers.empty() && (g.inspect_sublayer || g.layers.size() == 1));
    groups.push_back(std::move(g));
  }
  return groups;
}

namespace {

float round_to(float v, DType t) {
  switch (t) {
    case DType::F16: return f16_to_f32(f32_to_f16(v));
    case DType::BF16: return bf16_to_f32(f32_to_bf16(v));
    default: return v;
  }
}

}  // namespace

std::vector<float> awq_fold_prev(const BlockSpec& spec, BlockWeights& w, const AwqScalingGroup& g,
                                  std::span<const float> s, DType norm_dtype) {
  QL_ASSERT(!g.layers.empty());
  const int64_t in = spec.linears[size_t(g.layers.front())].in;
  QL_ASSERT(int64_t(s.size()) == in, "fold: {} scales for {} input channels", s.size(), in);
  for (float v : s) QL_ASSERT(std::isfinite(v) && v > 0.0f, "fold: scale {} is not positive", v);
  std::vector<float> realized(s.begin(), s.end());  // [in]
  if (!g.folds_into_linear()) {
    NormWeights& n = w.norm[size_t(g.source_slot)];
    QL_ASSERT(n.w.numel() == in);
    const float off = spec.norms[size_t(g.source_slot)].gain_offset;  // Gemma applies 1 + w
    for (int64_t j = 0; j < in; ++j) {
      float& nw = n.w.data[size_t(j)];
      const float gain = off + nw;
      const float folded = round_to(gain / s[size_t(j)] - off, norm_dtype);
      // The scale the stored (rounded) weight actually applies; the columns take exactly that one.
      if (off + folded != 0.0f && gain != 0.0f) {
        const float r = gain / (off + folded);
        if (std::isfinite(r) && r > 0.0f) realized[size_t(j)] = r;
      }
      nw = folded;
      if (!n.b.empty()) n.b.data[size_t(j)] = round_to(n.b.data[size_t(j)] / realized[size_t(j)], norm_dtype);
    }
  } else {
    LinearWeights& p = w.linear[size_t(g.source_slot)];
    QL_ASSERT(p.w.dim(0) == in, "fold: preceding linear has {} outputs for {} inputs", p.w.dim(0), in);
    const int64_t pin = p.w.dim(1);
    for (int64_t j = 0; j < in; ++j) {
      float* row = p.w.row(j);
      for (int64_t k = 0; k < pin; ++k) row[k] /= s[size_t(j)];
      if (!p.b.empty()) p.b.data[size_t(j)] = round_to(p.b.data[size_t(j)] / s[size_t(j)], norm_dtype);
    }
  }
  return realized;
}

std::vector<float> awq_fold_scales(const BlockSpec& spec, BlockWeights& w, const AwqScalingGroup& g,
                                   std::span<const float> s, DType norm_dtype) {
  const std::vector<float> realized = awq_fold_prev(spec, w, g, s, norm_dtype);
  const int64_t in = int64_t(realized.size());
  for (int l : g.layers) {
    Tensor& lw = w.linear[size_t(l)].w;  // [out, in]
    QL_ASSERT(lw.dim(1) == in);
    for (int64_t r = 0; r < lw.dim(0); ++r) {
      float* row = lw.row(r);
      for (int64_t j = 0; j < in; ++j) row[j] *= realized[size_t(j)];
    }
  }
  return realized;
}

std::vector<std::string> prev_op_tensors(const BlockSpec& spec, const AwqScalingGroup& g) {
  std::vector<std::string> names;
  if (!g.folds_into_linear()) {
    const std::string n = spec.norm_tensor(g.source_slot);
    names.push_back(n + ".weight");
    if (spec.norms[size_t(g.source_slot)].kind == NormKind::LayerNorm) names.push_back(n + ".bias");
  } else {
    names.push_back(spec.linear_tensor(g.source_slot) + ".weight");
    if (spec.linears[size_t(g.source_slot)].bias) names.push_back(spec.linear_tensor(g.source_slot) + ".bias");
  }
  return names;
}


DType fold_dtype(const WeightSource& src, const BlockSpec& spec, const AwqScalingGroup& g) {
  const std::vector<std::string> prev = prev_op_tensors(spec, g);
  return stored_dtype(src, g.folds_into_linear() ? prev.back() : prev.front());
}

}  // namespace quantllm
