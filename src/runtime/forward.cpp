// The generic decoder block and the model around it, in fp32 on the CPU. Matrix products go to BLAS;
// norms, RoPE and attention are threaded loops over rows / (sequence, head) pairs.
#include "runtime/forward.h"

#include "core/error.h"
#include "core/threads.h"
#include "quant/blas_single_thread.h"
#include "runtime/cpu/qmatrix.h"

#include <cblas.h>
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
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

LinearInput linear_input_of(Linear l) {
  switch (l) {
    case Linear::Q:
    case Linear::K:
    case Linear::V: return LinearInput::AttnIn;
    case Linear::O: return LinearInput::AttnOut;
    case Linear::Gate:
    case Linear::Up: return LinearInput::FfnIn;
    case Linear::Down: return LinearInput::FfnMid;
  }
  QL_ASSERT(false);
  __builtin_unreachable();
}

int64_t linear_input_width(const ModelConfig& c, LinearInput which) {
  switch (which) {
    case LinearInput::AttnIn: return c.linear_in(Linear::Q);
    case LinearInput::AttnOut: return c.linear_in(Linear::O);
    case LinearInput::FfnIn: return c.linear_in(Linear::Up);
    case LinearInput::FfnMid: return c.linear_in(Linear::Down);
  }
  QL_ASSERT(false);
  __builtin_unreachable();
}

KVCache::KVCache(const ModelConfig& c, int64_t cap) : capacity(cap) {
  for (int64_t i = 0; i < c.n_layers; ++i) {
    k.emplace_back(Shape{cap, c.kv_dim()});
    v.emplace_back(Shape{cap, c.kv_dim()});
  }
}

std::vector<double> rope_inv_freq(const ModelConfig& c) {
  std::vector<double> inv = rope_base_inv_freq(c);
  const size_t half = inv.size();
  if (!c.rope_freq_factors.empty()) {  // from a GGUF file: llama.cpp's per-frequency divisors
    QL_ASSERT(c.rope_freq_factors.size() == half, "rope_freqs has {} values, head_dim / 2 is {}",
              c.rope_freq_factors.size(), half);
    for (size_t i = 0; i < half; ++i) inv[i] /= double(c.rope_freq_factors[i]);
  } else if (c.rope_scaling == RopeScaling::Linear) {
    for (auto& f : inv) f /= c.rope_factor;
  } else if (c.rope_scaling == RopeScaling::Llama3) {
    const std::vector<double> div = llama3_rope_freq_factors(c);
    for (size_t i = 0; i < half; ++i) inv[i] /= div[i];
  }
  return inv;
}

namespace {

// out[r] = norm(x[r]) for every row; LayerNorm when b is given (bias may be empty for RMSNorm).
void normalize(const ModelConfig& c, const NormWeights& nw, const Tensor& x, Tensor& out) {
  const int64_t rows = x.numel() / c.hidden, d = c.hidden;
  out.shape = x.shape;
  out.data.resize(x.data.size());
  const bool layer_norm = c.arch->norm == NormKind::LayerNorm;
  parallel_for(rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xi = x.row(r);
      float* yi = out.row(r);
      if (layer_norm) {
        double mean = 0, var = 0;
        for (int64_t j = 0; j < d; ++j) mean += xi[j];
        mean /= double(d);
        for (int64_t j = 0; j < d; ++j) var += (xi[j] - mean) * (xi[j] - mean);
        var /= double(d);
        const float inv = float(1.0 / std::sqrt(var + c.norm_eps));
        const float m = float(mean);
        for (int64_t j = 0; j < d; ++j) yi[j] = (xi[j] - m) * inv * nw.w.data[size_t(j)] + nw.b.data[size_t(j)];
      } else {
        double ss = 0;
        for (int64_t j = 0; j < d; ++j) ss += double(xi[j]) * xi[j];
        const float inv = float(1.0 / std::sqrt(ss / double(d) + c.norm_eps));
        for (int64_t j = 0; j < d; ++j) yi[j] = nw.w.data[size_t(j)] * (xi[j] * inv);
      }
    }
  }, 16);
}

