// A naive reference forward pass of the synthetic checkpoints (support/synthetic.h): plain loops in
// double precision, written straight from the transformers modeling code of each family (Llama,
// Mistral, Qwen2, Qwen3, OPT, Gemma 2/3), independent of the library's block interpreter. x is row-major
// [T, width].
#pragma once

#include "support/synthetic.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numbers>
#include <string>
#include <vector>

namespace quantllm::test {

using Rows = std::vector<double>;

// y[T, out] = x[T, in] · Wᵀ + b, W as stored by transformers: [out, in].
inline Rows ref_linear(const Rows& x, int64_t T, const test::HostTensor& w, const test::HostTensor* b) {
  const int64_t out = w.shape[0], in = w.shape[1];
  EXPECT_EQ(int64_t(x.size()), T * in);
  Rows y(size_t(T * out));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t o = 0; o < out; ++o) {
      double acc = b ? double(b->v[size_t(o)]) : 0.0;
      for (int64_t i = 0; i < in; ++i) acc += x[size_t(t * in + i)] * double(w.v[size_t(o * in + i)]);
      y[size_t(t * out + o)] = acc;
    }
  return y;
}

// Gemma's RMSNorm applies 1 + w: offset 1.
inline Rows ref_rms_norm(const Rows& x, int64_t T, const test::HostTensor& w, double eps, double offset = 0) {
  const int64_t d = w.shape[0];
  Rows y(x.size());
  for (int64_t t = 0; t < T; ++t) {
    double ss = 0;
    for (int64_t j = 0; j < d; ++j) ss += x[size_t(t * d + j)] * x[size_t(t * d + j)];
    const double inv = 1.0 / std::sqrt(ss / double(d) + eps);
    for (int64_t j = 0; j < d; ++j) y[size_t(t * d + j)] = (offset + double(w.v[size_t(j)])) * x[size_t(t * d + j)] * inv;
  }
  return y;
}

inline Rows ref_layer_norm(const Rows& x, int64_t T, const test::HostTensor& w, const test::HostTensor& b) {
  const int64_t d = w.shape[0];
  Rows y(x.size());
  for (int64_t t = 0; t < T; ++t) {
    double mean = 0, var = 0;
    for (int64_t j = 0; j < d; ++j) mean += x[size_t(t * d + j)];
    mean /= double(d);
    for (int64_t j = 0; j < d; ++j) var += (x[size_t(t * d + j)] - mean) * (x[size_t(t * d + j)] - mean);
    var /= double(d);
    const double inv = 1.0 / std::sqrt(var + 1e-5);  // torch.nn.LayerNorm's default eps
    for (int64_t j = 0; j < d; ++j)
      y[size_t(t * d + j)] = (x[size_t(t * d + j)] - mean) * inv * double(w.v[size_t(j)]) + double(b.v[size_t(j)]);
  }
  return y;
}

// RoPE inverse frequencies, transformers' _compute_default_rope_parameters and
// _compute_llama3_parameters: low frequencies (wavelength beyond original/low_freq_factor) are divided
// by the factor, high ones (below original/high_freq_factor) kept, and the band between interpolated.
inline std::vector<double> ref_inv_freq(const SyntheticSpec& s, double theta = 0) {
  const int64_t dh = s.rot();  // the rotated dims (Phi's partial rotary: fewer than head_dim)
  if (theta <= 0) theta = s.rope_theta;
  std::vector<double> f;
  for (int64_t i = 0; i < dh; i += 2) f.push_back(1.0 / std::pow(theta, double(i) / double(dh)));
  if (!s.longrope_short.empty()) {  // transformers' _compute_longrope_parameters, contexts within the original
    for (size_t i = 0; i < f.size(); ++i) f[i] /= s.longrope_short[i];
    return f;
  }
  if (!s.llama3) return f;
  const auto& l = *s.llama3;
  const double low_wavelen = double(l.original_max_positions) / l.low_freq_factor;
  const double high_wavelen = double(l.original_max_positions) / l.high_freq_factor;
  for (double& x : f) {
    const double wavelen = 2 * std::numbers::pi / x;
    if (wavelen < high_wavelen) continue;
    if (wavelen > low_wavelen) {
      x /= l.factor;
      continue;
    }
    const double smooth =
        (double(l.original_max_positions) / wavelen - l.low_freq_factor) / (l.high_freq_factor - l.low_freq_factor);
    x = (1 - smooth) * x / l.factor + smooth * x;
  }
  return f;
}

