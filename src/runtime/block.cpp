// The block interpreter (see block.h).
#include "runtime/block.h"

#include "core/error.h"
#include "runtime/moe.h"

#include <vector>

namespace quantllm {

void sublayer_input(BlockOps& ops, const BlockSpec& spec, int s, Act x, Act h) {
  const Sublayer& sl = spec.sublayers[size_t(s)];
  if (sl.norm_before) ops.norm(sl.norm, x, h);
  else ops.copy(x, h);
}

void sublayer_mix(BlockOps& ops, const BlockSpec& spec, int s, Act h, Act mid, const Step& step) {
  const Sublayer& sl = spec.sublayers[size_t(s)];
  const int64_t rows = h.rows;
  if (sl.kind == SublayerKind::Attention) {
    const int64_t q_dim = mid.cols, kv_dim = sl.qkv >= 0 ? (spec.linears[size_t(sl.qkv)].out - q_dim) / 2
                                                           : spec.linears[size_t(sl.in_linears[1])].out;
    const Act aq = ops.scratch(Scratch::Q, rows, q_dim);   // [rows, q_dim]
    const Act ak = ops.scratch(Scratch::K, rows, kv_dim);  // [rows, kv_dim]
    const Act av = ops.scratch(Scratch::V, rows, kv_dim);  // [rows, kv_dim]
    if (sl.qkv >= 0) {  // fused: [rows, q_dim + 2·kv_dim] split into q, k, v
      const Act fused = ops.scratch(Scratch::Fused, rows, q_dim + 2 * kv_dim);
      const Act outs[] = {fused};
      ops.linears(sl.in_linears, h, outs);
      ops.copy_cols(fused, 0, aq);
      ops.copy_cols(fused, q_dim, ak);
      ops.copy_cols(fused, q_dim + kv_dim, av);
    } else {
      const Act outs[] = {aq, ak, av};
      ops.linears(sl.in_linears, h, outs);
    }
    if (sl.q_norm >= 0) ops.head_norm(sl.q_norm, aq);
    if (sl.k_norm >= 0) ops.head_norm(sl.k_norm, ak);
    if (sl.rope) {
      ops.rope(s, aq, step);
      ops.rope(s, ak, step);
    }
    ops.attention(s, aq, ak, av, mid, step);
    return;
  }
  QL_ASSERT(sl.kind == SublayerKind::Ffn);
  if (sl.gate_up >= 0) {  // fused: [rows, 2·ffn] = [gate | up]; mid ← act(gate) ⊙ up
    const Act fused = ops.scratch(Scratch::Fused, rows, 2 * mid.cols);
    const Act gate = ops.scratch(Scratch::Gate, rows, mid.cols);
    const int slots[] = {sl.gate_up};
    const Act outs[] = {fused};
    ops.linears(slots, h, outs);
    ops.copy_cols(fused, 0, gate);
    ops.copy_cols(fused, mid.cols, mid);
    ops.activate(s, gate, mid);
  } else if (sl.gate >= 0) {
    // up into mid, gate beside it: mid ← act(gate) ⊙ up
    const Act gate = ops.scratch(Scratch::Gate, rows, mid.cols);
    const int slots[] = {sl.up, sl.gate};
    const Act outs[] = {mid, gate};
    ops.linears(slots, h, outs);
    ops.activate(s, gate, mid);
  } else {
    const int slots[] = {sl.up};
    const Act outs[] = {mid};
    ops.linears(slots, h, outs);
    ops.activate(s, Act{}, mid);
  }
}

void sublayer_residual(BlockOps& ops, const BlockSpec& spec, int s, Act x, Act mid) {
  const Sublayer& sl = spec.sublayers[size_t(s)];
  const Act y = ops.scratch(Scratch::Out, x.rows, x.cols);  // [rows, hidden]
  const int slots[] = {sl.out_linear};
  const Act outs[] = {y};
  ops.linears(slots, mid, outs);
  if (sl.post_norm >= 0) ops.norm(sl.post_norm, y, y);
  ops.add(x, y);
  if (!sl.norm_before) ops.norm(sl.norm, x, x);
}

namespace {

// y = Σ_e w_e · down_e(act(gate_e(h)) ⊙ up_e(h)) over each token's routed experts; false when the observer
// stopped the block.
bool moe_mix(BlockOps& ops, const BlockSpec& spec, int s, Act h, Act y, PointObserver* observer) {
  const Sublayer& sl = spec.sublayers[size_t(s)];
  const int64_t rows = h.rows, n_experts = int64_t(sl.experts.size());
  const Act logits = ops.scratch(Scratch::Router, rows, n_experts);  // [rows, n_experts]
  {
    const int slots[] = {sl.router};
    const Act outs[] = {logits};
    ops.linears(slots, h, outs);
  }
  std::vector<float> host(size_t(rows * n_experts));
  ops.to_host(logits, host.data());
  const std::vector<ExpertRoute> routes = route_tokens(host.data(), rows, n_experts, sl.top_k, sl.norm_topk);
  ops.zero(y);
  const bool all = observer && observer->all_experts();
  for (size_t e = 0; e < sl.experts.size(); ++e) {
    const Sublayer::Expert& ex = sl.experts[e];
    const ExpertRoute& r = routes[e];
    const int64_t n = int64_t(r.rows.size()), width = spec.points[size_t(ex.mid)].width;
    Act xin = h;  // all-experts calibration: every row
    if (!all) {
      xin = ops.scratch(Scratch::ExpertIn, n, h.cols);
      if (n > 0) ops.gather_rows(h, r.rows, xin);
    }
    if (observer && !observer->observe(ex.in, xin)) return false;
    if (xin.rows == 0) {
      if (observer && !observer->observe(ex.mid, Act{xin.p, 0, width})) return false;
      continue;
    }
    const Act mid = ops.scratch(Scratch::Mid, xin.rows, width), gate = ops.scratch(Scratch::Gate, xin.rows, width);
    {
      const int slots[] = {ex.up, ex.gate};
      const Act outs[] = {mid, gate};
      ops.linears(slots, xin, outs);
    }
    ops.activate(s, gate, mid);
    if (observer && !observer->observe(ex.mid, mid)) return false;
    const Act out = ops.scratch(Scratch::ExpertOut, xin.rows, h.cols);
    {
      const int slots[] = {ex.down};
      const Act outs[] = {out};
      ops.linears(slots, mid, outs);
    }
    if (n == 0) continue;
    if (all) {  // the routed rows of the all-rows output
      const Act routed = ops.scratch(Scratch::ExpertIn, n, h.cols);
      ops.gather_rows(out, r.rows, routed);
      ops.scatter_add_rows(routed, r.rows, r.weights, y);
    } else {
      ops.scatter_add_rows(out, r.rows, r.weights, y);
    }
  }
  return true;
}

}  // namespace

bool sublayer_output(BlockOps& ops, const BlockSpec& spec, int s, Act h, Act y, const Step& step,
                     PointObserver* observer) {
  const Sublayer& sl = spec.sublayers[size_t(s)];
  if (sl.kind == SublayerKind::Moe) {
    if (!moe_mix(ops, spec, s, h, y, observer)) return false;
    if (sl.post_norm >= 0) ops.norm(sl.post_norm, y, y);
    return true;
  }
  const Act mid = ops.scratch(Scratch::Mid, h.rows, spec.points[size_t(sl.mid)].width);
  sublayer_mix(ops, spec, s, h, mid, step);
  const int slots[] = {sl.out_linear};
  const Act outs[] = {y};
  ops.linears(slots, mid, outs);
  if (sl.post_norm >= 0) ops.norm(sl.post_norm, y, y);
  return true;
}

bool run_block(BlockOps& ops, const BlockSpec& spec, Act x, const Step& step, PointObserver* observer) {
  QL_ASSERT(x.rows == step.n_seq * step.seq_len, "block {}: {} rows for {} windows of {}", spec.layer, x.rows,
            step.n_seq, step.seq_len);
  for (size_t s = 0; s < spec.sublayers.size(); ++s) {
    const Sublayer& sl = spec.sublayers[s];
    const Act h = ops.scratch(Scratch::H, x.rows, x.cols);
    sublayer_input(ops, spec, int(s), x, h);
    if (observer && !observer->observe(sl.in, h)) return false;
    if (sl.kind == SublayerKind::Moe) {
      const Act y = ops.scratch(Scratch::Out, x.rows, x.cols);
      if (!sublayer_output(ops, spec, int(s), h, y, step, observer)) return false;
      ops.add(x, y);
      continue;
    }
    const Act mid = ops.scratch(Scratch::Mid, x.rows, spec.points[size_t(sl.mid)].width);
    sublayer_mix(ops, spec, int(s), h, mid, step);
    if (observer && !observer->observe(sl.mid, mid)) return false;
    sublayer_residual(ops, spec, int(s), x, mid);
  }
  return true;
}

}  // namespace quantllm
