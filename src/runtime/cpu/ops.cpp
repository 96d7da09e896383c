// The CPU block ops (see ops.h). Matrix products go to BLAS or the packed-weight kernels; norms, RoPE
// and attention are threaded loops over rows / (window, head) pairs.
#include "runtime/cpu/ops.h"

#include "core/error.h"
#include "core/threads.h"
#include "quant/blas_single_thread.h"
#include "runtime/cpu/qmatrix.h"
#include "runtime/forward.h"

#include <cblas.h>
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numbers>

namespace quantllm {

namespace {
// The forward pass allocates and frees activation tensors of many MB per layer. glibc serves such
// blocks with mmap and unmaps them on free, so every layer paid page faults on fresh memory
// (a third of eval time in a profile). Keeping large blocks in the heap removes that cost.
const bool kMallocTuned = [] {
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  return true;
}();
bool g_profiling = false;
ForwardProfile g_profile;

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

void set_forward_profiling(bool on) {
  g_profiling = on;
  if (on) g_profile = {};
}
ForwardProfile forward_profile() { return g_profile; }

namespace cpu {

int64_t LinearRef::out() const { return packed ? packed->rows : w->dim(0); }
int64_t LinearRef::in() const { return packed ? packed->cols : w->dim(1); }

void linear(const LinearRef& w, const float* x, int64_t rows, float* y) {
  const int64_t in = w.in(), out = w.out();
  const double t0 = g_profiling ? now_seconds() : 0;
  struct Account {  // adds this call's time on every return path
    double t0;
    double flops;
    ~Account() {
      if (g_profiling) g_profile.linear_seconds += now_seconds() - t0, g_profile.linear_flops += flops;
    }
  } account{t0, 2.0 * double(rows * in) * double(out)};
  const bool bias = w.b && !w.b->empty();
  if (w.packed) {
    qmatmul(*w.packed, x, rows, y, bias ? w.b->ptr() : nullptr);
    return;
  }
  QL_ASSERT(w.w->dim(1) == in);
  if (bias) {
    for (int64_t r = 0; r < rows; ++r) std::copy(w.b->data.begin(), w.b->data.end(), y + r * out);
  }
  if (rows <= 4) {  // generation: matrix-vector products (sgemm would repack all of W for one row)
    for (int64_t r = 0; r < rows; ++r)
      cblas_sgemv(CblasRowMajor, CblasNoTrans, int(out), int(in), 1.0f, w.w->ptr(), int(in), x + r * in, 1,
                  bias ? 1.0f : 0.0f, y + r * out, 1);
    return;
  }
  // Fixed chunks of rows, each one single-threaded sgemm, spread over our threads: OpenBLAS's own
  // threading splits work differently for 1 and 2 threads and its results then differ in the last
  // bits, which made calibration (and so GPTQ's output) depend on the thread count.
  constexpr int64_t kChunk = 256;
  SingleThreadedBlas one_thread;
  parallel_for((rows + kChunk - 1) / kChunk, [&](int64_t c0, int64_t c1) {
    for (int64_t ch = c0; ch < c1; ++ch) {
      const int64_t r0 = ch * kChunk, nr = std::min(kChunk, rows - r0);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(nr), int(out), int(in), 1.0f, x + r0 * in, int(in),
                  w.w->ptr(), int(in), bias ? 1.0f : 0.0f, y + r0 * out, int(out));
    }
  });
}

void linears(std::span<const LinearRef> ws, const float* x, int64_t rows, std::span<float* const> ys) {
  QL_ASSERT(ws.size() == ys.size());
  bool packed = true;
  for (const LinearRef& w : ws) packed = packed && w.packed;
  if (!packed) {
    for (size_t i = 0; i < ws.size(); ++i) linear(ws[i], x, rows, ys[i]);
    return;
  }
  const double t0 = g_profiling ? now_seconds() : 0;
  std::vector<QMatmulJob> jobs;
  double flops = 0;
  for (size_t i = 0; i < ws.size(); ++i) {
    jobs.push_back({ws[i].packed, ys[i], ws[i].b && !ws[i].b->empty() ? ws[i].b->ptr() : nullptr});
    flops += 2.0 * double(rows * ws[i].in()) * double(ws[i].out());
  }
  qmatmul_many(jobs, x, rows);
  if (g_profiling) g_profile.linear_seconds += now_seconds() - t0, g_profile.linear_flops += flops;
}

void normalize(NormKind kind, const Tensor& w, const Tensor& b, double eps, const float* x, int64_t rows,
               int64_t d, float* y, float offset) {
  const bool layer_norm = kind == NormKind::LayerNorm;
  parallel_for(rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xi = x + r * d;
      float* yi = y + r * d;
      if (layer_norm) {
        double mean = 0, var = 0;
        for (int64_t j = 0; j < d; ++j) mean += xi[j];
        mean /= double(d);
        for (int64_t j = 0; j < d; ++j) var += (xi[j] - mean) * (xi[j] - mean);
        var /= double(d);
        const float inv = float(1.0 / std::sqrt(var + eps));
        const float m = float(mean);
        for (int64_t j = 0; j < d; ++j) yi[j] = (xi[j] - m) * inv * (offset + w.data[size_t(j)]) + b.data[size_t(j)];
      } else {
        double ss = 0;
        for (int64_t j = 0; j < d; ++j) ss += double(xi[j]) * xi[j];
        const float inv = float(1.0 / std::sqrt(ss / double(d) + eps));
        for (int64_t j = 0; j < d; ++j) yi[j] = (offset + w.data[size_t(j)]) * (xi[j] * inv);
      }
    }
  }, 16);
}