// Rotate-half RoPE on [T, n_heads * dh] at positions 0..T-1, over the first s.rot() dims of each head.
inline void ref_rope(Rows& x, int64_t T, int64_t n_heads, const SyntheticSpec& s, double theta = 0) {
  const int64_t dh = s.dh(), half = s.rot() / 2;
  const auto f = ref_inv_freq(s, theta);
  // longrope scales cos and sin by √(1 + ln(max / original) / ln(original)) (max = max_position_embeddings)
  double m = 1;
  if (!s.longrope_short.empty() && s.max_positions > s.longrope_original)
    m = std::sqrt(1 + std::log(double(s.max_positions) / double(s.longrope_original)) / std::log(double(s.longrope_original)));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < n_heads; ++h) {
      double* v = &x[size_t((t * n_heads + h) * dh)];
      for (int64_t i = 0; i < half; ++i) {
        const double c = m * std::cos(double(t) * f[size_t(i)]), sn = m * std::sin(double(t) * f[size_t(i)]);
        const double a = v[i], b = v[i + half];
        v[i] = a * c - b * sn;
        v[i + half] = b * c + a * sn;
      }
    }
}

// Causal softmax attention; query head h reads key/value head h / (n_heads / n_kv). A query at t sees
// keys t - window + 1 .. t when window > 0 (transformers' sliding-window mask), else 0 .. t. Scores are
// q·k · scale (default 1/√dh), then soft-capped (Gemma 2: cap · tanh(score / cap)) when softcap > 0.
inline Rows ref_attention(const Rows& q, const Rows& k, const Rows& v, int64_t T, int64_t n_heads, int64_t n_kv, int64_t dh,
                   int64_t window, double scale = 0, double softcap = 0) {
  if (scale <= 0) scale = 1.0 / std::sqrt(double(dh));
  Rows out(size_t(T * n_heads * dh), 0.0);
  for (int64_t h = 0; h < n_heads; ++h) {
    const int64_t g = h / (n_heads / n_kv);
    for (int64_t t = 0; t < T; ++t) {
      const int64_t lo = window > 0 ? std::max<int64_t>(0, t - window + 1) : 0;
      std::vector<double> p;
      double mx = -INFINITY;
      for (int64_t j = lo; j <= t; ++j) {
        double sdot = 0;
        for (int64_t d = 0; d < dh; ++d) sdot += q[size_t((t * n_heads + h) * dh + d)] * k[size_t((j * n_kv + g) * dh + d)];
        double sc = sdot * scale;
        if (softcap > 0) sc = softcap * std::tanh(sc / softcap);
        p.push_back(sc);
        mx = std::max(mx, p.back());
      }
      double sum = 0;
      for (double& e : p) sum += (e = std::exp(e - mx));
      for (int64_t j = lo; j <= t; ++j)
        for (int64_t d = 0; d < dh; ++d)
          out[size_t((t * n_heads + h) * dh + d)] += p[size_t(j - lo)] / sum * v[size_t((j * n_kv + g) * dh + d)];
    }
  }
  return out;
}

inline const test::HostTensor* maybe(const TensorMap& t, const std::string& name) {
  const auto it = t.find(name);
  return it == t.end() ? nullptr : &it->second;
}

// What a linear of a block reads: (layer, its name relative to the block prefix: "self_attn.q_proj", its input [T, in]).
using LinearInputObserver = std::function<void(int64_t layer, const std::string& linear, const Rows& x)>;

