// The decoder block on the GPU (see block.h).
#include "runtime/cuda/block.h"

#include "runtime/cuda/kernels.h"

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

DeviceBlock upload_block(const Context& ctx, const ModelConfig& c, const BlockWeights& w) {
  DeviceBlock d;
  for (int l = 0; l < kNumLinear; ++l) {
    const auto lin = Linear(l);
    if (!c.has_linear(lin)) continue;
    upload_tensor(ctx, w[lin].w, d[lin].w);
    upload_tensor(ctx, w[lin].b, d[lin].b);
    d[lin].out = w[lin].w.dim(0);
    d[lin].in = w[lin].w.dim(1);
  }
  upload_tensor(ctx, w.attn_norm.w, d.attn_norm.w);
  upload_tensor(ctx, w.attn_norm.b, d.attn_norm.b);
  upload_tensor(ctx, w.ffn_norm.w, d.ffn_norm.w);
  upload_tensor(ctx, w.ffn_norm.b, d.ffn_norm.b);
  return d;
}

BlockForward::BlockForward(const Context& ctx, const ModelConfig& c, int64_t seq_len, Math math)
    : ctx_(ctx), c_(c), T_(seq_len), math_(math) {
  QL_ASSERT(seq_len > 0);
  // Score matrices of at most ~256 MiB at once (one window at least).
  const int64_t per_seq = c.n_heads * seq_len * seq_len * int64_t(sizeof(float));
  seqs_per_attention_ = std::max<int64_t>(1, (int64_t(256) << 20) / per_seq);
  if (c.arch->pos == PosKind::RoPE) {
    // The CPU's table (runtime/forward.cpp apply_rope): angle in float32, cos/sin in double.
    const std::vector<double> inv = rope_inv_freq(c);
    const int64_t half = c.head_dim / 2;
    std::vector<float> cs(size_t(seq_len * half)), sn(size_t(seq_len * half));
    for (int64_t t = 0; t < seq_len; ++t)
      for (int64_t i = 0; i < half; ++i) {
        const float angle = float(t) * float(inv[size_t(i)]);
        cs[size_t(t * half + i)] = float(std::cos(double(angle)));
        sn[size_t(t * half + i)] = float(std::sin(double(angle)));
      }
    cos_ = to_device(ctx, cs, "RoPE table");
    sin_ = to_device(ctx, sn, "RoPE table");
  }
}

void BlockForward::linear(const DeviceLinear& l, const float* x, int64_t rows, float* y) const {
  QL_ASSERT(l.w.size() == l.out * l.in && l.out > 0);
  ctx_.gemm(false, true, rows, l.out, l.in, 1.0f, x, l.in, l.w.data(), l.in, 0.0f, y, l.out, math_);
  if (!l.b.empty()) k::add_bias(y, l.b.data(), rows, l.out, ctx_.stream());
}

void BlockForward::norm(const DeviceNorm& n, const float* x, int64_t rows, float* y) const {
  if (c_.arch->norm == NormKind::LayerNorm)
    k::layer_norm(x, n.w.data(), n.b.data(), y, rows, c_.hidden, c_.norm_eps, ctx_.stream());
  else
    k::rms_norm(x, n.w.data(), y, rows, c_.hidden, c_.norm_eps, ctx_.stream());
}

void BlockForward::attn_input(const DeviceBlock& w, const float* x, int64_t rows, float* h) const {
  if (c_.norm_before) norm(w.attn_norm, x, rows, h);
  else QL_CUDA(cudaMemcpyAsync(h, x, size_t(rows * c_.hidden) * sizeof(float), cudaMemcpyDeviceToDevice, ctx_.stream()));
}

void BlockForward::ffn_input(const DeviceBlock& w, const float* x, int64_t rows, float* h) const {
  if (c_.norm_before) norm(w.ffn_norm, x, rows, h);
  else QL_CUDA(cudaMemcpyAsync(h, x, size_t(rows * c_.hidden) * sizeof(float), cudaMemcpyDeviceToDevice, ctx_.stream()));
}

