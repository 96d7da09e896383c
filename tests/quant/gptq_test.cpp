// GPTQ: against RTN where the math says they coincide (H = c·I), against a straightforward unbatched
// implementation written here, against RTN's objective on correlated inputs, plus dead inputs,
// damping escalation, bad inputs and thread-count determinism. The Hessian accumulator is checked
// against a double-precision sum with a derived bound.
#include "quant/gptq.h"

#include "core/threads.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>

using namespace quantllm;

namespace {

Tensor random_matrix(int64_t rows, int64_t cols, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, sigma);
  Tensor t({rows, cols});
  for (float& v : t.data) v = n(rng);
  return t;
}

// Calibration-like inputs: a few dominant directions plus noise, with per-column magnitudes spread
// over two decades (what makes act-order matter). x: [rows, in].
Tensor correlated_inputs(int64_t rows, int64_t in, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const int k = 4;
  std::vector<float> dirs(size_t(k * in)), col_scale(static_cast<size_t>(in));
  for (float& d : dirs) d = n(rng);
  for (float& s : col_scale) s = std::pow(10.0f, u(rng));
  Tensor x({rows, in});
  for (int64_t r = 0; r < rows; ++r) {
    float z[k];
    for (float& zi : z) zi = 3.0f * n(rng);
    for (int64_t c = 0; c < in; ++c) {
      float v = 0.3f * n(rng);
      for (int j = 0; j < k; ++j) v += z[j] * dirs[size_t(j * in + c)];
      x.data[size_t(r * in + c)] = v * col_scale[size_t(c)];
    }
  }
  return x;
}

std::vector<double> hessian_of(const Tensor& x) {
  HessianAccumulator acc(x.dim(1));
  acc.add_batch(x.ptr(), x.dim(0), x.dim(1));
  return acc.hessian();
}

// The textbook algorithm, one column at a time with immediate updates; group parameters at each group
// start from the current (error-fed) columns, static groups from W up front, whole rows from W.
// Uses the library's Cholesky helper (tested separately) so only the column loop is compared.
std::vector<int32_t> naive_gptq(const Tensor& w, std::vector<double> h, const GPTQOptions& o, std::vector<float>* scales_out) {
  const int64_t out = w.dim(0), in = w.dim(1);
  const bool grouped = o.quant.group_size != -1;
  const int64_t gs = grouped ? o.quant.group_size : in, ng = in / gs;
  const int maxq = max_code(o.quant.bits);
  std::vector<int64_t> perm(static_cast<size_t>(in));
  std::iota(perm.begin(), perm.end(), 0);
  if (o.act_order)
    std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) { return h[size_t(a * in + a)] > h[size_t(b * in + b)]; });
  std::vector<double> hp(size_t(in * in));
  double mean = 0;
  for (int64_t a = 0; a < in; ++a) {
    for (int64_t b = 0; b < in; ++b) hp[size_t(a * in + b)] = h[size_t(perm[size_t(a)] * in + perm[size_t(b)])];
    mean += hp[size_t(a * in + a)] / double(in);
  }
  for (int64_t a = 0; a < in; ++a) hp[size_t(a * in + a)] += o.damp_percent * mean;
  std::vector<double> ud;
  EXPECT_TRUE(upper_cholesky_of_inverse(hp, in, ud));
  const std::vector<float> u(ud.begin(), ud.end());
  std::vector<int32_t> codes(size_t(out * in));
  scales_out->assign(size_t(ng * out), 0.0f);
  for (int64_t r = 0; r < out; ++r) {
    std::vector<float> wr(static_cast<size_t>(in));
    for (int64_t p = 0; p < in; ++p) wr[size_t(p)] = w.data[size_t(r * in + perm[size_t(p)])];
    std::vector<GroupParams> fixed(static_cast<size_t>(ng));
    for (int64_t g = 0; g < ng; ++g) fixed[size_t(g)] = find_group_params({w.row(r) + g * gs, size_t(gs)}, o.quant);
    GroupParams cur;
    for (int64_t p = 0; p < in; ++p) {
      const int64_t col = perm[size_t(p)];
      GroupParams gp;
      if (!grouped) {
        gp = fixed[0];
      } else if (o.static_groups) {
        gp = fixed[size_t(col / gs)];
      } else {
        if (p % gs == 0) cur = find_group_params({wr.data() + p, size_t(gs)}, o.quant);
        gp = cur;
      }
      const int64_t g = !grouped ? 0 : (o.static_groups ? col / gs : p / gs);
      (*scales_out)[size_t(g * out + r)] = finalize_scale(gp.scale);
      const int32_t c = quantize_value(wr[size_t(p)], gp, maxq);
      codes[size_t(r * in + col)] = c;
      const float e = (wr[size_t(p)] - dequantize_value(c, gp)) / u[size_t(p * in + p)];
      for (int64_t j = p + 1; j < in; ++j) wr[size_t(j)] -= e * u[size_t(p * in + j)];
    }
  }
  return codes;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Hessian, MatchesDoubleSumWithinDerivedBound) {
  const Tensor x = correlated_inputs(700, 96, 1);  // 700 rows: chunks of 256, 256, 188
  HessianAccumulator acc(96);
  acc.add_batch(x.ptr(), 300, 96, 1);
  acc.add_batch(x.ptr() + 300 * 96, 400, 96, 1);
  EXPECT_EQ(acc.n_samples(), 2);
  EXPECT_EQ(acc.n_rows(), 700);
  const std::vector<double> h = acc.hessian();
  // Each entry is a sum of fp32 dot products of ≤ 256 terms summed in double: the error of a k-term
  // fp32 dot product is ≤ γ_k Σ|x_i x_j| with γ_k = k·u/(1 − k·u), u = 2^-24.
  const double u = std::ldexp(1.0, -24), gamma = 256 * u / (1 - 256 * u);
  for (int64_t i = 0; i < 96; ++i)
    for (int64_t j = 0; j < 96; ++j) {
      double exact = 0, abs_sum = 0;
      for (int64_t r = 0; r < 700; ++r) {
        const double p = double(x.data[size_t(r * 96 + i)]) * double(x.data[size_t(r * 96 + j)]);
        exact += p;
        abs_sum += std::fabs(p);
      }
      const double f = 2.0 / 2.0;  // 2/n with n = 2 samples
      ASSERT_LE(std::fabs(h[size_t(i * 96 + j)] - f * exact), f * gamma * abs_sum + 1e-300) << i << "," << j;
      ASSERT_EQ(h[size_t(i * 96 + j)], h[size_t(j * 96 + i)]);
    }
}