// A sparse MoE feed-forward on h [T, hidden]: softmax of the router's logits, the experts_used most
// probable experts per token (renormalized when norm_topk; always for Mixtral), each expert a SwiGLU MLP
// run on that token alone, outputs weighted and summed. lin(x, name) applies the block's linear `name`.
template <typename Lin>
Rows ref_moe(const Rows& h, int64_t T, const SyntheticSpec& s, const Lin& lin) {
  const bool mixtral = s.family == Family::Mixtral;
  const std::string m = mixtral ? "block_sparse_moe." : "mlp.";
  const int64_t d = s.hidden, E = s.experts;
  const Rows logits = lin(h, m + "gate");
  Rows out(h.size(), 0.0);
  for (int64_t t = 0; t < T; ++t) {
    std::vector<double> p(static_cast<size_t>(E));
    double mx = -INFINITY, sum = 0;
    for (int64_t e = 0; e < E; ++e) mx = std::max(mx, logits[size_t(t * E + e)]);
    for (int64_t e = 0; e < E; ++e) sum += (p[size_t(e)] = std::exp(logits[size_t(t * E + e)] - mx));
    for (double& v : p) v /= sum;
    std::vector<int64_t> order(static_cast<size_t>(E));
    for (int64_t e = 0; e < E; ++e) order[size_t(e)] = e;
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return p[size_t(a)] > p[size_t(b)]; });
    double kept = 0;
    for (int64_t i = 0; i < s.experts_used; ++i) kept += p[size_t(order[size_t(i)])];
    const Rows x(h.begin() + t * d, h.begin() + (t + 1) * d);
    for (int64_t i = 0; i < s.experts_used; ++i) {
      const int64_t e = order[size_t(i)];
      const double w = (mixtral || s.norm_topk) ? p[size_t(e)] / kept : p[size_t(e)];
      const std::string ex = m + "experts." + std::to_string(e) + ".";
      const Rows gate = lin(x, ex + (mixtral ? "w1" : "gate_proj"));
      Rows up = lin(x, ex + (mixtral ? "w3" : "up_proj"));
      for (size_t j = 0; j < up.size(); ++j) up[j] *= gate[j] / (1 + std::exp(-gate[j]));
      const Rows y = lin(up, ex + (mixtral ? "w2" : "down_proj"));
      for (int64_t j = 0; j < d; ++j) out[size_t(t * d + j)] += w * y[size_t(j)];
    }
  }
  return out;
}

// Gemma 2 / 3 (Gemma2ForCausalLM, Gemma3ForCausalLM): embeddings × √hidden (fp32), RMSNorm with 1 + w,
// a norm before and after each sub-layer, GELU-tanh GeGLU; Gemma 3: q/k norms before RoPE, per-layer-type
// RoPE bases; Gemma 2: every other layer windowed (layer 0 first), attention and final soft-capping.
inline Rows reference_logits_gemma(const SyntheticSpec& s, const TensorMap& t, const std::vector<int32_t>& tokens,
                                   const LinearInputObserver& observe) {
  const int64_t T = int64_t(tokens.size()), d = s.hidden, dh = s.dh(), H = s.heads, KV = s.kv_heads;
  const bool g3 = s.family == Family::Gemma3;
  auto at = [&](const std::string& n) -> const test::HostTensor& { return t.at(n); };
  const double embed_scale = double(float(std::sqrt(double(d))));  // torch.tensor(hidden ** 0.5), fp32
  Rows x(size_t(T * d));
  for (int64_t i = 0; i < T; ++i)
    for (int64_t j = 0; j < d; ++j)
      x[size_t(i * d + j)] = at("model.embed_tokens.weight").v[size_t(tokens[size_t(i)] * d + j)] * embed_scale;
  const double scale = 1.0 / std::sqrt(double(s.query_pre_attn_scalar ? s.query_pre_attn_scalar : dh));
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    auto lin = [&](const Rows& y, const std::string& n) {
      if (observe) observe(l, n, y);
      return ref_linear(y, T, at(p + n + ".weight"), nullptr);
    };
    auto norm = [&](const Rows& y, int64_t rows, const std::string& n) { return ref_rms_norm(y, rows, at(p + n + ".weight"), 1e-6, 1.0); };
    const bool sliding = g3 ? bool(s.sliding_layers[size_t(l)]) : l % 2 == 0;
    const int64_t window = sliding ? s.sliding_window : 0;
    const double theta = g3 && sliding ? s.rope_theta_sliding : s.rope_theta;
    Rows h = norm(x, T, "input_layernorm");
    Rows q = lin(h, "self_attn.q_proj"), k = lin(h, "self_attn.k_proj"), v = lin(h, "self_attn.v_proj");
    if (g3) {
      q = norm(q, T * H, "self_attn.q_norm");
      k = norm(k, T * KV, "self_attn.k_norm");
    }
    ref_rope(q, T, H, s, theta);
    ref_rope(k, T, KV, s, theta);
    Rows o = lin(ref_attention(q, k, v, T, H, KV, dh, window, scale, s.attn_softcap), "self_attn.o_proj");
    o = norm(o, T, "post_attention_layernorm");
    for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
    h = norm(x, T, "pre_feedforward_layernorm");
    const Rows gate = lin(h, "mlp.gate_proj");
    Rows up = lin(h, "mlp.up_proj");
    for (size_t i = 0; i < up.size(); ++i) {  // gelu_pytorch_tanh
      const double g = gate[i];
      up[i] *= 0.5 * g * (1 + std::tanh(std::sqrt(2 / std::numbers::pi) * (g + 0.044715 * g * g * g)));
    }
    Rows down = norm(lin(up, "mlp.down_proj"), T, "post_feedforward_layernorm");
    for (size_t i = 0; i < x.size(); ++i) x[i] += down[i];
  }
  x = ref_rms_norm(x, T, at("model.norm.weight"), 1e-6, 1.0);
  Rows logits = ref_linear(x, T, s.tied ? at("model.embed_tokens.weight") : at("lm_head.weight"), nullptr);
  if (s.final_softcap > 0)
    for (double& z : logits) z = s.final_softcap * std::tanh(z / s.final_softcap);
  return logits;
}

