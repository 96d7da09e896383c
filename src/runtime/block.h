// The decoder block, interpreted from its BlockSpec over a device's ops (runtime/ops.h). This is the
// one place where the order of a block's computations is written; the CPU and the CUDA backends, the
// evaluation models and every calibration driver run blocks through it.
//
// For each sub-layer s of the spec (x: the residual stream [rows, hidden]):
//   h   = norm_s(x) (pre-norm) or x                            → point s.in observed
//   mid = attention: softmax(rope(qnorm(q(h))) rope(knorm(k(h)))ᵀ) v(h)   [rows, q_dim]
//         feed-forward: act(gate(h)) ⊙ up(h), or act(up(h))               [rows, ffn]  → point s.mid observed
//   MoE:  the router picks each token's experts (runtime/moe.h); expert e runs on its rows only (points
//         e.in, e.mid observed), its outputs weighted and added into y            [rows, hidden]
//   x   = x + post_s(out_s(mid)) (post_s: Gemma's post-norm, else identity); post-norm sub-layers
//         (OPT-350m): x = norm_s(x)
#pragma once

#include "model/block_spec.h"
#include "runtime/ops.h"

namespace quantllm {

// Receives the activations of a block's points as they are computed (x: [rows, point width], in the
// device's memory). Returning false stops the block there (x is then partly updated: pass a copy):
// calibration often needs only the first points of a block, not its output.
class PointObserver {
 public:
  virtual ~PointObserver() = default;
  virtual bool observe(int point, Act x) = 0;
  // MoE calibration (--moe-calibration all-experts): every expert's points see every token (the block's
  // output still uses the router's choice), so experts the router rarely picks get statistics too.
  virtual bool all_experts() const { return false; }
};

// The whole block on x [rows, hidden] in place; false when the observer stopped it.
bool run_block(BlockOps& ops, const BlockSpec& spec, Act x, const Step& step, PointObserver* observer = nullptr);

// The pieces of run_block, for drivers that run a block stage by stage (the GPU's true-sequential GPTQ)
// or inspect one sub-layer (AWQ's scale search):
// h = sub-layer s's input point from the residual x (its pre-norm, or a copy).
void sublayer_input(BlockOps& ops, const BlockSpec& spec, int s, Act x, Act h);
// mid = sub-layer s's mid point from its input h.
void sublayer_mix(BlockOps& ops, const BlockSpec& spec, int s, Act h, Act mid, const Step& step);
// x ← x + post_s(out_s(mid)), then the norm of a post-norm sub-layer.
void sublayer_residual(BlockOps& ops, const BlockSpec& spec, int s, Act x, Act mid);
// y = post_s(out_s(mix(h))) (MoE: the weighted experts' sum): the sub-layer's output before the residual
// add ([rows, hidden]); false when the observer stopped it.
bool sublayer_output(BlockOps& ops, const BlockSpec& spec, int s, Act h, Act y, const Step& step,
                     PointObserver* observer = nullptr);

}  // namespace quantllm
