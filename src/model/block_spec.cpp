// Derives every layer's BlockSpec from the architecture row and the config (see block_spec.h). The
// GGUF names of the slots are llama.cpp's (attn_q, ffn_down, attn_q_norm, …) for every architecture.
#include "model/block_spec.h"

#include "core/error.h"
#include "model/config.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

namespace quantllm {

std::string_view role_name(Role r) {
  static constexpr std::string_view names[] = {"q", "k", "v", "o", "gate", "up", "down", "router", "qkv", "gate_up"};
  return names[int(r)];
}

BlockSpec::TensorSlot BlockSpec::tensor_slot(const std::string& name) const {
  for (size_t n = 0; n < norms.size(); ++n) {
    const std::string base = norm_tensor(int(n));
    if (name == base + ".weight") return {true, false, int(n)};
    if (name == base + ".bias") return {true, true, int(n)};
  }
  for (size_t l = 0; l < linears.size(); ++l) {
    const std::string base = linear_tensor(int(l));
    if (name == base + ".weight") return {false, false, int(l)};
    if (name == base + ".bias") return {false, true, int(l)};
  }
  return {};
}

int BlockSpec::find(Role r) const {
  for (size_t i = 0; i < linears.size(); ++i)
    if (linears[i].role == r) return int(i);
  return -1;
}

const LinearSlot& BlockSpec::linear(Role r) const {
  const int s = find(r);
  QL_ASSERT(s >= 0, "block {} has no {} projection", layer, role_name(r));
  return linears[size_t(s)];
}

std::vector<int> BlockSpec::readers(int point) const {
  std::vector<int> r;
  for (size_t i = 0; i < linears.size(); ++i)
    if (linears[i].input == point) r.push_back(int(i));
  return r;
}

std::vector<int> BlockSpec::input_points(const std::vector<int>& slots) const {
  std::vector<int> points;
  for (int slot : slots) {
    const int p = linears[size_t(slot)].input;
    if (std::find(points.begin(), points.end(), p) == points.end()) points.push_back(p);
  }
  std::sort(points.begin(), points.end());
  return points;
}

std::vector<std::vector<int>> BlockSpec::sequential_groups(bool true_sequential) const {
  std::vector<std::vector<int>> groups;
  if (!true_sequential) {
    groups.emplace_back();
    for (size_t i = 0; i < linears.size(); ++i)
      if (linears[i].quantized) groups.back().push_back(int(i));
    return groups;
  }
  // Experts are independent of each other: all their inputs form one group, all their mids the next.
  std::map<std::pair<int, bool>, size_t> expert_group;  // (sub-layer, is_mid) → group
  for (size_t p = 0; p < points.size(); ++p) {
    std::vector<int> r;
    for (int slot : readers(int(p)))
      if (linears[size_t(slot)].quantized) r.push_back(slot);
    if (r.empty()) continue;
    if (points[p].expert < 0) {
      groups.push_back(std::move(r));
      continue;
    }
    const auto key = std::make_pair(points[p].sublayer, points[p].is_mid);
    auto it = expert_group.find(key);
    if (it == expert_group.end()) {
      expert_group[key] = groups.size();
      groups.push_back(std::move(r));
    } else {
      groups[it->second].insert(groups[it->second].end(), r.begin(), r.end());
    }
  }
  return groups;
}

std::vector<std::pair<std::string, std::vector<int64_t>>> BlockSpec::tensors() const {
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  for (size_t i = 0; i < norms.size(); ++i) {
    out.push_back({norm_tensor(int(i)) + ".weight", {norms[i].width}});
    if (norms[i].kind == NormKind::LayerNorm) out.push_back({norm_tensor(int(i)) + ".bias", {norms[i].width}});
  }
  for (size_t i = 0; i < linears.size(); ++i) {
    out.push_back({linear_tensor(int(i)) + ".weight", {linears[i].out, linears[i].in}});
    if (linears[i].bias) out.push_back({linear_tensor(int(i)) + ".bias", {linears[i].out}});
  }
  return out;
}

std::vector<std::string> BlockSpec::file_order_names() const {
  std::vector<std::string> out;
  for (const TensorRef& t : file_order) {
    const bool bias = t.is_norm ? norms[size_t(t.slot)].kind == NormKind::LayerNorm : linears[size_t(t.slot)].bias;
    const std::string base = t.is_norm ? norm_tensor(t.slot) : linear_tensor(t.slot);
    out.push_back(base + ".weight");
    if (bias) out.push_back(base + ".bias");
  }
  return out;
}

int64_t BlockSpec::max_point_width() const {
  int64_t w = 0;
  for (const Point& p : points) w = std::max(w, p.width);
  return w;
}

namespace {

// Builds one block, sub-layer by sub-layer, recording slots in forward (and file) order.
class Builder {
 public:
  explicit Builder(BlockSpec& b) : b_(b) {}

