// AWQ helpers: hand-computed statistics and candidate scales, the grid search's choice on a callback
// with a known optimum, and the clip search against a direct double-precision implementation.
#include "quant/awq_search.h"

#include "core/threads.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

using namespace quantllm;

namespace {

Tensor randn(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n;
  Tensor t({rows, cols});
  for (float& v : t.data) v = n(rng);
  return t;
}

}  // namespace

TEST(Awq, WeightMeanNormalizesPerGroup) {
  // Groups of 2. Row 0 [1, −2 | 3, 0]: absmax 2 and 3 → [0.5, 1 | 1, 0]. Row 1 [4, 0 | −1, 1]: → [1, 0 | 1, 1].
  // Second matrix row [0, 0 | 2, 2] → [0, 0 | 1, 1] (0/(0 + 1e−6) = 0). Mean over 3 rows.
  const Tensor a({2, 4}, {1, -2, 3, 0, 4, 0, -1, 1});
  const Tensor b({1, 4}, {0, 0, 2, 2});
  const Tensor* ws[] = {&a, &b};
  const std::vector<float> m = awq_weight_mean(ws, 2, "mlp");
  const std::vector<double> expect = {1.5 / 3, 1.0 / 3, 3.0 / 3, 2.0 / 3};
  for (int c = 0; c < 4; ++c) EXPECT_NEAR(m[size_t(c)], expect[size_t(c)], 1e-5) << c;  // the +1e−6 in the divisor
  const Tensor bad({1, 3});
  const Tensor* mixed[] = {&a, &bad};
  EXPECT_THROW(awq_weight_mean(mixed, 2, "mlp"), Error);
}

TEST(Awq, CandidateScalesHandComputed) {
  // x̄ = [1, 4], w̄ = [1, 1], α = 0.5: s = [1, 2] / (1 + 1e−4), normalized by sqrt(max·min) → [1/√2, √2].
  const std::vector<float> s = awq_candidate_scales(std::vector<float>{1, 4}, std::vector<float>{1, 1}, 0.5);
  EXPECT_NEAR(s[0], 1 / std::sqrt(2.0), 1e-6);
  EXPECT_NEAR(s[1], std::sqrt(2.0), 1e-6);
  // α = 0: s = 1/(w̄ + 1e−4) → [1/1.0001, 1/0.5001] normalized.
  const std::vector<float> z = awq_candidate_scales(std::vector<float>{1, 4}, std::vector<float>{1, 0.5f}, 0.0);
  EXPECT_NEAR(z[1] / z[0], 1.0001 / 0.5001, 1e-6);
  EXPECT_NEAR(z[0] * z[1], 1.0, 1e-6);
  // A dead channel (x̄ = 0) gets the floor 1e−4 before normalization.
  const std::vector<float> d = awq_candidate_scales(std::vector<float>{0, 1}, std::vector<float>{1, 1}, 0.5);
  EXPECT_NEAR(double(d[1]) / d[0] * (1e-4 * 1.0001), 1.0, 1e-5);
}

TEST(Awq, GridSearchPicksTheMinimum) {
  // s1/s0 = 4^α exactly (w̄ equal), so an error |log4(s1/s0) − 0.35| is smallest at α = 0.35 = 7/20.
  const std::vector<float> x = {1, 4}, w = {1, 1};
  const AwqScaleResult r = awq_search_scale(
      x, w, [](std::span<const float> s) { return std::fabs(std::log(double(s[1]) / s[0]) / std::log(4.0) - 0.35); }, "attn");
  EXPECT_DOUBLE_EQ(r.ratio, 0.35);
  EXPECT_EQ(r.errors.size(), 20u);
  EXPECT_NEAR(r.scales[1] / r.scales[0], std::pow(4.0, 0.35), 1e-5);
  try {
    awq_search_scale(x, w, [](std::span<const float>) { return std::nan(""); }, "model.layers.2.mlp");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.2.mlp"), std::string::npos);
  }
}

