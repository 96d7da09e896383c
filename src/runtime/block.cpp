// The block interpreter (see block.h).
#include "runtime/block.h"

#include "core/error.h"

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
    const LinearSlot& q = spec.linears[size_t(sl.in_linears[0])];
    const LinearSlot& k = spec.linears[size_t(sl.in_linears[1])];
    const LinearSlot& v = spec.linears[size_t(sl.in_linears[2])];
    const Act aq = ops.scratch(Scratch::Q, rows, q.out);  // [rows, q_dim]
    const Act ak = ops.scratch(Scratch::K, rows, k.out);  // [rows, kv_dim]
    const Act av = ops.scratch(Scratch::V, rows, v.out);  // [rows, kv_dim]
    const Act outs[] = {aq, ak, av};
    ops.linears(sl.in_linears, h, outs);
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
  if (sl.gate >= 0) {
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

void sublayer_output(BlockOps& ops, const BlockSpec& spec, int s, Act h, Act y, const Step& step) {
  const Sublayer& sl = spec.sublayers[size_t(s)];
  const Act mid = ops.scratch(Scratch::Mid, h.rows, spec.points[size_t(sl.mid)].width);
  sublayer_mix(ops, spec, s, h, mid, step);
  const int slots[] = {sl.out_linear};
  const Act outs[] = {y};
  ops.linears(slots, mid, outs);
  if (sl.post_norm >= 0) ops.norm(sl.post_norm, y, y);
}

bool run_block(BlockOps& ops, const BlockSpec& spec, Act x, const Step& step, PointObserver* observer) {
  QL_ASSERT(x.rows == step.n_seq * step.seq_len, "block {}: {} rows for {} windows of {}", spec.layer, x.rows,
            step.n_seq, step.seq_len);
  for (size_t s = 0; s < spec.sublayers.size(); ++s) {
    const Sublayer& sl = spec.sublayers[s];
    const Act h = ops.scratch(Scratch::H, x.rows, x.cols);
    sublayer_input(ops, spec, int(s), x, h);
    if (observer && !observer->observe(sl.in, h)) return false;
    const Act mid = ops.scratch(Scratch::Mid, x.rows, spec.points[size_t(sl.mid)].width);
    sublayer_mix(ops, spec, int(s), h, mid, step);
    if (observer && !observer->observe(sl.mid, mid)) return false;
    sublayer_residual(ops, spec, int(s), x, mid);
  }
  return true;
}

}  // namespace quantllm
