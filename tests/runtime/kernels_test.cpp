// The CPU kernels (runtime/cpu): every instruction-set level against the scalar reference, and every
// format against the fp32 product of its dequantized row, with bounds derived below.
//
// Activation codes. The spec (kernels.h): per block, d = max|x|/127, q = round-half-even(x · 127/max|x|).
// The test computes the codes itself; every level must produce exactly them.
//
// Level vs scalar reference. Both compute the same exact integer sums and differ only in the order
// of the fp32 operations that scale and add them. Each output is a sum of terms t_k, each an exact
// integer times at most two fp32 scales; a sum of terms computed in any order with chains of at most
// K additions is within (K + 3)·u·Σ|t_k| of the exact one (u = 2⁻²⁴; 3 for the roundings inside a
// term). The longest chain: one addition per 32-weight block (or per SIMD lane and 64-weight chunk),
// plus 16 for lane reductions: K ≤ n/32 + 16. Σ|t_k| ≤ Σ_i (|w_i| + 2·|o_i|)·|x̂_i|, where o_i is the
// offset a kernel removes separately (Q4_0: 8d, Q8_0: 128d for the unsigned-code trick, K-quants:
// dmin·m, Q6_K: 32·d·|sc|, GQ4: s·z, IQ4_NL/IQ4_XS and the low-bit types: 128·|α| for the unsigned-code
// trick) and x̂ = d·q. Two such computations differ by twice that.
//
// Any level vs the fp32 product Σ w_i·x_i of the dequantized row (quant/ggml's dequantizer, which
// matches llama.cpp byte for byte). Rounding x moves it by |x − d·q| ≤ d/2 + (127·u)·d + 3u·|x|
// (fp32 rounding of x·(127/max) and of the two scales), so the product moves by at most
// Σ_i |w_i|·(d_b(i)/2·(1 + 2⁻¹⁴) + 2⁻²¹·|x_i|), plus the order bound above. Float formats have no
// activation rounding: only the order bound applies. That worst case (every rounding error aligned
// with its weight) is rigorous but loose enough to hide a wrong sub-block scale, so the error is
// also held to its statistical size: the rounding errors e_i are independent and uniform on
// [−d/2, d/2], so Σ w_i·e_i has standard deviation σ = √(Σ w_i²·d_b(i)²/12); 6σ (plus the order
// bound) is exceeded with probability 2·10⁻⁹ for these fixed, seeded inputs.
#include "runtime/kernel_cases.h"

TEST(Kernels, ActivationCodesFollowTheSpecAtEveryLevel) {
  const int64_t n = 2048;
  auto x = gaussian(n, 7);
  std::fill(x.begin(), x.begin() + kActBlock, 0.0f);  // an all-zero block: d = 0, codes 0
  const SpecAct s = spec_quantize(x);
  for (Isa isa : levels()) {
    std::vector<int8_t> q(static_cast<size_t>(n));
    std::vector<float> d(static_cast<size_t>(n / kActBlock)), dsum16(static_cast<size_t>(n / 16)),
        dexp(static_cast<size_t>(n / 4));
    kernels_for(isa).quantize_act(x.data(), n, q.data(), d.data(), dsum16.data(), dexp.data());
    EXPECT_EQ(q, s.q) << isa_name(isa);
    EXPECT_EQ(d, s.d) << isa_name(isa);
    EXPECT_EQ(dsum16, s.dsum16) << isa_name(isa);
    EXPECT_EQ(dexp, s.dexp) << isa_name(isa);
  }
}

TEST(Kernels, EveryLevelMatchesTheScalarReference) {
  std::map<std::string, double> worst;  // largest |level − scalar| / bound per format
  for (const Case& c : kGgmlCases) {
    const FormatView fi = view_of(c.format);
    for (int64_t n : {int64_t(256), int64_t(1280), int64_t(4096), int64_t(576)}) {
      if (n % fi.block != 0) continue;
      const Matrix row = make_row(c, n, uint32_t(n));
      const RowParams p{n, 0};
      for (int na = 1; na <= kMaxActRows; ++na) {
        const Acts ref_acts = make_acts(na, n, !fi.float_acts, Isa::Scalar, 11);
        float ref[kMaxActRows];
        kernels_scalar().dot[c.format](row.bytes.data(), ref_acts.rows.data(), na, p, ref);
        for (Isa isa : levels()) {
          const Acts acts = make_acts(na, n, !fi.float_acts, isa, 11);
          float got[kMaxActRows];
          kernels_for(isa).dot[c.format](row.bytes.data(), acts.rows.data(), na, p, got);
          for (int a = 0; a < na; ++a) {
            const SpecAct s = fi.float_acts ? SpecAct{} : spec_quantize(acts.x[size_t(a)]);
            double mag = 0;
            for (int64_t i = 0; i < n; ++i) {
              const double xh = fi.float_acts ? acts.x[size_t(a)][size_t(i)] : s.xhat[size_t(i)];
              mag += (std::fabs(row.w[size_t(i)]) + 2 * offset_of(c.format, row.bytes.data(), i)) * std::fabs(xh);
            }
            const double bound = 2 * (double(n) / 32 + 16 + 3) * kU * mag;
            const double err = std::fabs(double(got[a]) - ref[a]);
            EXPECT_LE(err, bound) << fi.name << " " << isa_name(isa) << " n " << n << " na " << na << " row " << a;
            worst[std::string(fi.name)] = std::max(worst[std::string(fi.name)], err / bound);
          }
        }
      }
    }
  }
  for (const auto& [name, r] : worst) std::printf("%-5s largest |level - scalar| = %.3f of the bound\n", name.c_str(), r);
}