namespace {

// RoPE's cos/sin table [seq_len, half] for positions pos0 … pos0 + seq_len − 1. The last table made on
// a thread is kept: every layer's q and k rotate the same positions (the double-precision sin/cos of a
// 512-token prompt's 16 tables were 2% of its time).
struct RopeTable {
  std::vector<double> inv;
  int64_t pos0 = -1, seq_len = 0;
  float attn = 1;
  std::vector<float> cs, sn;
};
const RopeTable& rope_table(const ModelConfig& c, const Sublayer& sl, int64_t pos0, int64_t seq_len) {
  thread_local RopeTable t;
  if (c.rope_scaling == RopeScaling::LongRope && pos0 + seq_len > c.rope_original_max_positions)
    fail("positions past original_max_position_embeddings ({}) take longrope's long factors, which quantllm does "
         "not apply yet: use a context of at most {} tokens", c.rope_original_max_positions, c.rope_original_max_positions);
  std::vector<double> inv = rope_inv_freq(c, sl);
  const float attn = float(c.rope_attn_factor);  // longrope: cos and sin × the attention factor, in fp32 as HF
  if (t.pos0 == pos0 && t.seq_len == seq_len && t.inv == inv && t.attn == attn) return t;
  const int64_t half = c.rope_dim() / 2;
  QL_ASSERT(int64_t(inv.size()) >= half);
  t.cs.resize(size_t(seq_len * half));
  t.sn.resize(size_t(seq_len * half));
  for (int64_t p = 0; p < seq_len; ++p)
    for (int64_t i = 0; i < half; ++i) {
      // HF multiplies position and inv_freq in float32 before cos/sin.
      const float angle = float(pos0 + p) * float(inv[size_t(i)]);
      t.cs[size_t(p * half + i)] = float(std::cos(double(angle))) * attn;
      t.sn[size_t(p * half + i)] = float(std::sin(double(angle))) * attn;
    }
  t.inv = std::move(inv), t.pos0 = pos0, t.seq_len = seq_len, t.attn = attn;
  return t;
}

// Scores of one query row over keys [lo, hi), soft-capped (Gemma 2) when cap > 0.
void softcap_scores(float* row, int64_t lo, int64_t hi, double cap) {
  if (cap <= 0) return;
  const float c = float(cap);
  for (int64_t j = lo; j < hi; ++j) row[j] = c * std::tanh(row[j] / c);
}

// Causal attention with sub-layer sl's scale, soft-cap and window. q: [n_seq*T, q_dim]; keys/values of
// sequence s start at k_of(s, 0) / v_of(s, 0), one position every kv_dim floats; out: [n_seq*T, q_dim].
// Each (sequence, head) task does two
// single-threaded sgemm calls — S = Q·Kᵀ [T, n_ctx] and O = P·V [T, hd] — with the mask and the
// softmax between them; the tasks run in parallel, so results do not depend on the thread count.
template <typename KAt, typename VAt>
void attention(const ModelConfig& c, const Sublayer& sl, const float* q, int64_t n_seq, int64_t seq_len, int64_t past,
               KAt k_of, VAt v_of, float* out) {
  const int64_t hd = c.head_dim, n_heads = c.n_heads, group = c.n_heads / c.n_kv_heads;
  const int64_t n_ctx = past + seq_len, kv_dim = c.kv_dim(), q_dim = c.q_dim();
  const float scale = float(sl.scale);
  const int64_t window = sl.window;
  const double t_start = g_profiling ? now_seconds() : 0;
  SingleThreadedBlas one_thread;
  // Queries in chunks of kChunk rows, each against the keys its last row can see: the causal mask
  // leaves the rest zero, so the half of S and of P·V above the diagonal is never computed.
  // A few query rows (token-by-token generation) go through sgemv instead: sgemm would copy K and V
  // into its panels for every row.
  constexpr int64_t kChunk = 64, kMaxVectorRows = 4;
  const SoftmaxFn softmax = kernels().softmax;
  parallel_for(n_seq * n_heads, [&](int64_t t0, int64_t t1) {
    std::vector<float> scores(static_cast<size_t>(std::min(kChunk, seq_len) * n_ctx));  // [chunk, keys]
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t s = task / n_heads, h = task % n_heads, kvh = h / group;
      const float* kh = k_of(s, 0) + kvh * hd;
      const float* vh = v_of(s, 0) + kvh * hd;
      if (seq_len <= kMaxVectorRows) {  // generation: matrix-vector products, no packing of K and V
        for (int64_t t = 0; t < seq_len; ++t) {
          const int64_t pos = past + t, keys = pos + 1;
          const int64_t lo = window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
          float* row = scores.data();
          cblas_sgemv(CblasRowMajor, CblasNoTrans, int(keys), int(hd), scale, kh, int(kv_dim),
                      q + (s * seq_len + t) * q_dim + h * hd, 1, 0.0f, row, 1);
          softcap_scores(row, lo, keys, sl.softcap);
          softmax(row, lo, keys, keys);
          cblas_sgemv(CblasRowMajor, CblasTrans, int(keys), int(hd), 1.0f, vh, int(kv_dim), row, 1, 0.0f,
                      out + (s * seq_len + t) * q_dim + h * hd, 1);
        }
        continue;
      }
      for (int64_t c0 = 0; c0 < seq_len; c0 += kChunk) {
        const int64_t rows = std::min(kChunk, seq_len - c0), keys = past + c0 + rows;
        const float* qh = q + (s * seq_len + c0) * q_dim + h * hd;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(rows), int(keys), int(hd), scale, qh, int(q_dim), kh,
                    int(kv_dim), 0.0f, scores.data(), int(keys));
        for (int64_t t = 0; t < rows; ++t) {
          const int64_t pos = past + c0 + t;  // attends to positions [lo, pos]
          const int64_t lo = window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
          softcap_scores(scores.data() + t * keys, lo, pos + 1, sl.softcap);
          softmax(scores.data() + t * keys, lo, pos + 1, keys);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(rows), int(hd), int(keys), 1.0f, scores.data(),
                    int(keys), vh, int(kv_dim), 0.0f, out + (s * seq_len + c0) * q_dim + h * hd, int(q_dim));
      }
    }
  });
  if (g_profiling) {
    g_profile.attention_seconds += now_seconds() - t_start;
    g_profile.attention_flops += 4.0 * double(n_seq * n_heads) * double(seq_len) * double(n_ctx) * double(hd);
  }
}

}  // namespace