void BlockForward::attention_mix(const DeviceBlock& w, const float* h, int64_t n_seq, float* att) {
  const int64_t T = T_, rows = n_seq * T, hd = c_.head_dim, nh = c_.n_heads, group = c_.n_heads / c_.n_kv_heads;
  const int64_t q_dim = c_.q_dim(), kv_dim = c_.kv_dim();
  q_.reserve(rows * q_dim, "attention q");
  k_.reserve(rows * kv_dim, "attention k");
  v_.reserve(rows * kv_dim, "attention v");
  linear(w[Linear::Q], h, rows, q_.data());  // [rows, q_dim]
  linear(w[Linear::K], h, rows, k_.data());  // [rows, kv_dim]
  linear(w[Linear::V], h, rows, v_.data());  // [rows, kv_dim]
  if (c_.arch->pos == PosKind::RoPE) {
    k::rope(q_.data(), cos_.data(), sin_.data(), rows, q_dim, T, nh, hd, ctx_.stream());
    k::rope(k_.data(), cos_.data(), sin_.data(), rows, kv_dim, T, c_.n_kv_heads, hd, ctx_.stream());
  }
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
    pa[size_t(i)] = q_.data() + s * T * q_dim + hh * hd;
    pb[size_t(i)] = k_.data() + s * T * kv_dim + kvh * hd;
    pc[size_t(i)] = sc;
    pa[size_t(total + i)] = sc;
    pb[size_t(total + i)] = v_.data() + s * T * kv_dim + kvh * hd;
    pc[size_t(total + i)] = att + s * T * q_dim + hh * hd;
  }
  ctx_.upload(ptr_a_.data(), pa.data(), pa.size() * sizeof(float*));
  ctx_.upload(ptr_b_.data(), pb.data(), pb.size() * sizeof(float*));
  ctx_.upload(ptr_c_.data(), pc.data(), pc.size() * sizeof(float*));
  const float scale = float(1.0 / std::sqrt(double(hd)));
  for (int64_t s0 = 0; s0 < n_seq; s0 += sb) {
    const int64_t e0 = s0 * nh, nb = std::min(sb, n_seq - s0) * nh;
    ctx_.gemm_batched(false, true, T, T, hd, scale, ptr_a_.data() + e0, q_dim, ptr_b_.data() + e0, kv_dim, 0.0f,
                      ptr_c_.data() + e0, T, nb, math_);
    k::causal_softmax(scores_.data(), nb, T, c_.sliding_window, ctx_.stream());
    ctx_.gemm_batched(false, false, T, hd, T, 1.0f, ptr_a_.data() + total + e0, T, ptr_b_.data() + total + e0, kv_dim,
                      0.0f, ptr_c_.data() + total + e0, q_dim, nb, math_);
  }
}

void BlockForward::ffn_mix(const DeviceBlock& w, const float* h, int64_t rows, float* mid) {
  linear(w[Linear::Up], h, rows, mid);  // [rows, ffn]
  const int64_t n = rows * c_.ffn;
  if (c_.arch->ffn == FfnKind::GatedSiLU) {
    gate_.reserve(n, "ffn gate");
    linear(w[Linear::Gate], h, rows, gate_.data());
    k::silu_mul(mid, gate_.data(), n, ctx_.stream());
  } else if (c_.arch->ffn == FfnKind::ReLU) {
    k::relu(mid, n, ctx_.stream());
  } else {
    k::gelu(mid, n, ctx_.stream());
  }
}

void BlockForward::attn_residual(const DeviceBlock& w, float* x, const float* att, int64_t rows) {
  tmp_.reserve(rows * c_.hidden, "residual");
  linear(w[Linear::O], att, rows, tmp_.data());
  k::add_inplace(x, tmp_.data(), rows * c_.hidden, ctx_.stream());
  if (!c_.norm_before) {  // OPT post-LN
    norm(w.attn_norm, x, rows, tmp_.data());
    QL_CUDA(cudaMemcpyAsync(x, tmp_.data(), size_t(rows * c_.hidden) * sizeof(float), cudaMemcpyDeviceToDevice,
                            ctx_.stream()));
  }
}

void BlockForward::ffn_residual(const DeviceBlock& w, float* x, const float* mid, int64_t rows) {
  tmp_.reserve(rows * c_.hidden, "residual");
  linear(w[Linear::Down], mid, rows, tmp_.data());
  k::add_inplace(x, tmp_.data(), rows * c_.hidden, ctx_.stream());
  if (!c_.norm_before) {
    norm(w.ffn_norm, x, rows, tmp_.data());
    QL_CUDA(cudaMemcpyAsync(x, tmp_.data(), size_t(rows * c_.hidden) * sizeof(float), cudaMemcpyDeviceToDevice,
                            ctx_.stream()));
  }
}

bool BlockForward::forward(const DeviceBlock& w, float* x, int64_t n_seq, const DeviceObserver& obs) {
  const int64_t rows = n_seq * T_;
  h_.reserve(rows * c_.hidden, "block input");
  attn_input(w, x, rows, h_.data());
  if (obs && !obs(LinearInput::AttnIn, h_.data(), rows)) return false;
  att_.reserve(rows * c_.q_dim(), "attention output");
  attention_mix(w, h_.data(), n_seq, att_.data());
  if (obs && !obs(LinearInput::AttnOut, att_.data(), rows)) return false;
  attn_residual(w, x, att_.data(), rows);
  ffn_input(w, x, rows, h_.data());
  if (obs && !obs(LinearInput::FfnIn, h_.data(), rows)) return false;
  mid_.reserve(rows * c_.ffn, "ffn activations");
  ffn_mix(w, h_.data(), rows, mid_.data());
  if (obs && !obs(LinearInput::FfnMid, mid_.data(), rows)) return false;
  ffn_residual(w, x, mid_.data(), rows);
  return true;
}

}  // namespace quantllm::cuda