// RoPE's cos/sin table [seq_len, half] for positions pos0 … pos0 + seq_len − 1. The last table made on
// a thread is kept: every layer's q and k rotate the same positions (the double-precision sin/cos of a
// 512-token prompt's 16 tables were 2% of its time).
struct RopeTable {
  std::vector<double> inv;
  int64_t pos0 = -1, seq_len = 0;
  std::vector<float> cs, sn;
};
const RopeTable& rope_table(const ModelConfig& c, int64_t pos0, int64_t seq_len) {
  thread_local RopeTable t;
  std::vector<double> inv = rope_inv_freq(c);
  if (t.pos0 == pos0 && t.seq_len == seq_len && t.inv == inv) return t;
  const int64_t half = c.head_dim / 2;
  QL_ASSERT(int64_t(inv.size()) >= half);
  t.cs.resize(size_t(seq_len * half));
  t.sn.resize(size_t(seq_len * half));
  for (int64_t p = 0; p < seq_len; ++p)
    for (int64_t i = 0; i < half; ++i) {
      // HF multiplies position and inv_freq in float32 before cos/sin.
      const float angle = float(pos0 + p) * float(inv[size_t(i)]);
      t.cs[size_t(p * half + i)] = float(std::cos(double(angle)));
      t.sn[size_t(p * half + i)] = float(std::sin(double(angle)));
    }
  t.inv = std::move(inv), t.pos0 = pos0, t.seq_len = seq_len;
  return t;
}

// Rotate-half RoPE (Hugging Face convention: pairs (i, i + head_dim/2)) on x [n_seq*T, n_heads*head_dim].
void apply_rope(const ModelConfig& c, Tensor& x, int64_t n_heads, int64_t n_seq, int64_t seq_len, int64_t pos0) {
  const int64_t hd = c.head_dim, half = hd / 2;
  const RopeTable& table = rope_table(c, pos0, seq_len);
  const std::vector<float>& cs = table.cs;
  const std::vector<float>& sn = table.sn;
  parallel_for(n_seq * seq_len, [&](int64_t r0, int64_t r1) {
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

// Causal attention. q: [n_seq*T, q_dim]; keys/values of sequence s start at k_of(s, 0) / v_of(s, 0),
// one position every kv_dim floats; out: [n_seq*T, q_dim]. Each (sequence, head) task does two
// single-threaded sgemm calls — S = Q·Kᵀ [T, n_ctx] and O = P·V [T, hd] — with the mask and the
// softmax between them; the tasks run in parallel, so results do not depend on the thread count.
template <typename KAt, typename VAt>
void attention(const ModelConfig& c, const Tensor& q, int64_t n_seq, int64_t seq_len, int64_t past, KAt k_of,
               VAt v_of, Tensor& out) {
  const int64_t hd = c.head_dim, n_heads = c.n_heads, group = c.n_heads / c.n_kv_heads;
  const int64_t n_ctx = past + seq_len, kv_dim = c.kv_dim(), q_dim = c.q_dim();
  const float scale = float(1.0 / std::sqrt(double(hd)));
  const double t_start = g_profiling ? now_seconds() : 0;
  out = Tensor(Shape{n_seq * seq_len, q_dim});
  SingleThreadedBlas one_thread;
  // Queries in chunks of kChunk rows, each against the keys its last row can see: the causal mask
  // leaves the rest zero, so the half of S and of P·V above the diagonal is never computed.
  // A few query rows (token-by-token generation) go through sgemv instead: sgemm would copy K and V
  // into its panels for every row.
  constexpr int64_t kChunk = 64, kMaxVectorRows = 4;
  const cpu::SoftmaxFn softmax = cpu::kernels().softmax;
  parallel_for(n_seq * n_heads, [&](int64_t t0, int64_t t1) {
    std::vector<float> scores(static_cast<size_t>(std::min(kChunk, seq_len) * n_ctx));  // [chunk, keys]
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t s = task / n_heads, h = task % n_heads, kvh = h / group;
      const float* kh = k_of(s, 0) + kvh * hd;
      const float* vh = v_of(s, 0) + kvh * hd;
      if (seq_len <= kMaxVectorRows) {  // generation: matrix-vector products, no packing of K and V
        for (int64_t t = 0; t < seq_len; ++t) {
          const int64_t pos = past + t, keys = pos + 1;
          const int64_t lo = c.sliding_window > 0 ? std::max<int64_t>(0, pos - c.sliding_window + 1) : 0;
          float* row = scores.data();
          cblas_sgemv(CblasRowMajor, CblasNoTrans, int(keys), int(hd), scale, kh, int(kv_dim),
                      q.row(s * seq_len + t) + h * hd, 1, 0.0f, row, 1);
          softmax(row, lo, keys, keys);
          cblas_sgemv(CblasRowMajor, CblasTrans, int(keys), int(hd), 1.0f, vh, int(kv_dim), row, 1, 0.0f,
                      out.row(s * seq_len + t) + h * hd, 1);
        }
        continue;
      }
      for (int64_t c0 = 0; c0 < seq_len; c0 += kChunk) {
        const int64_t rows = std::min(kChunk, seq_len - c0), keys = past + c0 + rows;
        const float* qh = q.row(s * seq_len + c0) + h * hd;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(rows), int(keys), int(hd), scale, qh, int(q_dim), kh,
                    int(kv_dim), 0.0f, scores.data(), int(keys));
        for (int64_t t = 0; t < rows; ++t) {
          const int64_t pos = past + c0 + t;  // attends to positions [lo, pos]
          const int64_t lo = c.sliding_window > 0 ? std::max<int64_t>(0, pos - c.sliding_window + 1) : 0;
          softmax(scores.data() + t * keys, lo, pos + 1, keys);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(rows), int(hd), int(keys), 1.0f, scores.data(),
                    int(keys), vh, int(kv_dim), 0.0f, out.row(s * seq_len + c0) + h * hd, int(q_dim));
      }
    }
  });
  if (g_profiling) {
    g_profile.attention_seconds += now_seconds() - t_start;
    g_profile.attention_flops += 4.0 * double(n_seq * n_heads) * double(seq_len) * double(n_ctx) * double(hd);
  }
}

void add_inplace(Tensor& x, const Tensor& y) {
  QL_ASSERT(x.numel() == y.numel());
  float* a = x.ptr();
  const float* b = y.ptr();
  parallel_for(x.numel(), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) a[i] += b[i];
  }, 1 << 14);
}

}  // namespace