Act Ops::scratch(quantllm::Scratch id, int64_t rows, int64_t cols) {
  std::vector<float>& b = scratch_.buf[size_t(id)];
  if (int64_t(b.size()) < rows * cols) b.resize(size_t(rows * cols));
  return Act{b.data(), rows, cols};
}

void Ops::norm(int slot, Act x, Act y) {
  const NormSlot& n = spec_.norms[size_t(slot)];
  QL_ASSERT(x.cols == n.width && y.cols == n.width && x.rows == y.rows);
  const NormWeights& w = w_.norm[size_t(slot)];
  normalize(n.kind, w.w, w.b, c_.norm_eps, x.p, x.rows, n.width, y.p, n.gain_offset);
}

void Ops::head_norm(int slot, Act x) {
  const NormSlot& n = spec_.norms[size_t(slot)];
  QL_ASSERT(x.cols % n.width == 0);
  const NormWeights& w = w_.norm[size_t(slot)];
  // [rows, heads · head_dim] is [rows · heads, head_dim]
  normalize(n.kind, w.w, w.b, c_.norm_eps, x.p, x.rows * (x.cols / n.width), n.width, x.p, n.gain_offset);
}

LinearRef Ops::linear_ref(int slot) const {
  const LinearWeights& l = w_.linear[size_t(slot)];
  LinearRef r{&l.w, &l.b, nullptr};
  if (packed_ && (*packed_)[size_t(slot)]) r.packed = (*packed_)[size_t(slot)].get();
  return r;
}

