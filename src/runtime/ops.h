// The ops a device provides for one decoder block: the interface between the block interpreter
// (runtime/block.h, which knows the block's layout from its BlockSpec) and a backend, which knows
// how to compute (cpu/ops.cpp: threaded loops, BLAS and the ISA kernels; cuda/ops.cpp: cuBLAS and
// kernels). An ops object is bound to one block's weights; the interpreter names them by slot.
//
// Activations are Act views: [rows, cols] fp32, row-major, in the device's memory (host memory on the
// CPU). Rows are tokens, whole windows of seq_len tokens each (Step).
#pragma once

#include <cstdint>
#include <span>

namespace quantllm {

struct KVCache;

struct Act {
  float* p = nullptr;
  int64_t rows = 0, cols = 0;
  float* row(int64_t r) const { return p + r * cols; }
  int64_t numel() const { return rows * cols; }
};

// How the rows of a call are laid out: n_seq windows of seq_len tokens starting at position pos0
// (0 for calibration and evaluation). Generation passes a KV cache (n_seq = 1): the new keys and
// values are appended at cache->length and attention covers the cached ones.
struct Step {
  int64_t n_seq = 1, seq_len = 0, pos0 = 0;
  KVCache* cache = nullptr;
  int layer = 0;  // the block's index (its cache entry)
};

// Scratch buffers the interpreter asks for by purpose; a backend keeps them between calls.
enum class Scratch { H, Q, K, V, Mid, Gate, Out, Router, ExpertIn, ExpertOut, Fused, kCount };

class BlockOps {
 public:
  virtual ~BlockOps() = default;
  // A buffer for rows × cols values (contents undefined), kept until the next request of the same id.
  virtual Act scratch(Scratch id, int64_t rows, int64_t cols) = 0;
  // y = norm_slot(x) row by row; y may be x.
  virtual void norm(int slot, Act x, Act y) = 0;
  // The per-head norm `slot` (width head_dim) on x [rows, heads · head_dim], in place.
  virtual void head_norm(int slot, Act x) = 0;
  // ys[i] = x · W_{slots[i]}ᵀ (+ bias) for linears that read the same input.
  virtual void linears(std::span<const int> slots, Act x, std::span<const Act> ys) = 0;
  // Rotary embedding (rotate-half) of x [rows, heads · head_dim] at the positions of `step`, in place,
  // with attention sub-layer `sublayer`'s RoPE base and scaling.
  virtual void rope(int sublayer, Act x, const Step& step) = 0;
  // out = causal softmax(cap(q kᵀ · scale)) v per head (grouped-query) with sub-layer `sublayer`'s scale,
  // soft-cap and sliding window; q/out [rows, q_dim], k/v [rows, kv_dim].
  virtual void attention(int sublayer, Act q, Act k, Act v, Act out, const Step& step) = 0;
  // The feed-forward activation of sub-layer `sublayer`: up ← act(gate) ⊙ up (gated), or act(up).
  virtual void activate(int sublayer, Act gate, Act up) = 0;
  // x += y
  virtual void add(Act x, Act y) = 0;
  // to = from (same shape)
  virtual void copy(Act from, Act to) = 0;
  // to[r, j] = from[r, col0 + j]: a block of columns (the parts of a fused projection's output)
  virtual void copy_cols(Act from, int64_t col0, Act to) = 0;

  // --- mixture of experts: the routing is decided on the host (runtime/moe.h) ---
  // x's values into host memory (x.numel() floats).
  virtual void to_host(Act x, float* host) = 0;
  // out[i] = x[rows[i]] (out: [rows.size(), x.cols])
  virtual void gather_rows(Act x, std::span<const int32_t> rows, Act out) = 0;
  // out[rows[i]] += weights[i] · y[i]; rows distinct (y: [rows.size(), out.cols])
  virtual void scatter_add_rows(Act y, std::span<const int32_t> rows, std::span<const float> weights, Act out) = 0;
  // x = 0
  virtual void zero(Act x) = 0;
};

}  // namespace quantllm