TEST(Awq, ScaledPseudoQuantizationWithUnitScalesIsPlain) {
  const Tensor w = randn(8, 64, 1);
  const QuantParams p{.bits = 4, .group_size = 32, .rule = RangeRule::kAwq};
  const std::vector<float> ones(64, 1.0f);
  EXPECT_EQ(awq_pseudo_quantize_scaled(w, ones, p).data, awq_pseudo_quantize(w, p).data);
  // Powers of two commute with the fp32 arithmetic: scaling a whole group by 2 changes nothing.
  std::vector<float> twos(64, 1.0f);
  std::fill(twos.begin(), twos.begin() + 32, 2.0f);
  EXPECT_EQ(awq_pseudo_quantize_scaled(w, twos, p).data, awq_pseudo_quantize(w, p).data);
}

TEST(Awq, ClipSearchMatchesDirectImplementation) {
  const int64_t out = 40, in = 64, tokens = 300;
  Tensor w = randn(out, in, 2);
  for (int64_t r = 0; r < out; r += 3) w.data[size_t(r * in + (r % in))] *= 8.0f;  // outliers worth clipping
  const Tensor x = randn(tokens, in, 3);
  const QuantParams p{.bits = 3, .group_size = 32, .rule = RangeRule::kAwq};
  const Tensor best = awq_search_clip(w, x, p, "w", 20, 0.5, 128);  // step 300/128 = 2 → 150 tokens
  ASSERT_EQ(best.shape, (Shape{out, 2}));
  int clipped = 0;
  for (int64_t r = 0; r < out; ++r)
    for (int64_t g = 0; g < 2; ++g) {
      const float* wr = w.row(r) + g * 32;
      float amax = 0;
      for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(wr[j]));
      // Direct: every shrink, errors in double over tokens 0, 2, 4, …
      double min_err = 1e9;
      float chosen = amax;
      for (int k = 0; k < 10; ++k) {
        const float mv = amax * float(1.0 - k / 20.0);
        std::vector<float> q(wr, wr + 32);
        for (float& v : q) v = std::clamp(v, -mv, mv);
        const GroupParams gp = find_group_params(q, p);
        for (float& v : q) v = dequantize_value(quantize_value(v, gp, 7), gp);
        double e = 0;
        for (int64_t t = 0; t < tokens; t += 2) {
          double o = 0, c = 0;
          for (int j = 0; j < 32; ++j) {
            o += double(x.data[size_t(t * in + g * 32 + j)]) * wr[j];
            c += double(x.data[size_t(t * in + g * 32 + j)]) * q[size_t(j)];
          }
          e += (c - o) * (c - o);
        }
        e /= 150;
        if (e < min_err) {
          min_err = e;
          chosen = mv;
        }
      }
      EXPECT_EQ(best.data[size_t(r * 2 + g)], chosen) << r << "," << g;
      clipped += chosen < amax;
    }
  EXPECT_GT(clipped, 0);
  Tensor wc = w;
  awq_apply_clip(wc, best);
  for (int64_t r = 0; r < out; ++r)
    for (int64_t c = 0; c < in; ++c) EXPECT_LE(std::fabs(wc.data[size_t(r * in + c)]), best.data[size_t(r * 2 + c / 32)]);
}

TEST(Awq, ClipSearchThreadCountInvariant) {
  const Tensor w = randn(50, 64, 4), x = randn(200, 64, 5);
  const QuantParams p{.bits = 4, .group_size = 16, .rule = RangeRule::kAwq};
  const int saved = num_threads();
  set_num_threads(1);
  const Tensor a = awq_search_clip(w, x, p, "w");
  set_num_threads(2);
  const Tensor b = awq_search_clip(w, x, p, "w");
  set_num_threads(saved);
  EXPECT_EQ(std::memcmp(a.ptr(), b.ptr(), a.data.size() * 4), 0);
  EXPECT_THROW(awq_search_clip(w, x, {.bits = 4, .group_size = 48}, "w"), Error);
  EXPECT_THROW(awq_search_clip(w, Tensor({0, 64}), p, "w"), Error);
}