void Ops::linears(std::span<const int> slots, Act x, std::span<const Act> ys) {
  QL_ASSERT(slots.size() == ys.size() && slots.size() <= 4);
  LinearRef refs[4];
  float* outs[4];
  for (size_t i = 0; i < slots.size(); ++i) {
    refs[i] = linear_ref(slots[i]);
    QL_ASSERT(x.cols == refs[i].in(), "linear {}: input width {} != weight in {}", spec_.linear_tensor(slots[i]),
              x.cols, refs[i].in());
    QL_ASSERT(ys[i].rows == x.rows && ys[i].cols == refs[i].out());
    outs[i] = ys[i].p;
  }
  cpu::linears(std::span(refs, slots.size()), x.p, x.rows, std::span(outs, slots.size()));
}

void Ops::rope(int sublayer, Act x, const Step& step) {
  // Rotate-half over the first rope_dim dims of each head (all of them but for Phi's partial rotary).
  const int64_t hd = c_.head_dim, half = c_.rope_dim() / 2, n_heads = x.cols / hd;
  const int64_t seq_len = step.seq_len;
  const int64_t pos0 = step.cache ? step.cache->length : step.pos0;
  const RopeTable& table = rope_table(c_, spec_.sublayers[size_t(sublayer)], pos0, seq_len);
  const std::vector<float>& cs = table.cs;
  const std::vector<float>& sn = table.sn;
  parallel_for(step.n_seq * seq_len, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t t = r % seq_len;
      const float* cr = &cs[size_t(t * half)];
      const float* sr = &sn[size_t(t * half)];
      for (int64_t h = 0; h < n_heads; ++h) {
        float* v = x.row(r) + h * hd;
        for (int64_t i = 0; i < half; ++i) {
          const float a = v[i], b = v[i + half];
          v[i] = a * cr[i] - b * sr[i];
          v[i + half] = b * cr[i] + a * sr[i];
        }
      }
    }
  }, 16);
}