TEST(Hessian, CholeskyOfInverse) {
  const std::vector<double> h = hessian_of(correlated_inputs(400, 48, 2));
  std::vector<double> hd = h;
  double mean = 0;
  for (int i = 0; i < 48; ++i) mean += h[size_t(i * 48 + i)] / 48;
  for (int i = 0; i < 48; ++i) hd[size_t(i * 48 + i)] += 0.01 * mean;
  std::vector<double> u;
  ASSERT_TRUE(upper_cholesky_of_inverse(hd, 48, u));
  // UᵀU·H = I, to a few thousand ulps of the condition number (≲ 1e4 with this damping).
  for (int i = 0; i < 48; ++i)
    for (int j = 0; j < 48; ++j) {
      EXPECT_EQ(i > j ? u[size_t(i * 48 + j)] : 0.0, 0.0);
      double s = 0;
      for (int k = 0; k < 48; ++k) {
        double inv_ik = 0;
        for (int l = 0; l <= std::min(i, k); ++l) inv_ik += u[size_t(l * 48 + i)] * u[size_t(l * 48 + k)];
        s += inv_ik * hd[size_t(k * 48 + j)];
      }
      EXPECT_NEAR(s, i == j ? 1.0 : 0.0, 1e-9);
    }
}

TEST(Gptq, ScaledIdentityHessianIsExactlyRtn) {
  // H = c·I: Hinv's factor is diagonal, so every error-feedback term is err·0 and W never changes;
  // group parameters are then found on the original columns, exactly as RTN does.
  const Tensor w = random_matrix(24, 64, 7);
  std::vector<double> h(64 * 64, 0.0);
  for (int i = 0; i < 64; ++i) h[size_t(i * 64 + i)] = 3.5;
  for (int bits : {2, 3, 4, 8})
    for (int gs : {-1, 16})
      for (bool sym : {false, true})
        for (bool act : {false, true})
          for (bool mse : {false, true}) {
            const QuantParams qp{.bits = bits, .group_size = gs, .sym = sym, .mse = mse};
            const GPTQResult g = gptq_quantize(w, h, {.quant = qp, .block_size = 16, .act_order = act}, "w");
            const GroupQuantized r = quantize_rtn(w, qp, "w");
            ASSERT_EQ(g.q.qweight, r.qweight) << bits << " " << gs << " " << sym << act << mse;
            ASSERT_EQ(g.q.scales.data, r.scales.data);
            ASSERT_EQ(g.q.zeros, r.zeros);
            ASSERT_EQ(g.q.g_idx, r.g_idx);
            EXPECT_EQ(g.stats.damp_percent_used, 0.01);
          }
}

