// The model around the decoder blocks on the CPU (see forward.h): embeddings, the head, and FullModel,
// which runs its blocks through the block interpreter (runtime/block.h) over the CPU ops.
#include "runtime/forward.h"

#include "core/error.h"
#include "runtime/cpu/ops.h"
#include "runtime/cpu/qmatrix.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace quantllm {

KVCache::KVCache(const ModelConfig& c, int64_t cap) : capacity(cap) {
  for (int64_t i = 0; i < c.n_layers; ++i) {
    k.emplace_back(Shape{cap, c.kv_dim()});
    v.emplace_back(Shape{cap, c.kv_dim()});
  }
}

std::vector<double> rope_inv_freq(const ModelConfig& c, const Sublayer& s) {
  if (!s.rope_scaled) return rope_base_inv_freq(c, s.rope_theta);
  QL_ASSERT(s.rope_theta == c.rope_theta);
  return rope_inv_freq(c);
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
  } else if (c.rope_scaling == RopeScaling::LongRope) {
    // The short factors: every context here is within original_max_position_embeddings (checked where
    // windows are made); transformers switches to the long ones only past it.
    QL_ASSERT(c.rope_short_factor.size() == half);
    for (size_t i = 0; i < half; ++i) inv[i] /= c.rope_short_factor[i];
  }
  return inv;
}

namespace {
void linear_ref(const Tensor& x, const cpu::LinearRef& ref, Tensor& y) {
  QL_ASSERT(x.shape.back() == ref.in(), "linear: input width {} != weight in {}", x.shape.back(), ref.in());
  const int64_t rows = x.numel() / ref.in();
  y.shape = {rows, ref.out()};
  y.data.resize(size_t(rows * ref.out()));
  cpu::linear(ref, x.ptr(), rows, y.ptr());
}
}  // namespace

void linear(const Tensor& x, const LinearWeights& w, Tensor& y) { linear_ref(x, cpu::LinearRef{&w.w, &w.b, nullptr}, y); }
void linear(const Tensor& x, const Tensor& w, Tensor& y) { linear_ref(x, cpu::LinearRef{&w, nullptr, nullptr}, y); }

namespace {
Act act_of(Tensor& t) { return Act{t.ptr(), t.dim(0), t.dim(-1)}; }
Act act_of(const Tensor& t) { return Act{const_cast<float*>(t.ptr()), t.dim(0), t.dim(-1)}; }
}  // namespace

