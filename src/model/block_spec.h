// BlockSpec: one decoder block described once, as data. Derived from the architecture row and the
// config for every layer (derive_block_specs), it is the only place that knows a block's shape:
//
//   sub-layers, in order        attention, feed-forward: x ← x + post(out(mix(norm(x)))) (OPT-350m: norm
//                               after the add; Gemma: a post-norm before it)
//   linear slots                q, k, v, o, gate, up, down: names (HF, GGUF), [out, in], bias, the point they read
//   norm slots                  the sub-layers' norms and the per-head q/k norms: names, width, kind
//   activation points           what the linear slots read: a sub-layer's input (after its norm) and its
//                               mid (attention output / feed-forward intermediate), with the op that
//                               produced each channel (a norm or a linear: what AWQ folds scales into)
//
// The forward pass (runtime/block.h) interprets the sub-layers; GPTQ's true-sequential order, AWQ's
// scaling groups, checkpoint and GGUF names, the expected tensors and the memory estimates read the slots
// and points. Weights are keyed by slot index (model/weights.h BlockWeights), any number of them.
#pragma once

#include "model/arch.h"

#include <cstdint>
#include <string>
#include <vector>

namespace quantllm {

// What a linear slot is, for the rules keyed by meaning (AWQ skips clipping q and k; GGUF permutes q/k
// rows for llama; llama.cpp's mixes treat attn_v / ffn_down specially — by GGUF name).
enum class Role { Q, K, V, O, Gate, Up, Down, Router, QKV, GateUp };  // QKV, GateUp: Phi-3's fused projections
std::string_view role_name(Role r);  // "q", "k", …

enum class SublayerKind { Attention, Ffn, Moe };

struct LinearSlot {
  Role role;
  std::string name;  // relative to the block prefix, without ".weight": "self_attn.q_proj"
  std::string gguf;  // GGUF name without "blk.N." and ".weight": "attn_q"
  int64_t in = 0, out = 0;
  bool bias = false;
  int input = -1;  // the activation point it reads
  int expert = -1;         // MoE: the expert it belongs to
  bool quantized = true;   // false: kept in full precision by every method (MoE routers)
};

struct NormSlot {
  std::string name, gguf;  // as LinearSlot
  int64_t width = 0;       // hidden, or head_dim for the per-head q/k norms
  NormKind kind = NormKind::RMSNorm;  // LayerNorm also has a bias
  float gain_offset = 0;  // the gain applied is gain_offset + w (Gemma: 1)
};

// An activation the linear slots read, [tokens, width].
struct Point {
  std::string label;  // "attn.qkv", "attn.o", "ffn.in", "ffn.down": named by the layers that read it
  int64_t width = 0;
  int sublayer = -1;
  bool is_mid = false;  // the sub-layer's mid (its out linear's input) rather than its input
  int expert = -1;      // MoE: an expert's input (the rows routed to it) or mid
  // The op whose output channel j is this point's channel j, when a positive per-channel scale can be
  // moved into it (AWQ): the pre-norm of a pre-norm sub-layer; v for the attention output without
  // grouped-query attention; up for a gated feed-forward, or an ungated one with a homogeneous activation.
  enum class Source { None, Norm, Linear } source = Source::None;
  int source_slot = -1;  // norm or linear slot index
};

struct Sublayer {
  SublayerKind kind = SublayerKind::Attention;
  int norm = -1;            // its norm slot
  bool norm_before = true;  // pre-norm: h = norm(x); false (OPT-350m): h = x, x ← norm(x + y) after
  int in = -1, mid = -1;    // points: its input (after the pre-norm) and its mid
  std::vector<int> in_linears;  // read `in`: q, k, v / gate, up (in slot order)
  int out_linear = -1;          // reads `mid`: o / down
  int post_norm = -1;       // a norm of out(mid) before the residual add (Gemma), or -1
  int qkv = -1;             // attention: q, k, v as one fused slot (rows [q; k; v]; Phi-3), or -1
  int gate_up = -1;         // feed-forward: gate and up as one fused slot (rows [gate; up]; Phi-3), or -1
  int q_norm = -1, k_norm = -1;  // attention: per-head norms of q and k (before RoPE), or -1
  bool rope = false;             // attention: rotary embedding of q and k
  double rope_theta = 0;         // attention: its RoPE base
  bool rope_scaled = true;       // attention: the config's RoPE scaling applies (Gemma 3's sliding layers: no)
  int64_t window = 0;            // attention: a query at p sees keys p − window + 1 … p; 0 = all before it
  double scale = 0;              // attention: query · key multiplier
  double softcap = 0;            // attention: scores ← cap · tanh(scores / cap) when > 0
  FfnKind act = FfnKind::GatedSiLU;  // feed-forward (and each expert of a MoE)
  int gate = -1, up = -1;            // feed-forward: the linear slots (gate -1 when ungated)
  // MoE: y = Σ over the top_k experts e of softmax(router(h))_e (renormalized over the top k when
  // norm_topk) · down_e(act(gate_e(h)) ⊙ up_e(h)). `in` is the router's input point; each expert reads
  // its own points: `in` restricted to the rows routed to it, and its mid.
  int router = -1;
  struct Expert {
    int gate = -1, up = -1, down = -1;  // linear slots
    int in = -1, mid = -1;              // points
  };
  std::vector<Expert> experts;
  int top_k = 0;
  bool norm_topk = true;
};

struct BlockSpec {
  int layer = 0;
  std::string prefix;       // "model.layers.3."
  std::string gguf_prefix;  // "blk.3."
  std::vector<Sublayer> sublayers;
  std::vector<LinearSlot> linears;  // in forward order
  std::vector<NormSlot> norms;
  std::vector<Point> points;
  // Every tensor of the block in file order (GGUF): a norm or a linear slot each.
  struct TensorRef {
    bool is_norm;
    int slot;
  };
  std::vector<TensorRef> file_order;