void linear(const Tensor& x, const LinearWeights& w, Tensor& y) {
  const double t0 = g_profiling ? now_seconds() : 0;
  struct Account {  // adds this call's time on every return path
    double t0;
    double flops;
    ~Account() {
      if (g_profiling) g_profile.linear_seconds += now_seconds() - t0, g_profile.linear_flops += flops;
    }
  } account{t0, 2.0 * double(x.numel()) * double(w.packed ? w.packed->rows : w.w.dim(0))};
  const int64_t in = w.packed ? w.packed->cols : w.w.dim(1), out = w.packed ? w.packed->rows : w.w.dim(0);
  QL_ASSERT(x.shape.back() == in, "linear: input width {} != weight in {}", x.shape.back(), in);
  const int64_t rows = x.numel() / in;
  y.shape = {rows, out};
  y.data.resize(size_t(rows * out));
  if (w.packed) {
    cpu::qmatmul(*w.packed, x.ptr(), rows, y.ptr(), w.b.empty() ? nullptr : w.b.ptr());
    return;
  }
  if (!w.b.empty()) {
    for (int64_t r = 0; r < rows; ++r) std::copy(w.b.data.begin(), w.b.data.end(), y.row(r));
  }
  if (rows <= 4) {  // generation: matrix-vector products (sgemm would repack all of W for one row)
    for (int64_t r = 0; r < rows; ++r)
      cblas_sgemv(CblasRowMajor, CblasNoTrans, int(out), int(in), 1.0f, w.w.ptr(), int(in), x.row(r), 1,
                  w.b.empty() ? 0.0f : 1.0f, y.row(r), 1);
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
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(nr), int(out), int(in), 1.0f, x.row(r0), int(in),
                  w.w.ptr(), int(in), w.b.empty() ? 0.0f : 1.0f, y.row(r0), int(out));
    }
  });
}