// Logits [T, vocab] of the model (spec + tensors) for `tokens`, as transformers computes them; `observe`
// (when given) sees every block linear's input.
inline Rows reference_logits(const SyntheticSpec& s, const TensorMap& t, const std::vector<int32_t>& tokens,
                             const LinearInputObserver& observe = nullptr) {
  const int64_t T = int64_t(tokens.size()), d = s.hidden;
  auto at = [&](const std::string& n) -> const test::HostTensor& { return t.at(n); };
  if (s.family == Family::Opt) {
    const int64_t e = s.embed_dim();
    Rows x(size_t(T * e));
    for (int64_t i = 0; i < T; ++i)
      for (int64_t j = 0; j < e; ++j) x[size_t(i * e + j)] = at("model.decoder.embed_tokens.weight").v[size_t(tokens[size_t(i)] * e + j)];
    if (e != d) x = ref_linear(x, T, at("model.decoder.project_in.weight"), nullptr);
    // OPTLearnedPositionalEmbedding: position p reads row p + 2.
    for (int64_t i = 0; i < T; ++i)
      for (int64_t j = 0; j < d; ++j) x[size_t(i * d + j)] += at("model.decoder.embed_positions.weight").v[size_t((i + 2) * d + j)];
    for (int64_t l = 0; l < s.layers; ++l) {
      const std::string p = "model.decoder.layers." + std::to_string(l) + ".";
      auto ln = [&](const Rows& y, const std::string& n) { return ref_layer_norm(y, T, at(p + n + ".weight"), at(p + n + ".bias")); };
      auto lin = [&](const Rows& y, const std::string& n) {
        if (observe) observe(l, n, y);
        return ref_linear(y, T, at(p + n + ".weight"), &at(p + n + ".bias"));
      };
      Rows h = s.norm_before ? ln(x, "self_attn_layer_norm") : x;
      const Rows att = ref_attention(lin(h, "self_attn.q_proj"), lin(h, "self_attn.k_proj"), lin(h, "self_attn.v_proj"), T,
                                     s.heads, s.heads, d / s.heads, 0);
      const Rows o = lin(att, "self_attn.out_proj");
      for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
      if (!s.norm_before) x = ln(x, "self_attn_layer_norm");
      h = s.norm_before ? ln(x, "final_layer_norm") : x;
      Rows mid = lin(h, "fc1");
      for (double& m : mid) m = std::max(m, 0.0);
      const Rows down = lin(mid, "fc2");
      for (size_t i = 0; i < x.size(); ++i) x[i] += down[i];
      if (!s.norm_before) x = ln(x, "final_layer_norm");
    }
    if (s.norm_before)
      x = ref_layer_norm(x, T, at("model.decoder.final_layer_norm.weight"), at("model.decoder.final_layer_norm.bias"));
    if (e != d) x = ref_linear(x, T, at("model.decoder.project_out.weight"), nullptr);
    return ref_linear(x, T, s.tied ? at("model.decoder.embed_tokens.weight") : at("lm_head.weight"), nullptr);
  }
  const int64_t dh = s.dh(), H = s.heads, KV = s.kv_heads;
  if (s.family == Family::Gemma2 || s.family == Family::Gemma3) return reference_logits_gemma(s, t, tokens, observe);
  const int64_t window = s.family == Family::Mistral || s.family == Family::Phi3 ? s.sliding_window : 0;
  Rows x(size_t(T * d));
  for (int64_t i = 0; i < T; ++i)
    for (int64_t j = 0; j < d; ++j) x[size_t(i * d + j)] = at("model.embed_tokens.weight").v[size_t(tokens[size_t(i)] * d + j)];
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    auto lin = [&](const Rows& y, const std::string& n) {  // any number of rows (MoE experts: one token)
      if (observe) observe(l, n, y);
      const test::HostTensor& w = at(p + n + ".weight");
      return ref_linear(y, int64_t(y.size()) / w.shape[1], w, maybe(t, p + n + ".bias"));
    };
    Rows h = ref_rms_norm(x, T, at(p + "input_layernorm.weight"), 1e-6);
    Rows q, k, v;
    if (s.family == Family::Phi3) {  // Phi3Attention: qkv_proj's output split as [q | k | v]
      const Rows qkv = lin(h, "self_attn.qkv_proj");
      const int64_t w = (H + 2 * KV) * dh;
      for (int64_t t = 0; t < T; ++t)
        for (int64_t j = 0; j < w; ++j) {
          const double val = qkv[size_t(t * w + j)];
          if (j < H * dh) q.push_back(val);
          else if (j < (H + KV) * dh) k.push_back(val);
          else v.push_back(val);
        }
    } else {
      q = lin(h, "self_attn.q_proj"), k = lin(h, "self_attn.k_proj"), v = lin(h, "self_attn.v_proj");
    }
    if (s.family == Family::Qwen3 || s.family == Family::Qwen3Moe) {  // RMSNorm over each head_dim slice, before RoPE
      q = ref_rms_norm(q, T * H, at(p + "self_attn.q_norm.weight"), 1e-6);
      k = ref_rms_norm(k, T * KV, at(p + "self_attn.k_norm.weight"), 1e-6);
    }
    ref_rope(q, T, H, s);
    ref_rope(k, T, KV, s);
    const Rows o = lin(ref_attention(q, k, v, T, H, KV, dh, window), "self_attn.o_proj");
    for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
    h = ref_rms_norm(x, T, at(p + "post_attention_layernorm.weight"), 1e-6);
    if (s.moe_layer(l)) {  // Qwen3MoeSparseMoeBlock / MixtralSparseMoeBlock
      const Rows moe = ref_moe(h, T, s, [&](const Rows& y, const std::string& n) { return lin(y, n); });
      for (size_t i = 0; i < x.size(); ++i) x[i] += moe[i];
      continue;
    }
    Rows gate, up;
    if (s.family == Family::Phi3) {  // Phi3MLP: gate_up_proj's output chunked as [gate | up]
      const Rows gu = lin(h, "mlp.gate_up_proj");
      for (int64_t t = 0; t < T; ++t)
        for (int64_t j = 0; j < 2 * s.ffn; ++j) (j < s.ffn ? gate : up).push_back(gu[size_t(t * 2 * s.ffn + j)]);
    } else {
      gate = lin(h, "mlp.gate_proj"), up = lin(h, "mlp.up_proj");
    }
    for (size_t i = 0; i < up.size(); ++i) up[i] *= gate[i] / (1 + std::exp(-gate[i]));
    const Rows down = lin(up, "mlp.down_proj");
    for (size_t i = 0; i < x.size(); ++i) x[i] += down[i];
  }
  x = ref_rms_norm(x, T, at("model.norm.weight"), 1e-6);
  return ref_linear(x, T, s.tied ? at("model.embed_tokens.weight") : at("lm_head.weight"), nullptr);
}

}  // namespace quantllm::test