  // HF base names (+ ".weight" / ".bias" by the caller).
  std::string linear_tensor(int slot) const { return prefix + linears[size_t(slot)].name; }
  std::string norm_tensor(int slot) const { return prefix + norms[size_t(slot)].name; }
  // The slot of a role, or -1.
  int find(Role r) const;
  const LinearSlot& linear(Role r) const;  // asserts the block has it
  // The first linear slot of the attention (q, or Phi's fused qkv).
  int in_linears_of_attention() const { return find(Role::Q) >= 0 ? find(Role::Q) : find(Role::QKV); }
  // What an HF tensor name of the block refers to: a norm's or a linear's weight or bias (slot −1: none).
  struct TensorSlot {
    bool is_norm = false, is_bias = false;
    int slot = -1;
  };
  TensorSlot tensor_slot(const std::string& name) const;
  // The linear slots reading each point, in slot order.
  std::vector<int> readers(int point) const;
  // GPTQ's order: the quantized slots of each point in forward order (true-sequential; the experts of a
  // MoE in two groups, their inputs and their mids), or all quantized slots at once.
  std::vector<std::vector<int>> sequential_groups(bool true_sequential) const;
  // The points the given linear slots read, each once, in block order.
  std::vector<int> input_points(const std::vector<int>& slots) const;
  // Every HF tensor name of the block with its shape: the norms, then the linears (slot order).
  std::vector<std::pair<std::string, std::vector<int64_t>>> tensors() const;
  // Every HF tensor name of the block in file order (GGUF: each sub-layer's norm, then its linears;
  // the per-head q/k norms after v, before o).
  std::vector<std::string> file_order_names() const;
  int64_t max_point_width() const;
};

struct ModelConfig;
// Fills c.blocks: one BlockSpec per layer from c.arch and the hyperparameters. Called by the config
// readers once every field is set.
void derive_block_specs(ModelConfig& c);

}  // namespace quantllm