  int norm(std::string_view name, std::string_view gguf, int64_t width, NormKind kind, float offset) {
    b_.norms.push_back({std::string(name), std::string(gguf), width, kind, offset});
    const int slot = int(b_.norms.size()) - 1;
    b_.file_order.push_back({true, slot});
    return slot;
  }
  int linear(Role role, std::string_view name, std::string_view gguf, int64_t in, int64_t out, bool bias, int input,
             int expert = -1) {
    QL_ASSERT(!name.empty());
    b_.linears.push_back({role, std::string(name), std::string(gguf), in, out, bias, input, expert, role != Role::Router});
    const int slot = int(b_.linears.size()) - 1;
    b_.file_order.push_back({false, slot});
    return slot;
  }
  int point(std::string_view label, int64_t width, int sublayer, bool mid) {
    Point p;
    p.label = std::string(label);
    p.width = width;
    p.sublayer = sublayer;
    p.is_mid = mid;
    b_.points.push_back(std::move(p));
    return int(b_.points.size()) - 1;
  }
  Point& at(int point) { return b_.points[size_t(point)]; }

 private:
  BlockSpec& b_;
};

void add_attention(Builder& bld, BlockSpec& b, const ModelConfig& c) {
  const ArchSpec& a = *c.arch;
  const AttentionNames& n = a.attn;
  Sublayer s;
  s.kind = SublayerKind::Attention;
  const int idx = int(b.sublayers.size());
  s.norm_before = c.norm_before;
  s.rope = a.pos == PosKind::RoPE;
  const bool sliding = c.layer_sliding(b.layer);
  s.window = sliding ? c.sliding_window : 0;
  s.rope_scaled = !(sliding && c.rope_theta_sliding > 0);
  s.rope_theta = s.rope_scaled ? c.rope_theta : c.rope_theta_sliding;
  s.scale = c.attn_scale > 0 ? c.attn_scale : 1.0 / std::sqrt(double(c.head_dim));
  s.softcap = c.attn_softcap;
  const float off = a.norm_gain_offset;
  s.norm = bld.norm(n.norm, "attn_norm", c.hidden, a.norm, off);
  s.in = bld.point("attn.qkv", c.hidden, idx, false);
  s.mid = bld.point("attn.o", c.q_dim(), idx, true);
  if (!n.qkv.empty()) {  // fused (Phi-3): one slot whose output rows are q, then k, then v
    s.qkv = bld.linear(Role::QKV, n.qkv, "attn_qkv", c.hidden, c.q_dim() + 2 * c.kv_dim(), c.qkv_bias, s.in);
    s.in_linears.push_back(s.qkv);
  } else {
    s.in_linears.push_back(bld.linear(Role::Q, n.q, "attn_q", c.hidden, c.q_dim(), c.qkv_bias, s.in));
    s.in_linears.push_back(bld.linear(Role::K, n.k, "attn_k", c.hidden, c.kv_dim(), c.qkv_bias, s.in));
    s.in_linears.push_back(bld.linear(Role::V, n.v, "attn_v", c.hidden, c.kv_dim(), c.qkv_bias, s.in));
  }
  if (!n.q_norm.empty()) s.q_norm = bld.norm(n.q_norm, "attn_q_norm", c.head_dim, NormKind::RMSNorm, off);
  if (!n.k_norm.empty()) s.k_norm = bld.norm(n.k_norm, "attn_k_norm", c.head_dim, NormKind::RMSNorm, off);
  s.out_linear = bld.linear(Role::O, n.o, "attn_output", c.q_dim(), c.hidden, c.o_bias, s.mid);
  if (!n.post_norm.empty()) s.post_norm = bld.norm(n.post_norm, "post_attention_norm", c.hidden, a.norm, off);
  // A pre-norm's gain absorbs a per-channel scale of its output; a post-norm block feeds q/k/v with the
  // residual stream itself. Channel j of v reaches channel j of o's input only without grouped-query
  // attention.
  if (s.norm_before) bld.at(s.in).source = Point::Source::Norm, bld.at(s.in).source_slot = s.norm;
  if (c.kv_dim() == c.q_dim() && s.qkv < 0)
    bld.at(s.mid).source = Point::Source::Linear, bld.at(s.mid).source_slot = s.in_linears[2];
  b.sublayers.push_back(std::move(s));
}

void add_ffn(Builder& bld, BlockSpec& b, const ModelConfig& c) {
  const ArchSpec& a = *c.arch;
  const FfnNames& n = a.ffn_names;
  Sublayer s;
  s.kind = SublayerKind::Ffn;
  const int idx = int(b.sublayers.size());
  s.norm_before = c.norm_before;
  s.act = a.ffn;
  const float off = a.norm_gain_offset;
  s.norm = bld.norm(n.norm, "ffn_norm", c.hidden, a.norm, off);
  s.in = bld.point("ffn.in", c.hidden, idx, false);
  s.mid = bld.point("ffn.down", c.ffn, idx, true);
  if (!n.gate_up.empty()) {  // fused (Phi-3): rows [gate; up], llama.cpp's ffn_up of 2 × ffn rows
    s.gate_up = bld.linear(Role::GateUp, n.gate_up, "ffn_up", c.hidden, 2 * c.ffn, c.mlp_bias, s.in);
    s.in_linears.push_back(s.gate_up);
  } else {
    if (!n.gate.empty()) {
      s.gate = bld.linear(Role::Gate, n.gate, "ffn_gate", c.hidden, c.ffn, c.mlp_bias, s.in);
      s.in_linears.push_back(s.gate);
    }
    s.up = bld.linear(Role::Up, n.up, "ffn_up", c.hidden, c.ffn, c.mlp_bias, s.in);
    s.in_linears.push_back(s.up);
  }
  s.out_linear = bld.linear(Role::Down, n.down, "ffn_down", c.ffn, c.hidden, c.mlp_bias, s.mid);
  if (!n.post_norm.empty()) s.post_norm = bld.norm(n.post_norm, "post_ffw_norm", c.hidden, a.norm, off);
  if (s.norm_before) bld.at(s.in).source = Point::Source::Norm, bld.at(s.in).source_slot = s.norm;
  // act(g)·(u/s) = (act(g)·u)/s for a gated FFN; relu(u/s) = relu(u)/s for s > 0; GELU is not homogeneous.
  QL_ASSERT((s.gate >= 0 || s.gate_up >= 0) == is_gated(s.act), "{}: a gated activation needs a gate projection",
            b.prefix);
  // (fused gate/up: the up rows are part of one slot, which AWQ does not fold into)
  if (s.up >= 0 && (s.gate >= 0 || s.act == FfnKind::ReLU))
    bld.at(s.mid).source = Point::Source::Linear, bld.at(s.mid).source_slot = s.up;
  b.sublayers.push_back(std::move(s));
}

// A MoE feed-forward: the router reads the sub-layer's input; expert e reads the rows routed to it (its
// own input point) and its mid. GGUF keeps the experts of a layer stacked: expert e is slice e of the
// 3-D tensor its slot names (ffn_gate_exps, ffn_up_exps, ffn_down_exps; model/gguf_names.h).
void add_moe(Builder& bld, BlockSpec& b, const ModelConfig& c) {
  const ArchSpec& a = *c.arch;
  const MoeNames& m = a.moe;
  Sublayer s;
  s.kind = SublayerKind::Moe;
  const int idx = int(b.sublayers.size());
  s.norm_before = true;
  s.act = FfnKind::GatedSiLU;
  s.top_k = int(c.n_experts_used);
  s.norm_topk = c.norm_topk_prob;
  s.norm = bld.norm(a.ffn_names.norm, "ffn_norm", c.hidden, a.norm, a.norm_gain_offset);
  s.in = bld.point("ffn.in", c.hidden, idx, false);
  bld.at(s.in).source = Point::Source::Norm, bld.at(s.in).source_slot = s.norm;
  s.router = bld.linear(Role::Router, m.router, "ffn_gate_inp", c.hidden, c.n_experts, false, s.in);
  for (int e = 0; e < int(c.n_experts); ++e) {
    const std::string pre = fmt::format(fmt::runtime(m.experts), e);
    Sublayer::Expert x;
    x.in = bld.point(fmt::format("ffn.exp{}.in", e), c.hidden, idx, false);
    bld.at(x.in).expert = e;
    x.mid = bld.point(fmt::format("ffn.exp{}.down", e), c.moe_ffn, idx, true);
    bld.at(x.mid).expert = e;
    x.gate = bld.linear(Role::Gate, pre + std::string(m.gate), "ffn_gate_exps", c.hidden, c.moe_ffn, false, x.in, e);
    x.up = bld.linear(Role::Up, pre + std::string(m.up), "ffn_up_exps", c.hidden, c.moe_ffn, false, x.in, e);
    x.down = bld.linear(Role::Down, pre + std::string(m.down), "ffn_down_exps", c.moe_ffn, c.hidden, false, x.mid, e);
    bld.at(x.mid).source = Point::Source::Linear, bld.at(x.mid).source_slot = x.up;
    s.experts.push_back(x);
  }
  b.sublayers.push_back(std::move(s));
}

}  // namespace

void derive_block_specs(ModelConfig& c) {
  QL_ASSERT(c.arch && c.n_layers >= 0);
  auto blocks = std::make_shared<std::vector<BlockSpec>>();
  blocks->reserve(size_t(c.n_layers));
  for (int64_t i = 0; i < c.n_layers; ++i) {
    BlockSpec b;
    b.layer = int(i);
    b.prefix = c.block_prefix(i);
    b.gguf_prefix = fmt::format("blk.{}.", i);
    Builder bld(b);
    add_attention(bld, b, c);
    if (c.layer_moe(i)) add_moe(bld, b, c);
    else add_ffn(bld, b, c);
    blocks->push_back(std::move(b));
  }
  c.blocks = std::move(blocks);
}

}  // namespace quantllm