// y_i = x · W_iᵀ (+ b_i) for several layers on one input: one qmatmul_many when every weight is
// packed (in generation, one threaded pass for all of them), else one linear each.
void linear_many(const Tensor& x, std::initializer_list<std::pair<const LinearWeights*, Tensor*>> layers) {
  bool packed = true;
  for (const auto& [w, y] : layers) packed = packed && w->packed;
  if (!packed) {
    for (const auto& [w, y] : layers) linear(x, *w, *y);
    return;
  }
  const double t0 = g_profiling ? now_seconds() : 0;
  std::vector<cpu::QMatmulJob> jobs;
  double flops = 0;
  for (const auto& [w, y] : layers) {
    const int64_t in = w->packed->cols, out = w->packed->rows;
    QL_ASSERT(x.shape.back() == in, "linear: input width {} != weight in {}", x.shape.back(), in);
    const int64_t rows = x.numel() / in;
    y->shape = {rows, out};
    y->data.resize(size_t(rows * out));
    jobs.push_back({w->packed.get(), y->ptr(), w->b.empty() ? nullptr : w->b.ptr()});
    flops += 2.0 * double(x.numel()) * double(out);
  }
  cpu::qmatmul_many(jobs, x.ptr(), x.numel() / x.shape.back());
  if (g_profiling) g_profile.linear_seconds += now_seconds() - t0, g_profile.linear_flops += flops;
}

Tensor embed(const ModelConfig& c, const GlobalWeights& g, const std::vector<int32_t>& tokens, int64_t n_seq,
             int64_t seq_len, int64_t pos0) {
  QL_ASSERT(int64_t(tokens.size()) == n_seq * seq_len);
  const int64_t e = c.word_embed_proj_dim;
  Tensor x(Shape{n_seq * seq_len, e});
  for (int64_t r = 0; r < n_seq * seq_len; ++r) {
    const int32_t id = tokens[size_t(r)];
    if (id < 0 || id >= c.vocab) fail("token id {} is outside the vocabulary (size {})", id, c.vocab);
    if (g.embed_packed) cpu::qmatrix_row(*g.embed_packed, id, x.row(r));
    else std::copy_n(g.embed.row(id), e, x.row(r));
  }
  if (!g.project_in.empty()) {
    Tensor y;
    linear(x, LinearWeights{g.project_in, {}, {}}, y);
    x = std::move(y);
  }
  if (c.arch->pos == PosKind::Learned) {
    const int64_t off = c.arch->position_offset;
    if (pos0 + seq_len > c.max_positions)
      fail("sequence of {} positions exceeds the model's {} learned positions", pos0 + seq_len, c.max_positions);
    for (int64_t r = 0; r < n_seq * seq_len; ++r) {
      const float* p = g.positions.row(pos0 + r % seq_len + off);
      float* xr = x.row(r);
      for (int64_t j = 0; j < c.hidden; ++j) xr[j] += p[j];
    }
  }
  return x;
}

Tensor attention_mix(const ModelConfig& c, const BlockWeights& w, int layer, const Tensor& h, int64_t n_seq,
                     int64_t seq_len, KVCache* cache, int64_t pos0) {
  QL_ASSERT(h.numel() == n_seq * seq_len * c.hidden);
  QL_ASSERT(!cache || n_seq == 1);
  const int64_t past = cache ? cache->length : 0;
  if (cache) pos0 = past;
  if (cache && past + seq_len > cache->capacity) fail("context of {} tokens is full", cache->capacity);
  Tensor q, k, v;
  // q [rows, q_dim], k and v [rows, kv_dim]
  linear_many(h, {{&w[Linear::Q], &q}, {&w[Linear::K], &k}, {&w[Linear::V], &v}});
  if (c.arch->pos == PosKind::RoPE) {
    apply_rope(c, q, c.n_heads, n_seq, seq_len, pos0);
    apply_rope(c, k, c.n_kv_heads, n_seq, seq_len, pos0);
  }
  Tensor att;
  if (cache) {
    Tensor& kc = cache->k[size_t(layer)];
    Tensor& vc = cache->v[size_t(layer)];
    std::copy(k.data.begin(), k.data.end(), kc.row(past));
    std::copy(v.data.begin(), v.data.end(), vc.row(past));
    attention(c, q, 1, seq_len, past, [&](int64_t, int64_t p) { return kc.row(p); },
              [&](int64_t, int64_t p) { return vc.row(p); }, att);
  } else {
    attention(c, q, n_seq, seq_len, 0, [&](int64_t s, int64_t p) { return k.row(s * seq_len + p); },
              [&](int64_t s, int64_t p) { return v.row(s * seq_len + p); }, att);
  }
  return att;
}

