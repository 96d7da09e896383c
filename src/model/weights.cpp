// Weight sources (an overlay of replaced tensors), the expected-tensor check and per-block loading by
// slot; the containers that provide the sources and open_model() are in formats/.
#include "model/weights.h"

#include "core/error.h"
#include "core/dtype.h"
#include "io/safetensors.h"
#include "quant/ct_format.h"
#include "quant/gptq_format.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <set>

namespace quantllm {

namespace {

std::vector<int32_t> as_i32(const TensorView& v, const std::string& where) {
  if (v.dtype != DType::I32) fail("{}: tensor '{}' must be I32, is {}", where, v.name, dtype_name(v.dtype));
  std::vector<int32_t> out(static_cast<size_t>(v.numel()));
  std::memcpy(out.data(), v.data, v.nbytes);
  return out;
}

std::vector<uint16_t> as_f16_bits(const TensorView& v) {
  std::vector<uint16_t> out(static_cast<size_t>(v.numel()));
  if (v.dtype == DType::F16) {
    std::memcpy(out.data(), v.data, v.nbytes);
  } else {
    const Tensor t = v.to_f32();
    for (size_t i = 0; i < out.size(); ++i) out[i] = f32_to_f16(t.data[i]);
  }
  return out;
}

}  // namespace

GroupQuantized unpack_groups(const PackedWeight& p, const std::string& where, const std::string& layer) {
  QL_ASSERT(p.kind != PackedWeight::Kind::Ggml && p.shape.size() == 2, "{}: not a GPTQ / AWQ layer", layer);
  const int64_t out = p.shape[0], in = p.shape[1];
  const int64_t gs = p.group_size > 0 ? p.group_size : in;
  if (in % gs != 0) fail("{}: layer '{}': group size {} does not divide {}", where, layer, gs, in);
  if (p.kind == PackedWeight::Kind::Gptq) {
    GptqPacked g;
    g.bits = p.bits, g.in = in, g.out = out, g.n_groups = in / gs;
    g.qweight = as_i32(p.qweight, where);
    g.qzeros = as_i32(p.qzeros, where);
    g.scales = as_f16_bits(p.scales);
    if (p.g_idx.data) {
      g.g_idx = as_i32(p.g_idx, where);
    } else {
      g.g_idx.resize(size_t(in));
      for (int64_t i = 0; i < in; ++i) g.g_idx[size_t(i)] = int32_t(i / gs);
    }
    return unpack_gptq(g, p.gptq_v1 ? GptqCheckpointFormat::kV1 : GptqCheckpointFormat::kV2, p.group_size, layer);
  }
  if (p.kind == PackedWeight::Kind::Ct) {
    CtPacked c;
    c.bits = p.bits, c.symmetric = p.symmetric, c.in = in, c.out = out;
    c.n_groups = p.scales.shape.size() == 2 ? p.scales.shape[1] : 0;
    if (p.scales.shape.size() != 2 || p.scales.shape[0] != out)
      fail("{}: layer '{}': weight_scale has shape {}, [{}, groups] expected", where, layer, shape_str(p.scales.shape), out);
    c.weight_packed = as_i32(p.qweight, where);
    if (p.qweight.shape != Shape{out, c.packed_cols()})
      fail("{}: layer '{}': weight_packed has shape {}, [{}, {}] expected for weight_shape [{}, {}] at {} bits", where,
           layer, shape_str(p.qweight.shape), out, c.packed_cols(), out, in, p.bits);
    c.weight_scale = p.scales.to_f32().data;
    if (!p.symmetric) {
      c.weight_zero_point = as_i32(p.qzeros, where);
      if (p.qzeros.shape != Shape{c.packed_zero_rows(), c.n_groups})
        fail("{}: layer '{}': weight_zero_point has shape {}, [{}, {}] expected", where, layer,
             shape_str(p.qzeros.shape), c.packed_zero_rows(), c.n_groups);
    }
    if (p.g_idx.data) c.g_idx = as_i32(p.g_idx, where);
    return unpack_ct(c, p.group_size, layer);
  }
  AwqPacked a;
  a.in = in, a.out = out, a.n_groups = in / gs;
  a.qweight = as_i32(p.qweight, where);
  a.qzeros = as_i32(p.qzeros, where);
  a.scales = as_f16_bits(p.scales);
  return unpack_awq_gemm(a, p.group_size, layer);
}

std::vector<std::pair<std::string, Shape>> expected_tensors(const ModelConfig& c) {
  const ArchSpec& a = *c.arch;
  std::vector<std::pair<std::string, Shape>> out;
  const int64_t d = c.hidden, e = c.word_embed_proj_dim;
  out.push_back({std::string(a.embed_tokens) + ".weight", {c.vocab, e}});
  if (a.pos == PosKind::Learned)
    out.push_back({std::string(a.embed_positions) + ".weight", {c.max_positions + a.position_offset, d}});
  if (e != d && !a.project_in.empty()) {
    out.push_back({std::string(a.project_in) + ".weight", {d, e}});
    out.push_back({std::string(a.project_out) + ".weight", {e, d}});
  }
  if (c.final_norm) {
    out.push_back({std::string(a.final_norm) + ".weight", {d}});
    if (a.norm == NormKind::LayerNorm) out.push_back({std::string(a.final_norm) + ".bias", {d}});
  }
  if (!c.tied_embeddings) out.push_back({std::string(a.lm_head) + ".weight", {c.vocab, e}});
  for (int i = 0; i < c.n_layers; ++i)
    for (auto& t : c.block(i).tensors()) out.push_back(std::move(t));
  return out;
}

void resolve_tied_head(ModelConfig& c, const WeightSource& src) {
  if (!c.tied_embeddings && !src.has(std::string(c.arch->lm_head) + ".weight")) c.tied_embeddings = true;
}

void check_tensors(const ModelConfig& c, const WeightSource& src, const std::string& where) {
  const auto expected = expected_tensors(c);
  std::set<std::string> want;
  for (const auto& [name, shape] : expected) {
    want.insert(name);
    if (!src.has(name)) {
      // A tied checkpoint may still carry lm_head.weight; an untied one without it is tied in practice.
      fail("{}: tensor '{}' is missing", where, name);
    }
    const Shape got = src.shape(name);
    if (got != shape) fail("{}: tensor '{}' has shape {}, expected {}", where, name, shape_str(got), shape_str(shape));
  }
  for (const auto& name : src.names()) {
    if (want.count(name)) continue;
    // Buffers some checkpoints carry that the forward pass recomputes.
    if (name.find("rotary_emb.inv_freq") != std::string::npos) continue;
    if (c.tied_embeddings && name == std::string(c.arch->lm_head) + ".weight") continue;
    fail("{}: unexpected tensor '{}' (not used by {})", where, name, c.arch->hf_architecture);
  }
}

BlockWeights load_block(const ModelConfig& c, const WeightSource& src, int layer, bool linear_weights) {
  const BlockSpec& spec = c.block(layer);
  BlockWeights b;
  b.linear.resize(spec.linears.size());
  for (size_t l = 0; l < spec.linears.size(); ++l) {
    const std::string base = spec.linear_tensor(int(l));
    if (linear_weights) b.linear[l].w = src.load(base + ".weight");
    if (spec.linears[l].bias) b.linear[l].b = src.load(base + ".bias");
  }
  b.norm.resize(spec.norms.size());
  for (size_t n = 0; n < spec.norms.size(); ++n) {
    const std::string base = spec.norm_tensor(int(n));
    b.norm[n].w = src.load(base + ".weight");
    if (spec.norms[n].kind == NormKind::LayerNorm) b.norm[n].b = src.load(base + ".bias");
  }
  return b;
}

void check_block_finite(const ModelConfig& c, const BlockWeights& b, int layer) {
  const BlockSpec& spec = c.block(layer);
  for (size_t l = 0; l < spec.linears.size(); ++l) {
    const std::string base = spec.linear_tensor(int(l));
    check_finite(b.linear[l].w.data, base + ".weight");
    check_finite(b.linear[l].b.data, base + ".bias");  // empty without a bias
  }
  for (size_t n = 0; n < spec.norms.size(); ++n) {
    const std::string base = spec.norm_tensor(int(n));
    check_finite(b.norm[n].w.data, base + ".weight");
    check_finite(b.norm[n].b.data, base + ".bias");
  }
}

GlobalWeights load_globals(const ModelConfig& c, const WeightSource& src, bool embed_and_head) {
  const ArchSpec& a = *c.arch;
  GlobalWeights g;
  if (embed_and_head) g.embed = src.load(std::string(a.embed_tokens) + ".weight");
  if (a.pos == PosKind::Learned) g.positions = src.load(std::string(a.embed_positions) + ".weight");
  if (c.word_embed_proj_dim != c.hidden && !a.project_in.empty()) {
    g.project_in = src.load(std::string(a.project_in) + ".weight");
    g.project_out = src.load(std::string(a.project_out) + ".weight");
  }
  if (c.final_norm) {
    g.final_norm.w = src.load(std::string(a.final_norm) + ".weight");
    if (a.norm == NormKind::LayerNorm) g.final_norm.b = src.load(std::string(a.final_norm) + ".bias");
  }
  const std::string head = std::string(a.lm_head) + ".weight";
  if (embed_and_head) g.lm_head = c.tied_embeddings ? g.embed : src.load(head);
  return g;
}

void check_globals_finite(const ModelConfig& c, const WeightSource& src) {
  const ArchSpec& a = *c.arch;
  std::vector<std::string> names = {std::string(a.embed_tokens) + ".weight"};
  if (a.pos == PosKind::Learned) names.push_back(std::string(a.embed_positions) + ".weight");
  if (c.word_embed_proj_dim != c.hidden && !a.project_in.empty()) {
    names.push_back(std::string(a.project_in) + ".weight");
    names.push_back(std::string(a.project_out) + ".weight");
  }
  if (c.final_norm) {
    names.push_back(std::string(a.final_norm) + ".weight");
    if (a.norm == NormKind::LayerNorm) names.push_back(std::string(a.final_norm) + ".bias");
  }
  if (!c.tied_embeddings) names.push_back(std::string(a.lm_head) + ".weight");
  for (const auto& n : names) check_finite(src.load(n).data, n);
}

DType stored_dtype(const WeightSource& src, const std::string& name) {
  if (!src.has(name)) return DType::F32;
  return dtype_from_name(src.format(name)).value_or(DType::F32);
}

}  // namespace quantllm