void Ops::attention(int sublayer, Act q, Act k, Act v, Act out, const Step& step) {
  const Sublayer& sl = spec_.sublayers[size_t(sublayer)];
  const int64_t seq_len = step.seq_len;
  KVCache* cache = step.cache;
  if (!cache) {
    quantllm::cpu::attention(
        c_, sl, q.p, step.n_seq, seq_len, 0, [&](int64_t s, int64_t p) { return k.row(s * seq_len + p); },
        [&](int64_t s, int64_t p) { return v.row(s * seq_len + p); }, out.p);
    return;
  }
  QL_ASSERT(step.n_seq == 1);
  const int64_t past = cache->length;
  if (past + seq_len > cache->capacity) fail("context of {} tokens is full", cache->capacity);
  Tensor& kc = cache->k[size_t(step.layer)];
  Tensor& vc = cache->v[size_t(step.layer)];
  std::copy_n(k.p, k.numel(), kc.row(past));
  std::copy_n(v.p, v.numel(), vc.row(past));
  quantllm::cpu::attention(
      c_, sl, q.p, 1, seq_len, past, [&](int64_t, int64_t p) { return kc.row(p); },
      [&](int64_t, int64_t p) { return vc.row(p); }, out.p);
}

void Ops::activate(int sublayer, Act gate, Act up) {
  const Sublayer& s = spec_.sublayers[size_t(sublayer)];
  float* u = up.p;
  const int64_t n = up.numel();
  if (s.act == FfnKind::GatedSiLU) {
    QL_ASSERT(gate.numel() == n);
    const SiluMulFn silu_mul = kernels().silu_mul;
    parallel_for(n, [&](int64_t i0, int64_t i1) { silu_mul(u + i0, gate.p + i0, i1 - i0); }, 1 << 14);
  } else if (s.act == FfnKind::GatedGeluTanh) {
    QL_ASSERT(gate.numel() == n);
    const float* g = gate.p;
    parallel_for(n, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) u[i] *= gelu_tanh(g[i]);
    }, 1 << 14);
  } else if (s.act == FfnKind::ReLU) {
    for (int64_t i = 0; i < n; ++i) u[i] = std::max(u[i], 0.0f);
  } else {
    for (int64_t i = 0; i < n; ++i) u[i] = 0.5f * u[i] * (1.0f + std::erf(u[i] * float(std::numbers::sqrt2 / 2)));
  }
}

void Ops::add(Act x, Act y) {
  QL_ASSERT(x.numel() == y.numel());
  float* a = x.p;
  const float* b = y.p;
  parallel_for(x.numel(), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) a[i] += b[i];
  }, 1 << 14);
}

void Ops::copy(Act from, Act to) {
  QL_ASSERT(from.numel() == to.numel());
  if (from.p != to.p) std::copy_n(from.p, from.numel(), to.p);
}

void Ops::copy_cols(Act from, int64_t col0, Act to) {
  QL_ASSERT(from.rows == to.rows && col0 >= 0 && col0 + to.cols <= from.cols);
  parallel_for(from.rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) std::copy_n(from.row(r) + col0, to.cols, to.row(r));
  }, 64);
}

void Ops::to_host(Act x, float* host) { std::copy_n(x.p, x.numel(), host); }

void Ops::gather_rows(Act x, std::span<const int32_t> rows, Act out) {
  QL_ASSERT(out.rows == int64_t(rows.size()) && out.cols == x.cols);
  parallel_for(int64_t(rows.size()), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) std::copy_n(x.row(rows[size_t(i)]), x.cols, out.row(i));
  }, 64);
}

void Ops::scatter_add_rows(Act y, std::span<const int32_t> rows, std::span<const float> weights, Act out) {
  QL_ASSERT(y.rows == int64_t(rows.size()) && weights.size() == rows.size() && y.cols == out.cols);
  parallel_for(int64_t(rows.size()), [&](int64_t i0, int64_t i1) {  // rows are distinct: no two tasks share one
    for (int64_t i = i0; i < i1; ++i) {
      float* o = out.row(rows[size_t(i)]);
      const float* v = y.row(i);
      const float w = weights[size_t(i)];
      for (int64_t j = 0; j < y.cols; ++j) o[j] += w * v[j];
    }
  }, 64);
}

void Ops::zero(Act x) { std::fill_n(x.p, x.numel(), 0.0f); }

}  // namespace cpu
}  // namespace quantllm
