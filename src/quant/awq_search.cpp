// AWQ scale and clipping searches (formulas in awq_search.h).
#include "quant/awq_search.h"

#include "core/threads.h"
#include "quant/blas_single_thread.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace quantllm {

namespace {

constexpr int64_t kClipRowChunk = 16;  // output rows per task of the clip search

QuantParams search_params(const QuantParams& p) {
  QuantParams q = p;
  q.rule = RangeRule::kAwq;
  q.scale_rounding = ScaleRounding::kAfterCodes;  // fp32 scales inside the searches
  q.mse = false;
  return q;
}

// In place: v ← Q(v) for one row of one group.
void fake_quantize_group(std::span<float> v, const QuantParams& p) {
  const GroupParams g = find_group_params(v, p);
  const int maxq = max_code(p.bits);
  for (float& x : v) x = dequantize_value(quantize_value(x, g, maxq), g);
}

}  // namespace

std::vector<float> awq_weight_mean(std::span<const Tensor* const> weights, int group_size, std::string_view name) {
  if (weights.empty()) fail("scaling group '{}': no weights", name);
  const int64_t in = weights[0]->dim(1);
  const int64_t gs = group_size == -1 ? in : group_size;
  if (gs <= 0 || in % gs != 0) fail("scaling group '{}': group size {} does not divide the input size {}", name, group_size, in);
  std::vector<double> sum(size_t(in), 0.0);
  int64_t rows = 0;
  for (const Tensor* w : weights) {
    if (w->ndim() != 2 || w->dim(1) != in)
      fail("scaling group '{}': weights of shape {} and [*, {}] do not share an input", name, shape_str(w->shape), in);
    check_finite(w->data, name);
    for (int64_t r = 0; r < w->dim(0); ++r) {
      const float* x = w->row(r);
      for (int64_t g0 = 0; g0 < in; g0 += gs) {
        float amax = 0.0f;
        for (int64_t c = g0; c < g0 + gs; ++c) amax = std::max(amax, std::fabs(x[c]));
        for (int64_t c = g0; c < g0 + gs; ++c) sum[size_t(c)] += double(std::fabs(x[c]) / (amax + 1e-6f));
      }
    }
    rows += w->dim(0);
  }
  std::vector<float> mean(static_cast<size_t>(in));
  for (int64_t c = 0; c < in; ++c) mean[size_t(c)] = float(sum[size_t(c)] / double(rows));
  return mean;
}

std::vector<float> awq_candidate_scales(std::span<const float> x_mean, std::span<const float> w_mean, double ratio,
                                        bool duo_scaling) {
  QL_ASSERT(x_mean.size() == w_mean.size() && !x_mean.empty());
  const float a = float(ratio), b = float(1.0 - ratio);
  std::vector<float> s(x_mean.size());
  for (size_t c = 0; c < s.size(); ++c) {
    const float v = duo_scaling ? std::pow(x_mean[c], a) / (std::pow(w_mean[c], b) + 1e-4f) : std::pow(x_mean[c], a);
    s[c] = std::max(v, 1e-4f);
  }
  const auto [lo, hi] = std::minmax_element(s.begin(), s.end());
  const float norm = std::sqrt(*hi * *lo);
  for (float& v : s) {
    v /= norm;
    if (!std::isfinite(v)) v = 1.0f;
  }
  return s;
}

AwqScaleResult awq_search_scale(std::span<const float> x_mean, std::span<const float> w_mean,
                                const std::function<double(std::span<const float>)>& evaluate, std::string_view name, int n_grid,
                                bool duo_scaling) {
  if (x_mean.size() != w_mean.size())
    fail("scaling group '{}': {} activation means for {} weight columns", name, x_mean.size(), w_mean.size());
  for (float v : x_mean)
    if (!std::isfinite(v) || v < 0.0f) fail("scaling group '{}': activation mean {} is not a finite magnitude", name, v);
  QL_ASSERT(n_grid >= 1);
  AwqScaleResult best;
  best.error = std::numeric_limits<double>::infinity();
  bool found = false;
  for (int i = 0; i < n_grid; ++i) {
    const double ratio = double(i) / n_grid;
    std::vector<float> s = awq_candidate_scales(x_mean, w_mean, ratio, duo_scaling);
    const double err = evaluate(s);
    best.errors.push_back(err);
    if (err < best.error) {
      best.error = err;
      best.ratio = ratio;
      best.scales = std::move(s);
      found = true;
    }
  }
  if (!found) fail("scaling group '{}': no AWQ scale candidate gave a finite output error", name);
  return best;
}

Tensor awq_pseudo_quantize(const Tensor& w, const QuantParams& p) {
  QL_ASSERT(w.ndim() == 2);
  const int64_t in = w.dim(1), gs = effective_group_size(p, in);
  QL_ASSERT(in % gs == 0);
  Tensor q = w;
  parallel_for(w.dim(0), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t g0 = 0; g0 < in; g0 += gs) fake_quantize_group({q.row(r) + g0, size_t(gs)}, p);
  }, 8);
  return q;
}