TEST(Gptq, LazyBatchesEqualUnbatchedImplementation) {
  // in = 96 with blocks of 32: groups of 24 and 48 start inside blocks and cross block ends (the
  // catch-up path); a group of 96 spans all blocks from a block start.
  const int64_t out = 20, in = 96;
  const Tensor w = random_matrix(out, in, 9);
  const std::vector<double> h = hessian_of(correlated_inputs(512, in, 10));
  struct Case { int bits, gs; bool act, stat, sym; };
  for (const Case c : {Case{4, 24, false, false, false}, Case{3, 24, true, false, false}, Case{2, 32, true, false, true},
                       Case{4, 48, true, false, false}, Case{4, 96, false, false, false}, Case{4, 24, true, true, false}, Case{3, -1, true, false, false},
                       Case{4, -1, false, false, true}}) {
    const GPTQOptions base{.quant = {.bits = c.bits, .group_size = c.gs, .sym = c.sym}, .act_order = c.act, .static_groups = c.stat};
    std::vector<float> naive_scales;
    const std::vector<int32_t> naive_i = naive_gptq(w, h, base, &naive_scales);
    const std::vector<uint8_t> naive(naive_i.begin(), naive_i.end());
    // One block = the unbatched algorithm with the very same float operations: bit-exact.
    GPTQOptions one = base;
    one.block_size = int(in);
    const GPTQResult r1 = gptq_quantize(w, h, one, "w");
    ASSERT_EQ(r1.q.qweight, naive) << c.bits << " " << c.gs << " " << c.act << c.stat;
    ASSERT_EQ(r1.q.scales.data, naive_scales);
    // Lazy batches reorder the float additions of the feedback only (≈1e-7 relative per value, in an
    // order that depends on the BLAS kernel this CPU gets). A group's scale, stored as fp16, can then
    // land on the neighbouring fp16 value (one fp16 ulp, 2^-10 relative) when the exact value sits by a
    // rounding boundary, and a code whose value sits within that much of a half step moves by one.
    // Those are the only differences allowed: scales within one fp16 ulp, codes off by at most one, and
    // at most 1% of them; the loss (a sum of the same terms) agrees to float precision.
    for (int bs : {1, 7, 32}) {
      GPTQOptions o = base;
      o.block_size = bs;
      const GPTQResult r = gptq_quantize(w, h, o, "w");
      ASSERT_EQ(r.q.qweight.size(), naive.size());
      size_t moved = 0;
      for (size_t i = 0; i < naive.size(); ++i) {
        const int d = int(r.q.qweight[i]) - int(naive[i]);
        EXPECT_LE(std::abs(d), 1) << "block " << bs << " code " << i;
        moved += d != 0;
      }
      EXPECT_LE(moved, naive.size() / 100) << "block " << bs;
      ASSERT_EQ(r.q.scales.data.size(), naive_scales.size());
      for (size_t i = 0; i < naive_scales.size(); ++i)
        EXPECT_LE(std::abs(r.q.scales.data[i] - naive_scales[i]), std::abs(naive_scales[i]) * 0x1p-10f)
            << "block " << bs << " scale " << i;
      EXPECT_EQ(r.q.g_idx, r1.q.g_idx);
      EXPECT_NEAR(r.stats.loss, r1.stats.loss, 1e-4 * r1.stats.loss);
    }
  }
}

