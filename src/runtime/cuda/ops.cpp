// The CUDA block ops (see ops.h).
#include "runtime/cuda/ops.h"

#include "runtime/cuda/kernels.h"
#include "runtime/forward.h"

#include <algorithm>
#include <cmath>

namespace quantllm::cuda {

void upload_tensor(const Context& ctx, const Tensor& t, DeviceArray<float>& dst) {
  if (t.empty()) {
    dst.release();
    return;
  }
  if (dst.size() != t.numel()) dst = DeviceArray<float>(t.numel(), "block weights");
  ctx.upload(dst.data(), t.ptr(), size_t(t.numel()) * sizeof(float));
}

DeviceBlock upload_block(const Context& ctx, const BlockWeights& w) {
  DeviceBlock d;
  d.linear.resize(w.linear.size());
  for (size_t l = 0; l < w.linear.size(); ++l) {
    upload_tensor(ctx, w.linear[l].w, d.linear[l].w);
    upload_tensor(ctx, w.linear[l].b, d.linear[l].b);
    d.linear[l].out = w.linear[l].w.dim(0);
    d.linear[l].in = w.linear[l].w.dim(1);
  }
  d.norm.resize(w.norm.size());
  for (size_t n = 0; n < w.norm.size(); ++n) {
    upload_tensor(ctx, w.norm[n].w, d.norm[n].w);
    upload_tensor(ctx, w.norm[n].b, d.norm[n].b);
  }
  return d;
}

Ops::Ops(const Context& ctx, const ModelConfig& c, int64_t seq_len, Math math)
    : ctx_(ctx), c_(c), T_(seq_len), math_(math) {
  QL_ASSERT(seq_len > 0);
  // Score matrices of at most ~256 MiB at once (one window at least).
  const int64_t per_seq = c.n_heads * seq_len * seq_len * int64_t(sizeof(float));
  seqs_per_attention_ = std::max<int64_t>(1, (int64_t(256) << 20) / per_seq);
}

void Ops::linear(const DeviceLinear& l, const float* x, int64_t rows, float* y, bool exact) const {
  QL_ASSERT(l.w.size() == l.out * l.in && l.out > 0);
  ctx_.gemm(false, true, rows, l.out, l.in, 1.0f, x, l.in, l.w.data(), l.in, 0.0f, y, l.out, exact ? Math::FP32 : math_);
  if (!l.b.empty()) k::add_bias(y, l.b.data(), rows, l.out, ctx_.stream());
}

Act Ops::scratch(Scratch id, int64_t rows, int64_t cols) {
  DeviceArray<float>& b = scratch_[size_t(id)];
  b.reserve(rows * cols, "block activations");
  return Act{b.data(), rows, cols};
}

void Ops::norm_rows(const NormSlot& n, const DeviceNorm& w, const float* x, int64_t rows, float* y) const {
  // In place is safe: each row's values are read into the block's sums before any is written.
  if (n.kind == NormKind::LayerNorm)
    k::layer_norm(x, w.w.data(), w.b.data(), y, rows, n.width, c_.norm_eps, ctx_.stream());
  else
    k::rms_norm(x, w.w.data(), y, rows, n.width, c_.norm_eps, n.gain_offset, ctx_.stream());
}

void Ops::norm(int slot, Act x, Act y) {
  const NormSlot& n = spec_->norms[size_t(slot)];
  QL_ASSERT(x.cols == n.width && y.cols == n.width && x.rows == y.rows);
  norm_rows(n, w_->norm[size_t(slot)], x.p, x.rows, y.p);
}

void Ops::head_norm(int slot, Act x) {
  const NormSlot& n = spec_->norms[size_t(slot)];
  QL_ASSERT(x.cols % n.width == 0);
  norm_rows(n, w_->norm[size_t(slot)], x.p, x.rows * (x.cols / n.width), x.p);
}

void Ops::linears(std::span<const int> slots, Act x, std::span<const Act> ys) {
  QL_ASSERT(slots.size() == ys.size());
  for (size_t i = 0; i < slots.size(); ++i) {
    const DeviceLinear& l = w_->linear[size_t(slots[i])];
    QL_ASSERT(x.cols == l.in && ys[i].cols == l.out && ys[i].rows == x.rows);
    // A MoE router's logits decide which experts a token reaches: in fp32 products whatever the block's
    // math, so near-ties fall as on the CPU (the router is n_experts × hidden: a negligible cost).
    linear(l, x.p, x.rows, ys[i].p, spec_->linears[size_t(slots[i])].role == Role::Router);
  }
}

const Ops::RopeTable& Ops::rope_table(const Sublayer& sl) {
  for (const RopeTable& t : rope_)
    if (t.theta == sl.rope_theta && t.scaled == sl.rope_scaled) return t;
  // The CPU's table (runtime/cpu/ops.cpp rope_table): angle in float32, cos/sin in double.
  if (c_.rope_scaling == RopeScaling::LongRope && T_ > c_.rope_original_max_positions)
    fail("positions past original_max_position_embeddings ({}) take longrope's long factors, which quantllm does "
         "not apply yet: use a context of at most {} tokens", c_.rope_original_max_positions, c_.rope_original_max_positions);
  const std::vector<double> inv = rope_inv_freq(c_, sl);
  const int64_t half = c_.rope_dim() / 2;
  std::vector<float> cs(size_t(T_ * half)), sn(size_t(T_ * half));
  for (int64_t t = 0; t < T_; ++t)
    for (int64_t i = 0; i < half; ++i) {
      const float angle = float(t) * float(inv[size_t(i)]);
      cs[size_t(t * half + i)] = float(std::cos(double(angle))) * float(c_.rope_attn_factor);  // longrope's factor
      sn[size_t(t * half + i)] = float(std::sin(double(angle))) * float(c_.rope_attn_factor);
    }
  rope_.push_back({sl.rope_theta, sl.rope_scaled, to_device(ctx_, cs, "RoPE table"), to_device(ctx_, sn, "RoPE table")});
  return rope_.back();
}

void Ops::rope(int sublayer, Act x, const Step& step) {
  QL_ASSERT(step.pos0 == 0 && !step.cache && step.seq_len == T_, "the GPU runs whole windows from position 0");
  const int64_t hd = c_.head_dim;
  const RopeTable& t = rope_table(spec_->sublayers[size_t(sublayer)]);
  k::rope(x.p, t.cos.data(), t.sin.data(), x.rows, x.cols, T_, x.cols / hd, hd, c_.rope_dim(), ctx_.stream());
}

void Ops::attention(int sublayer, Act q, Act k, Act v, Act att, const Step& step) {
  QL_ASSERT(step.pos0 == 0 && !step.cache && step.seq_len == T_, "the GPU runs whole windows from position 0");
  const Sublayer& sl = spec_->sublayers[size_t(sublayer)];
  const int64_t T = T_, n_seq = step.n_seq, hd = c_.head_dim, nh = c_.n_heads, group = c_.n_heads / c_.n_kv_heads;
  const int64_t q_dim = q.cols, kv_dim = k.cols;
  // Pointer arrays for every (window, head) at once — one upload — then rounds of sb windows whose
  // score matrices [sb·heads, T, T] are materialized together. Entries [0, total): S = Q Kᵀ into the
  // round's score slot; entries [total, 2·total): O = P V from that slot into att.
  const int64_t sb = std::min(seqs_per_attention_, n_seq), total = n_seq * nh;
  scores_.reserve(sb * nh * T * T, "attention scores");
  ptr_a_.reserve(2 * total, "pointers");
  ptr_b_.reserve(2 * total, "pointers");
  ptr_c_.reserve(2 * total, "pointers");
  std::vector<const float*> pa(size_t(2 * total)), pb(size_t(2 * total));
  std::vector<float*> pc(size_t(2 * total));
  for (int64_t i = 0; i < total; ++i) {
    const int64_t s = i / nh, hh = i % nh, kvh = hh / group;
    float* sc = scores_.data() + (i % (sb * nh)) * T * T;
    pa[size_t(i)] = q.p + s * T * q_dim + hh * hd;
    pb[size_t(i)] = k.p + s * T * kv_dim + kvh * hd;
    pc[size_t(i)] = sc;
    pa[size_t(total + i)] = sc;
    pb[size_t(total + i)] = v.p + s * T * kv_dim + kvh * hd;
    pc[size_t(total + i)] = att.p + s * T * q_dim + hh * hd;
  }
  ctx_.upload(ptr_a_.data(), pa.data(), pa.size() * sizeof(float*));
  ctx_.upload(ptr_b_.data(), pb.data(), pb.size() * sizeof(float*));
  ctx_.upload(ptr_c_.data(), pc.data(), pc.size() * sizeof(float*));
  const float scale = float(sl.scale);
  for (int64_t s0 = 0; s0 < n_seq; s0 += sb) {
    const int64_t e0 = s0 * nh, nb = std::min(sb, n_seq - s0) * nh;
    ctx_.gemm_batched(false, true, T, T, hd, scale, ptr_a_.data() + e0, q_dim, ptr_b_.data() + e0, kv_dim, 0.0f,
                      ptr_c_.data() + e0, T, nb, math_);
    k::causal_softmax(scores_.data(), nb, T, sl.window, float(sl.softcap), ctx_.stream());
    ctx_.gemm_batched(false, false, T, hd, T, 1.0f, ptr_a_.data() + total + e0, T, ptr_b_.data() + total + e0, kv_dim,
                      0.0f, ptr_c_.data() + total + e0, q_dim, nb, math_);
  }
}

void Ops::activate(int sublayer, Act gate, Act up) {
  const Sublayer& s = spec_->sublayers[size_t(sublayer)];
  const int64_t n = up.numel();
  if (s.act == FfnKind::GatedSiLU) {
    QL_ASSERT(gate.numel() == n);
    k::silu_mul(up.p, gate.p, n, ctx_.stream());
  } else if (s.act == FfnKind::GatedGeluTanh) {
    QL_ASSERT(gate.numel() == n);
    k::gelu_tanh_mul(up.p, gate.p, n, ctx_.stream());
  } else if (s.act == FfnKind::ReLU) {
    k::relu(up.p, n, ctx_.stream());
  } else {
    k::gelu(up.p, n, ctx_.stream());
  }
}

void Ops::add(Act x, Act y) {
  QL_ASSERT(x.numel() == y.numel());
  k::add_inplace(x.p, y.p, x.numel(), ctx_.stream());
}

void Ops::copy(Act from, Act to) {
  QL_ASSERT(from.numel() == to.numel());
  if (from.p != to.p)
    QL_CUDA(cudaMemcpyAsync(to.p, from.p, size_t(from.numel()) * sizeof(float), cudaMemcpyDeviceToDevice, ctx_.stream()));
}

void Ops::copy_cols(Act from, int64_t col0, Act to) {
  QL_ASSERT(from.rows == to.rows && col0 >= 0 && col0 + to.cols <= from.cols);
  if (from.rows == 0) return;
  QL_CUDA(cudaMemcpy2DAsync(to.p, size_t(to.cols) * sizeof(float), from.p + col0, size_t(from.cols) * sizeof(float),
                            size_t(to.cols) * sizeof(float), size_t(from.rows), cudaMemcpyDeviceToDevice, ctx_.stream()));
}

void Ops::to_host(Act x, float* host) { ctx_.download(host, x.p, size_t(x.numel()) * sizeof(float)); }

void Ops::gather_rows(Act x, std::span<const int32_t> rows, Act out) {
  QL_ASSERT(out.rows == int64_t(rows.size()) && out.cols == x.cols);
  if (rows.empty()) return;
  rows_.reserve(int64_t(rows.size()), "MoE rows");
  ctx_.upload(rows_.data(), rows.data(), rows.size() * sizeof(int32_t));
  k::gather_rows(x.p, rows_.data(), int64_t(rows.size()), x.cols, out.p, ctx_.stream());
}

void Ops::scatter_add_rows(Act y, std::span<const int32_t> rows, std::span<const float> weights, Act out) {
  QL_ASSERT(y.rows == int64_t(rows.size()) && weights.size() == rows.size() && y.cols == out.cols);
  if (rows.empty()) return;
  rows_.reserve(int64_t(rows.size()), "MoE rows");
  weights_.reserve(int64_t(weights.size()), "MoE weights");
  ctx_.upload(rows_.data(), rows.data(), rows.size() * sizeof(int32_t));
  ctx_.upload(weights_.data(), weights.data(), weights.size() * sizeof(float));
  k::scatter_add_rows(y.p, rows_.data(), weights_.data(), int64_t(rows.size()), y.cols, out.p, ctx_.stream());
}

void Ops::zero(Act x) { QL_CUDA(cudaMemsetAsync(x.p, 0, size_t(x.numel()) * sizeof(float), ctx_.stream())); }

}  // namespace quantllm::cuda