Tensor embed(const ModelConfig& c, const GlobalWeights& g, const std::vector<int32_t>& tokens, int64_t n_seq,
             int64_t seq_len, int64_t pos0, const cpu::QMatrix* embed_packed) {
  QL_ASSERT(int64_t(tokens.size()) == n_seq * seq_len);
  const int64_t e = c.word_embed_proj_dim;
  Tensor x(Shape{n_seq * seq_len, e});
  for (int64_t r = 0; r < n_seq * seq_len; ++r) {
    const int32_t id = tokens[size_t(r)];
    if (id < 0 || id >= c.vocab) fail("token id {} is outside the vocabulary (size {})", id, c.vocab);
    if (embed_packed) cpu::qmatrix_row(*embed_packed, id, x.row(r));
    else std::copy_n(g.embed.row(id), e, x.row(r));
  }
  if (c.arch->embed_scale_sqrt_hidden) {  // Gemma: × √hidden, the factor rounded to fp32 as transformers keeps it
    const float scale = float(std::sqrt(double(c.hidden)));
    for (float& v : x.data) v *= scale;
  }
  if (!g.project_in.empty()) {
    Tensor y;
    linear(x, g.project_in, y);
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

bool block_forward(const ModelConfig& c, const BlockWeights& w, int layer, Tensor& x, int64_t n_seq,
                   int64_t seq_len, PointObserver* observer) {
  QL_ASSERT(x.numel() == n_seq * seq_len * c.hidden);
  cpu::Scratch scratch;
  cpu::Ops ops(c, c.block(layer), w, scratch);
  return run_block(ops, c.block(layer), act_of(x), Step{n_seq, seq_len, 0, nullptr, layer}, observer);
}

Tensor sublayer_output(const ModelConfig& c, const BlockWeights& w, int layer, int s, const Tensor& h, int64_t n_seq,
                       int64_t seq_len) {
  cpu::Scratch scratch;
  cpu::Ops ops(c, c.block(layer), w, scratch);
  Tensor y(Shape{h.dim(0), c.hidden});
  quantllm::sublayer_output(ops, c.block(layer), s, act_of(h), act_of(y), Step{n_seq, seq_len, 0, nullptr, layer});
  return y;
}

Tensor head(const ModelConfig& c, const GlobalWeights& g, const Tensor& x, int64_t row0, int64_t rows,
            const cpu::QMatrix* lm_head_packed) {
  Tensor part(Shape{rows, c.hidden});
  std::copy_n(x.row(row0), rows * c.hidden, part.ptr());
  if (c.final_norm)
    cpu::normalize(c.arch->norm, g.final_norm.w, g.final_norm.b, c.norm_eps, part.ptr(), rows, c.hidden, part.ptr(),
                   c.arch->norm_gain_offset);
  if (!g.project_out.empty()) {
    Tensor t;
    linear(part, g.project_out, t);
    part = std::move(t);
  }
  const cpu::LinearRef ref{&g.lm_head, nullptr, lm_head_packed};
  Tensor logits(Shape{rows, ref.out()});
  cpu::linear(ref, part.ptr(), rows, logits.ptr());
  if (c.final_softcap > 0) {  // Gemma 2
    const float cap = float(c.final_softcap);
    for (float& v : logits.data) v = cap * std::tanh(v / cap);
  }
  return logits;
}

Engine parse_engine(const std::string& name) {
  if (name == "fp32") return Engine::Fp32;
  if (name == "quant") return Engine::Quant;
  fail("--engine '{}' is not known (known: fp32, quant)", name);
}

FullModel::FullModel(const LoadedModel& m, Engine engine) : config_(m.config), engine_(engine) {
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
  embed_packed_ = pack(embed_name);
  if (!embed_packed_) globals_.embed = src.load(embed_name);
  if (config_.tied_embeddings) {
    lm_head_packed_ = embed_packed_;
    if (!embed_packed_) globals_.lm_head = globals_.embed;
  } else {
    const std::string head_name = std::string(a.lm_head) + ".weight";
    lm_head_packed_ = pack(head_name);
    if (!lm_head_packed_) globals_.lm_head = src.load(head_name);
  }
  blocks_.reserve(size_t(config_.n_layers));
  packed_.resize(size_t(config_.n_layers));
  for (int i = 0; i < config_.n_layers; ++i) {
    const BlockSpec& spec = config_.block(i);
    BlockWeights b = load_block(config_, src, i, /*linear_weights=*/false);
    auto& packed = packed_[size_t(i)];
    packed.resize(spec.linears.size());
    for (size_t l = 0; l < spec.linears.size(); ++l) {
      const std::string name = spec.linear_tensor(int(l)) + ".weight";
      packed[l] = pack(name);
      if (!packed[l]) b.linear[l].w = src.load(name);
    }
    blocks_.push_back(std::move(b));
  }
  for (const auto& [why, count] : fallbacks)
    fmt::print(stderr, "quantllm: note: {} weight(s) computed in fp32: {}\n", count, why);
}

namespace {
// x through every block of the model (the quantized engine's packed matrices where it has them).
void run_blocks(const ModelConfig& c, const std::vector<BlockWeights>& blocks,
                const std::vector<std::vector<std::shared_ptr<const cpu::QMatrix>>>& packed, Tensor& x, Step step) {
  cpu::Scratch scratch;
  for (int i = 0; i < c.n_layers; ++i) {
    step.layer = i;
    cpu::Ops ops(c, c.block(i), blocks[size_t(i)], scratch, packed.empty() ? nullptr : &packed[size_t(i)]);
    run_block(ops, c.block(i), act_of(x), step);
  }
}
}  // namespace

void FullModel::forward(const std::vector<int32_t>& tokens, int64_t n_seq, int64_t seq_len,
                        const std::function<void(int64_t, const Tensor&)>& on_logits) const {
  Tensor x = embed(config_, globals_, tokens, n_seq, seq_len, 0, embed_packed_.get());
  run_blocks(config_, blocks_, packed_, x, Step{n_seq, seq_len, 0, nullptr, 0});
  for (int64_t s = 0; s < n_seq; ++s)
    on_logits(s, head(config_, globals_, x, s * seq_len, seq_len, lm_head_packed_.get()));
}

std::vector<float> FullModel::step(const std::vector<int32_t>& tokens, KVCache& cache) const {
  const int64_t n = int64_t(tokens.size());
  QL_ASSERT(n > 0);
  Tensor x = embed(config_, globals_, tokens, 1, n, cache.length, embed_packed_.get());
  run_blocks(config_, blocks_, packed_, x, Step{1, n, cache.length, &cache, 0});
  cache.length += n;
  Tensor logits = head(config_, globals_, x, n - 1, 1, lm_head_packed_.get());
  return logits.data;
}

}  // namespace quantllm