TEST(Gptq, GroupIndexConventions) {
  const int64_t in = 64;
  const Tensor w = random_matrix(8, in, 3);
  const std::vector<double> h = hessian_of(correlated_inputs(256, in, 4));
  const GPTQResult a = gptq_quantize(w, h, {.quant = {.bits = 4, .group_size = 16}, .act_order = true}, "w");
  // Act-order: columns by descending diag(H); g_idx[col] = position / 16.
  std::vector<int64_t> perm(static_cast<size_t>(in));
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(), [&](int64_t x, int64_t y) { return h[size_t(x * in + x)] > h[size_t(y * in + y)]; });
  for (int64_t p = 0; p < in; ++p) EXPECT_EQ(a.q.g_idx[size_t(perm[size_t(p)])], p / 16);
  EXPECT_FALSE(std::is_sorted(a.q.g_idx.begin(), a.q.g_idx.end()));  // really permuted
  const GPTQResult s = gptq_quantize(w, h, {.quant = {.bits = 4, .group_size = 16}, .act_order = true, .static_groups = true}, "w");
  for (int64_t c = 0; c < in; ++c) EXPECT_EQ(s.q.g_idx[size_t(c)], c / 16);
}

TEST(Gptq, BeatsRtnObjectiveOnCorrelatedInputs) {
  const int64_t out = 64, in = 128;
  const Tensor w = random_matrix(out, in, 21, 0.05f);
  const std::vector<double> h = hessian_of(correlated_inputs(1024, in, 22));
  for (int bits : {2, 3, 4})
    for (int gs : {-1, 32})
      for (bool act : {false, true}) {
        const QuantParams qp{.bits = bits, .group_size = gs};
        const GPTQResult g = gptq_quantize(w, h, {.quant = qp, .block_size = 32, .act_order = act}, "w");
        const double rtn = relative_objective(w, quantize_rtn(w, qp, "w").dequantize(), h);
        // The inputs have 4 dominant directions over 128 columns, so most of the error can be moved
        // into directions the inputs barely excite: expect far less than half of RTN's objective.
        EXPECT_LT(g.stats.objective, 0.5 * rtn) << bits << " bits, gs " << gs << ", act " << act;
        EXPECT_GT(g.stats.objective, 0.0);
        EXPECT_GT(g.stats.loss, 0.0);
        // The reported objective is the one of the exported (fp16-scale) weights.
        EXPECT_DOUBLE_EQ(g.stats.objective, relative_objective(w, g.q.dequantize(), h));
      }
}

TEST(Gptq, DeadInputs) {
  const int64_t in = 32;
  Tensor x = correlated_inputs(256, in, 5);
  for (int64_t r = 0; r < 256; ++r) x.data[size_t(r * in + 5)] = x.data[size_t(r * in + 17)] = 0.0f;
  const std::vector<double> h = hessian_of(x);
  ASSERT_EQ(h[5 * in + 5], 0.0);
  const Tensor w = random_matrix(16, in, 6);
  for (bool act : {false, true}) {
    const GPTQResult g = gptq_quantize(w, h, {.quant = {.bits = 4, .group_size = 16}, .act_order = act}, "w");
    EXPECT_EQ(g.stats.dead_inputs, 2);
    const Tensor d = g.q.dequantize();
    for (int64_t r = 0; r < 16; ++r) {
      EXPECT_EQ(d.data[size_t(r * in + 5)], 0.0f);  // W[:, dead] = 0 quantizes to the zero point
      EXPECT_EQ(d.data[size_t(r * in + 17)], 0.0f);
    }
    for (float v : d.data) ASSERT_TRUE(std::isfinite(v));
    EXPECT_TRUE(std::isfinite(g.stats.objective));
  }
}

TEST(Gptq, SingularHessianRaisesDampingAndReportsIt) {
  const Tensor w = random_matrix(8, 2, 8);
  // [[1, 1], [1, 1]] is singular: its Cholesky factorization meets a pivot of exactly 0 without damping.
  const std::vector<double> singular = {1, 1, 1, 1};
  const GPTQResult g = gptq_quantize(w, singular, {.quant = {.bits = 4, .group_size = -1}, .damp_percent = 0.0}, "w");
  EXPECT_EQ(g.stats.damp_percent_used, 1e-3);
  // [[1, 20], [20, 1]] has eigenvalue −19: no damping up to 100% of the mean diagonal (1) helps.
  const std::string msg = error_of([&] {
    gptq_quantize(w, std::vector<double>{1, 20, 20, 1}, {.quant = {.bits = 4, .group_size = -1}}, "model.layers.3.self_attn.v_proj");
  });
  EXPECT_NE(msg.find("Hessian of 'model.layers.3.self_attn.v_proj' is not positive definite even with damping 1"), std::string::npos)
      << msg;
}