Tensor ffn_mix(const ModelConfig& c, const BlockWeights& w, const Tensor& h) {
  Tensor up;  // [rows, ffn]
  if (c.arch->ffn == FfnKind::GatedSiLU) {
    Tensor gate;
    linear_many(h, {{&w[Linear::Up], &up}, {&w[Linear::Gate], &gate}});
    const cpu::SiluMulFn silu_mul = cpu::kernels().silu_mul;
    parallel_for(up.numel(), [&](int64_t i0, int64_t i1) {
      silu_mul(up.data.data() + i0, gate.data.data() + i0, i1 - i0);
    }, 1 << 14);
  } else if (c.arch->ffn == FfnKind::ReLU) {
    linear(h, w[Linear::Up], up);
    for (auto& u : up.data) u = std::max(u, 0.0f);
  } else {
    linear(h, w[Linear::Up], up);
    for (auto& u : up.data) u = 0.5f * u * (1.0f + std::erf(u * float(std::numbers::sqrt2 / 2)));
  }
  return up;
}

Tensor attention_sublayer(const ModelConfig& c, const BlockWeights& w, const Tensor& h, int64_t n_seq,
                          int64_t seq_len) {
  const Tensor att = attention_mix(c, w, 0, h, n_seq, seq_len);
  Tensor o;
  linear(att, w[Linear::O], o);
  return o;
}

Tensor ffn_sublayer(const ModelConfig& c, const BlockWeights& w, const Tensor& h) {
  const Tensor mid = ffn_mix(c, w, h);
  Tensor y;
  linear(mid, w[Linear::Down], y);
  return y;
}

bool block_forward(const ModelConfig& c, const BlockWeights& w, int layer, Tensor& x, int64_t n_seq,
                   int64_t seq_len, BlockObserver* observer, KVCache* cache, int64_t pos0) {
  QL_ASSERT(x.numel() == n_seq * seq_len * c.hidden);
  QL_ASSERT(!cache || n_seq == 1);

  // --- attention ---
  Tensor h;
  if (c.norm_before) normalize(c, w.attn_norm, x, h);
  else h = x;
  if (observer && !observer->observe(layer, LinearInput::AttnIn, h)) return false;
  const Tensor att = attention_mix(c, w, layer, h, n_seq, seq_len, cache, pos0);
  if (observer && !observer->observe(layer, LinearInput::AttnOut, att)) return false;
  Tensor o;
  linear(att, w[Linear::O], o);
  add_inplace(x, o);
  if (!c.norm_before) {  // OPT post-LN
    Tensor t;
    normalize(c, w.attn_norm, x, t);
    x = std::move(t);
  }

  // --- feed-forward ---
  if (c.norm_before) normalize(c, w.ffn_norm, x, h);
  else h = x;
  if (observer && !observer->observe(layer, LinearInput::FfnIn, h)) return false;
  const Tensor mid = ffn_mix(c, w, h);
  if (observer && !observer->observe(layer, LinearInput::FfnMid, mid)) return false;
  Tensor down;
  linear(mid, w[Linear::Down], down);
  add_inplace(x, down);
  if (!c.norm_before) {
    Tensor t;
    normalize(c, w.ffn_norm, x, t);
    x = std::move(t);
  }
  return true;
}