Tensor awq_pseudo_quantize_scaled(const Tensor& w, std::span<const float> s, const QuantParams& p) {
  QL_ASSERT(w.ndim() == 2 && int64_t(s.size()) == w.dim(1));
  Tensor ws = w;
  const int64_t in = w.dim(1);
  for (int64_t r = 0; r < w.dim(0); ++r)
    for (int64_t c = 0; c < in; ++c) ws.data[size_t(r * in + c)] *= s[size_t(c)];
  Tensor q = awq_pseudo_quantize(ws, p);
  for (int64_t r = 0; r < w.dim(0); ++r)
    for (int64_t c = 0; c < in; ++c) q.data[size_t(r * in + c)] /= s[size_t(c)];
  return q;
}

Tensor awq_search_clip(const Tensor& w, const Tensor& x, const QuantParams& p_in, std::string_view name, int n_grid,
                       double max_shrink, int64_t n_sample_tokens) {
  if (w.ndim() != 2 || x.ndim() != 2 || x.dim(1) != w.dim(1))
    fail("layer '{}': clip search needs w [out, in] and x [tokens, in], got {} and {}", name, shape_str(w.shape), shape_str(x.shape));
  const int64_t out = w.dim(0), in = w.dim(1);
  validate_quant_params(p_in, in, name);
  check_finite(w.data, name);
  if (x.dim(0) == 0) fail("layer '{}': clip search got no calibration tokens", name);
  const QuantParams p = search_params(p_in);
  const int64_t gs = effective_group_size(p, in), ng = group_count(p, in);
  const int n_shrink = int(max_shrink * n_grid);
  QL_ASSERT(n_shrink >= 1 && n_sample_tokens >= 1);

  // Sampled tokens: x[::step] with step = max(1, n_tokens / n_sample_tokens). xs: [T, in].
  const int64_t step = std::max<int64_t>(1, x.dim(0) / n_sample_tokens);
  const int64_t T = (x.dim(0) + step - 1) / step;
  std::vector<float> xs(size_t(T * in));
  for (int64_t t = 0; t < T; ++t) std::copy_n(x.row(t * step), in, xs.data() + t * in);

  Tensor best({out, ng});
  const int64_t chunks = (out + kClipRowChunk - 1) / kClipRowChunk;
  const int64_t ncand = 1 + n_shrink;  // candidate 0: the unclipped weights (reference output)
  SingleThreadedBlas single;
  parallel_for(chunks, [&](int64_t c0, int64_t c1) {
    std::vector<float> cand, y, max_vals;
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t r0 = c * kClipRowChunk, m = std::min(kClipRowChunk, out - r0), n = m * ncand;
      cand.resize(size_t(n * gs));
      y.resize(size_t(T * n));
      max_vals.resize(size_t(n));
      for (int64_t g = 0; g < ng; ++g) {
        // cand: [m·ncand, gs]; row (r, k) holds Q(clamp(w, ±max_k)) (k ≥ 1) or w itself (k = 0).
        for (int64_t r = 0; r < m; ++r) {
          const float* wr = w.row(r0 + r) + g * gs;
          float amax = 0.0f;
          for (int64_t j = 0; j < gs; ++j) amax = std::max(amax, std::fabs(wr[j]));
          std::copy_n(wr, gs, cand.data() + (r * ncand) * gs);
          for (int64_t k = 1; k < ncand; ++k) {
            const float mv = amax * float(1.0 - double(k - 1) / n_grid);
            max_vals[size_t(r * ncand + k)] = mv;
            float* dst = cand.data() + (r * ncand + k) * gs;
            for (int64_t j = 0; j < gs; ++j) dst[j] = std::clamp(wr[j], -mv, mv);
            fake_quantize_group({dst, size_t(gs)}, p);
          }
        }
        // y: [T, m·ncand] = xs[:, group g] · candᵀ
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(T), int(n), int(gs), 1.0f, xs.data() + g * gs, int(in),
                    cand.data(), int(gs), 0.0f, y.data(), int(n));
        for (int64_t r = 0; r < m; ++r) {
          double min_err = 1e9;  // AutoAWQ's initial bound
          float chosen = max_vals[size_t(r * ncand + 1)];  // the unshrunk absmax
          for (int64_t k = 1; k < ncand; ++k) {
            double e = 0.0;
            for (int64_t t = 0; t < T; ++t) {
              const double d = double(y[size_t(t * n + r * ncand + k)]) - double(y[size_t(t * n + r * ncand)]);
              e += d * d;
            }
            e /= double(T);
            if (e < min_err) {
              min_err = e;
              chosen = max_vals[size_t(r * ncand + k)];
            }
          }
          best.data[size_t((r0 + r) * ng + g)] = chosen;
        }
      }
    }
  });
  return best;
}

void awq_apply_clip(Tensor& w, const Tensor& max_val) {
  QL_ASSERT(w.ndim() == 2 && max_val.ndim() == 2 && max_val.dim(0) == w.dim(0));
  const int64_t in = w.dim(1), ng = max_val.dim(1);
  QL_ASSERT(ng >= 1 && in % ng == 0);
  const int64_t gs = in / ng;
  for (int64_t r = 0; r < w.dim(0); ++r)
    for (int64_t c = 0; c < in; ++c) {
      const float mv = max_val.data[size_t(r * ng + c / gs)];
      float& v = w.data[size_t(r * in + c)];
      v = std::clamp(v, -mv, mv);
    }
}

}  // namespace quantllm