// The prompt path: rows decoded once (Kernels::decode) and multiplied in tiles (Kernels::gemm_tile),
// against the scalar dot reference, with the same order bound.
TEST(Kernels, DecodedTilesMatchTheScalarReference) {
  for (const Case& c : kGgmlCases) {
    const FormatView fi = view_of(c.format);
    if (fi.float_acts) continue;
    // 576 = 4.5 · 128: the tails of the 128/256-code steps (32-weight formats only; K-quants need 256s)
    for (const int64_t n : {int64_t(1280), fi.block == 32 ? int64_t(576) : int64_t(768)}) {
    const int nr = 3;
    std::vector<Matrix> rows;
    for (int r = 0; r < nr; ++r) rows.push_back(make_row(c, n, uint32_t(100 + r)));
    const RowParams p{n, 0};
    for (Isa isa : levels()) {
      const Kernels& k = kernels_for(isa);
      std::vector<std::vector<uint8_t>> u(nr, std::vector<uint8_t>(static_cast<size_t>(n)));
      std::vector<std::vector<float>> al(nr, std::vector<float>(static_cast<size_t>(n / 4))),
          be(nr, std::vector<float>(static_cast<size_t>(n / 16)));
      std::vector<DecodedRow> dec;
      for (int r = 0; r < nr; ++r) {
        dec.push_back(DecodedRow{u[size_t(r)].data(), al[size_t(r)].data(), be[size_t(r)].data()});
        k.decode[c.format](rows[size_t(r)].bytes.data(), p, dec.back());
      }
      for (int na = 1; na <= kMaxActRows; ++na) {
        const Acts acts = make_acts(na, n, true, isa, 41);
        std::vector<float> got(static_cast<size_t>(na * nr));
        k.gemm_tile[c.format](dec.data(), nr, acts.rows.data(), na, n, got.data(), nr);
        for (int r = 0; r < nr; ++r) {
          float ref[kMaxActRows];
          kernels_scalar().dot[c.format](rows[size_t(r)].bytes.data(), acts.rows.data(), na, p, ref);
          for (int a = 0; a < na; ++a) {
            const SpecAct s = spec_quantize(acts.x[size_t(a)]);
            double mag = 0;
            for (int64_t i = 0; i < n; ++i)
              mag += (std::fabs(rows[size_t(r)].w[size_t(i)]) + 2 * offset_of(c.format, rows[size_t(r)].bytes.data(), i)) *
                     std::fabs(s.xhat[size_t(i)]);
            EXPECT_LE(std::fabs(double(got[size_t(a * nr + r)]) - ref[a]), 2 * (double(n) / 32 + 16 + 3) * kU * mag)
                << fi.name << " " << isa_name(isa) << " n " << n << " row " << r << " act " << a << " of " << na;
          }
        }
      }
    }
    }
  }
}

TEST(Kernels, EveryFormatMatchesTheFp32ProductWithinTheActivationRounding) {
  double worst_ratio = 0;
  for (const Case& c : kGgmlCases) {
    const FormatView fi = view_of(c.format);
    const int64_t n = 4096;
    const Matrix row = make_row(c, n, 3);
    const RowParams p{n, 0};
    for (Isa isa : levels()) {
      const Acts acts = make_acts(1, n, !fi.float_acts, isa, 5);
      float got;
      kernels_for(isa).dot[c.format](row.bytes.data(), acts.rows.data(), 1, p, &got);
      const std::vector<float>& x = acts.x[0];
      double exact = 0, act_bound = 0, var = 0, mag = 0;
      for (int64_t i = 0; i < n; ++i) {
        exact += double(row.w[size_t(i)]) * x[size_t(i)];
        mag += (std::fabs(row.w[size_t(i)]) + 2 * offset_of(c.format, row.bytes.data(), i)) * std::fabs(x[size_t(i)]);
      }
      if (!fi.float_acts) {
        const SpecAct s = spec_quantize(x);
        for (int64_t i = 0; i < n; ++i) {
          const double d = s.d[size_t(i / kActBlock)], w = row.w[size_t(i)];
          act_bound += std::fabs(w) * (d / 2 * (1 + 0x1p-14) + 0x1p-21 * std::fabs(x[size_t(i)]));
          var += w * w * d * d / 12;
        }
        mag *= 1.01;  // Σ|w|·|x̂| ≤ Σ|w|·|x|·(1 + 1/127·…): x̂ differs from x by at most d/2
      }
      const double order = (double(n) / 32 + 16 + 3) * kU * mag;
      const double err = std::fabs(double(got) - exact);
      EXPECT_LE(err, act_bound + order) << fi.name << " " << isa_name(isa);
      EXPECT_LE(err, 6 * std::sqrt(var) + order) << fi.name << " " << isa_name(isa) << " (6 sigma)";
      if (act_bound > 0) worst_ratio = std::max(worst_ratio, err / std::sqrt(var));
      std::printf("%-5s %-12s |y - y_fp32| = %.3g  worst-case bound %.3g  sigma %.3g  (|y| %.3g)\n",
                  std::string(fi.name).c_str(), std::string(isa_name(isa)).c_str(), err, act_bound + order,
                  std::sqrt(var), std::fabs(exact));
    }
  }
  std::printf("worst |error| / sigma of the activation rounding: %.2f\n", worst_ratio);
}