Tensor head(const ModelConfig& c, const GlobalWeights& g, const Tensor& x, int64_t row0, int64_t rows) {
  Tensor part(Shape{rows, c.hidden});
  std::copy_n(x.row(row0), rows * c.hidden, part.ptr());
  if (c.final_norm) {
    Tensor t;
    normalize(c, g.final_norm, part, t);
    part = std::move(t);
  }
  if (!g.project_out.empty()) {
    Tensor t;
    linear(part, LinearWeights{g.project_out, {}, {}}, t);
    part = std::move(t);
  }
  Tensor logits;
  linear(part, LinearWeights{g.lm_head, {}, g.lm_head_packed}, logits);
  return logits;
}

Engine parse_engine(const std::string& name) {
  if (name == "fp32") return Engine::Fp32;
  if (name == "quant") return Engine::Quant;
  fail("--engine '{}' is not known (known: fp32, quant)", name);
}

FullModel::FullModel(const Model& m, Engine engine) : config_(m.config), engine_(engine) {
  const WeightSource& src = *m.weights;
  if (engine == Engine::Fp32) {
    globals_ = load_globals(config_, src);
    blocks_.reserve(size_t(config_.n_layers));
    for (int i = 0; i < config_.n_layers; ++i) blocks_.push_back(load_block(config_, src, i));
    return;
  }
  // Quant: packed where the kernels read the stored format; fp32 for the rest, counted by reason.
  std::map<std::string, int> fallbacks;
  auto pack = [&](const std::string& name) -> std::shared_ptr<const cpu::QMatrix> {
    std::string why;
    auto q = cpu::make_qmatrix(src, name, m.weights, &why);
    if (!q) ++fallbacks[why];
    return q;
  };
  const ArchSpec& a = *config_.arch;
  globals_ = load_globals(config_, src, /*embed_and_head=*/false);
  const std::string embed_name = std::string(a.embed_tokens) + ".weight";
  globals_.embed_packed = pack(embed_name);
  if (!globals_.embed_packed) globals_.embed = src.load(embed_name);
  if (config_.tied_embeddings) {
    globals_.lm_head_packed = globals_.embed_packed;
    if (!globals_.embed_packed) globals_.lm_head = globals_.embed;
  } else {
    const std::string head_name = std::string(a.lm_head) + ".weight";
    globals_.lm_head_packed = pack(head_name);
    if (!globals_.lm_head_packed) globals_.lm_head = src.load(head_name);
  }
  blocks_.reserve(size_t(config_.n_layers));
  for (int i = 0; i < config_.n_layers; ++i) {
    BlockWeights b = load_block(config_, src, i, /*linear_weights=*/false);
    for (int l = 0; l < kNumLinear; ++l) {
      const auto lin = Linear(l);
      if (!config_.has_linear(lin)) continue;
      const std::string name = config_.linear_tensor(i, lin) + ".weight";
      b[lin].packed = pack(name);
      if (!b[lin].packed) b[lin].w = src.load(name);
    }
    blocks_.push_back(std::move(b));
  }
  for (const auto& [why, count] : fallbacks)
    fmt::print(stderr, "quantllm: note: {} weight(s) computed in fp32: {}\n", count, why);
}

void FullModel::forward(const std::vector<int32_t>& tokens, int64_t n_seq, int64_t seq_len,
                        const std::function<void(int64_t, const Tensor&)>& on_logits) const {
  Tensor x = embed(config_, globals_, tokens, n_seq, seq_len);
  for (int i = 0; i < config_.n_layers; ++i) block_forward(config_, blocks_[size_t(i)], i, x, n_seq, seq_len);
  for (int64_t s = 0; s < n_seq; ++s) on_logits(s, head(config_, globals_, x, s * seq_len, seq_len));
}

std::vector<float> FullModel::step(const std::vector<int32_t>& tokens, KVCache& cache) const {
  const int64_t n = int64_t(tokens.size());
  QL_ASSERT(n > 0);
  Tensor x = embed(config_, globals_, tokens, 1, n, cache.length);
  for (int i = 0; i < config_.n_layers; ++i) block_forward(config_, blocks_[size_t(i)], i, x, 1, n, nullptr, &cache);
  cache.length += n;
  Tensor logits = head(config_, globals_, x, n - 1, 1);
  return logits.data;
}

}  // namespace quantllm