TEST(Gptq, BadInputsAreNamedErrors) {
  const Tensor w = random_matrix(8, 12, 1);
  std::vector<double> h(144, 0.0);
  for (int i = 0; i < 12; ++i) h[size_t(i * 12 + i)] = 1.0;
  EXPECT_NE(error_of([&] { gptq_quantize(w, h, {.quant = {.bits = 4, .group_size = 8}}, "layers.0.mlp.up_proj"); })
                .find("layers.0.mlp.up_proj"),
            std::string::npos);
  EXPECT_NE(error_of([&] { gptq_quantize(w, h, {.quant = {.bits = 1, .group_size = -1}}, "w"); }), "");
  EXPECT_NE(error_of([&] { gptq_quantize(w, h, {.quant = {.bits = 9, .group_size = -1}}, "w"); }), "");
  Tensor bad = w;
  bad.data[13] = std::numeric_limits<float>::infinity();
  EXPECT_NE(error_of([&] { gptq_quantize(bad, h, {.quant = {.bits = 4, .group_size = 4}}, "layers.7.mlp.down_proj"); })
                .find("layers.7.mlp.down_proj"),
            std::string::npos);
  bad.data[13] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_NE(error_of([&] { gptq_quantize(bad, h, {.quant = {.bits = 4, .group_size = 4}}, "w"); }), "");
  std::vector<double> hn = h;
  hn[5] = std::numeric_limits<double>::quiet_NaN();
  EXPECT_NE(error_of([&] { gptq_quantize(w, hn, {.quant = {.bits = 4, .group_size = 4}}, "q"); }).find("'q'"), std::string::npos);
  EXPECT_NE(error_of([&] { gptq_quantize(w, std::vector<double>(100, 0.0), {}, "w"); }), "");  // wrong H size
  HessianAccumulator empty(12);
  EXPECT_NE(error_of([&] { gptq_quantize(w, empty, {.quant = {.bits = 4, .group_size = 4}}, "w"); }), "");
}

TEST(Gptq, ByteIdenticalForOneAndTwoThreads) {
  // 200 rows = 4 row chunks (the last one partial), 160 inputs = 3 Hessian tiles.
  const int64_t out = 200, in = 160;
  const Tensor w = random_matrix(out, in, 31);
  const Tensor x = correlated_inputs(600, in, 32);
  struct Run {
    std::vector<double> h;
    GPTQResult r;
  };
  auto run = [&](int threads) {
    set_num_threads(threads);
    Run out_run;
    HessianAccumulator acc(in);
    acc.add_batch(x.ptr(), 600, in);
    out_run.h = acc.hessian();
    out_run.r = gptq_quantize(w, acc, {.quant = {.bits = 3, .group_size = 32}, .block_size = 64, .act_order = true}, "w");
    return out_run;
  };
  const int saved = num_threads();
  const Run a = run(1), b = run(2);
  set_num_threads(saved);
  ASSERT_EQ(a.h.size(), b.h.size());
  EXPECT_EQ(std::memcmp(a.h.data(), b.h.data(), a.h.size() * sizeof(double)), 0);
  EXPECT_EQ(a.r.q.qweight, b.r.q.qweight);
  EXPECT_EQ(std::memcmp(a.r.q.scales.ptr(), b.r.q.scales.ptr(), a.r.q.scales.data.size() * 4), 0);
  EXPECT_EQ(a.r.q.zeros, b.r.q.zeros);
  EXPECT_EQ(a.r.q.g_idx, b.r.q.g_idx);
  EXPECT_EQ(std::memcmp(&a.r.stats.loss, &b.r.stats.loss, sizeof(double)), 0);
  EXPECT_EQ(std::memcmp(&a.r.stats.objective, &b.r.stats.objective, sizeof(double)), 0);
}
