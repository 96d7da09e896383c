// qmatmul, the CPU engine's matrix products (runtime/cpu/qmatrix.h), against the dequantized product and
// against itself: GPTQ / AWQ groups repacked to GQ4, the prompt paths (fp32 and bf16 tiles, decoded
// tiles) and generation over row ranges, thread-count independence, qmatmul_many, and the kernels of
// the attention softmax and SiLU. The bounds are kernels_test.cpp's.
#include "runtime/kernel_cases.h"

// ------------------------------------------------------------------------------------------------
// GPTQ / AWQ groups through make_qmatrix (repacked to GQ4), and qmatmul's paths.

namespace {

// A weight source holding one GPTQ- or AWQ-packed layer and one F16 one, built from a GroupQuantized.
class GroupSource final : public WeightSource {
 public:
  GroupSource(const GroupQuantized& q, bool awq) : awq_(awq) {
    if (awq) {
      const AwqPacked p = pack_awq_gemm(q, "w");
      qweight_ = p.qweight, qzeros_ = p.qzeros, scales_ = p.scales;
      pw_.qweight = view("w.qweight", DType::I32, {p.in, p.out / 8}, qweight_.data(), qweight_.size() * 4);
      pw_.qzeros = view("w.qzeros", DType::I32, {p.n_groups, p.out / 8}, qzeros_.data(), qzeros_.size() * 4);
    } else {
      const GptqPacked p = pack_gptq(q, GptqCheckpointFormat::kV1, "w");
      qweight_ = p.qweight, qzeros_ = p.qzeros, scales_ = p.scales, g_idx_ = p.g_idx;
      pw_.qweight = view("w.qweight", DType::I32, {p.in * p.bits / 32, p.out}, qweight_.data(), qweight_.size() * 4);
      pw_.qzeros = view("w.qzeros", DType::I32, {p.n_groups, p.out * p.bits / 32}, qzeros_.data(), qzeros_.size() * 4);
      pw_.g_idx = view("w.g_idx", DType::I32, {p.in}, g_idx_.data(), g_idx_.size() * 4);
    }
    pw_.scales = view("w.scales", DType::F16, {q.n_groups(), q.out}, scales_.data(), scales_.size() * 2);
    pw_.kind = awq ? PackedWeight::Kind::Awq : PackedWeight::Kind::Gptq;
    pw_.shape = {q.out, q.in};
    pw_.bits = q.bits;
    pw_.group_size = q.group_size;
    pw_.gptq_v1 = true;
  }
  bool has(const std::string& n) const override { return n == "w"; }
  Shape shape(const std::string&) const override { return pw_.shape; }
  Tensor load(const std::string&) const override { throw Error("not used"); }
  std::vector<std::string> names() const override { return {"w"}; }
  std::string format(const std::string&) const override { return "GPTQ"; }
  size_t stored_bytes(const std::string&) const override { return 0; }
  std::optional<PackedWeight> packed(const std::string&) const override { return pw_; }

 private:
  static TensorView view(std::string name, DType t, Shape s, const void* p, size_t bytes) {
    TensorView v;
    v.name = std::move(name), v.dtype = t, v.shape = std::move(s), v.data = static_cast<const uint8_t*>(p), v.nbytes = bytes;
    return v;
  }
  bool awq_;
  std::vector<int32_t> qweight_, qzeros_, g_idx_;
  std::vector<uint16_t> scales_;
  PackedWeight pw_;
};

GroupQuantized make_groups(int64_t out, int64_t in, int bits, int gs, bool act_order, uint32_t seed) {
  const auto w = gaussian(out * in, seed, 0.02f);
  QuantParams p;
  p.bits = bits, p.group_size = gs;
  GroupQuantized q = quantize_rtn(Tensor({out, in}, w), p, "w");
  if (act_order) {  // a column permutation as act-order produces: group g = {perm[g·gs …]}
    std::vector<int32_t> perm(static_cast<size_t>(in));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), std::mt19937(seed));
    for (int64_t j = 0; j < in; ++j) q.g_idx[size_t(perm[size_t(j)])] = int32_t(j / gs);
  }
  return q;
}

}  // namespace

TEST(Kernels, GptqAndAwqGroupsThroughQmatmulMatchTheDequantizedProduct) {
  struct GCase {
    int bits, gs;
    bool act_order, awq;
  };
  double worst_sigma = 0, worst_bound = 0;
  for (const GCase& gc : {GCase{4, 128, false, false}, GCase{4, 128, true, false}, GCase{4, 64, false, false},
                          GCase{3, 128, true, false}, GCase{2, 256, false, false}, GCase{4, 128, false, true},
                          GCase{4, -1, false, false}}) {
    const int64_t out = 96, in = 1024, T = 7;
    const GroupQuantized q = make_groups(out, in, gc.bits, gc.gs, gc.act_order, 17);
    const Tensor w = q.dequantize();
    GroupSource src(q, gc.awq);
    const auto m = make_qmatrix(src, "w", nullptr);
    ASSERT_TRUE(m) << gc.bits << " bits";
    EXPECT_EQ(m->format, GgmlType::GQ4);
    EXPECT_EQ(!m->col_perm.empty(), gc.act_order);
    // Row dequantization agrees exactly with the checkpoint reader's.
    std::vector<float> r(static_cast<size_t>(in));
    for (int64_t o = 0; o < out; o += 17) {
      qmatrix_row(*m, o, r.data());
      for (int64_t j = 0; j < in; ++j) ASSERT_EQ(r[size_t(j)], w.data[size_t(o * in + j)]);
    }
    const auto x = gaussian(T * in, 23);
    for (Isa isa : levels()) {
      set_isa(isa);
      std::vector<float> y(static_cast<size_t>(T * out)), y1(static_cast<size_t>(out));
      qmatmul(*m, x.data(), T, y.data(), nullptr);
      for (int64_t t = 0; t < T; ++t) {
        // The packed column order decides the activation blocks.
        std::vector<float> xp(static_cast<size_t>(in));
        for (int64_t j = 0; j < in; ++j) xp[size_t(j)] = x[size_t(t * in + (m->col_perm.empty() ? j : m->col_perm[size_t(j)]))];
        const SpecAct s = spec_quantize(xp);
        qmatmul(*m, x.data() + t * in, 1, y1.data(), nullptr);  // generation path: the same numbers
        for (int64_t o = 0; o < out; ++o) {
          double exact = 0, act_bound = 0, var = 0, mag = 0;
          for (int64_t j = 0; j < in; ++j) {
            const int64_t col = m->col_perm.empty() ? j : m->col_perm[size_t(j)];
            const double wv = w.data[size_t(o * in + col)], d = s.d[size_t(j / kActBlock)];
            exact += wv * xp[size_t(j)];
            act_bound += std::fabs(wv) * (d / 2 * (1 + 0x1p-14) + 0x1p-21 * std::fabs(xp[size_t(j)]));
            var += wv * wv * d * d / 12;
            const int64_t g = q.g_idx[size_t(col)];
            const GroupParams gp = q.params(g, o);
            mag += (std::fabs(wv) + 2 * std::fabs(gp.scale * gp.zero)) * std::fabs(xp[size_t(j)]) * 1.01;
          }
          const double order = (double(in) / 32 + 19) * kU * mag, err = std::fabs(y[size_t(t * out + o)] - exact);
          EXPECT_LE(err, act_bound + order) << isa_name(isa) << " bits " << gc.bits << " gs " << gc.gs << " row " << o;
          // 6σ of the activation rounding (see the file comment); over 96·7 outputs per case a
          // Gaussian tail would exceed it with probability ~10⁻⁶.
          EXPECT_LE(err, 6 * std::sqrt(var) + order) << isa_name(isa) << " bits " << gc.bits << " row " << o;
          worst_sigma = std::max(worst_sigma, err / std::sqrt(var));
          worst_bound = std::max(worst_bound, err / (act_bound + order));
          // The generation path (one row, the dot kernels) within the same bounds.
          EXPECT_LE(std::fabs(y1[size_t(o)] - exact), 6 * std::sqrt(var) + order) << isa_name(isa) << " one row";
        }
      }
    }
    set_isa(detected_isa());
  }
  std::printf("GQ4: largest |y - y_fp32| = %.2f sigma of the activation rounding, %.4f of the worst-case bound\n",
              worst_sigma, worst_bound);
}

// Prompts on float formats (fp32 tiles over transposed panels at AVX-512, panels + sgemm elsewhere)
// against the product in double: each output is a chain of `in` fp32 multiply-adds, so it is within
// (in + 2)·u·Σ|w·x| of the exact sum. Sizes off every block size: 40 rows (panels of 16), 1000
// columns (16-wide transposes, 512-wide column blocks), 13 activation rows (tiles of 12).
TEST(Kernels, FloatFormatsManyRowsMatchTheExactProduct) {
  const int64_t out = 40, in = 1000, T = 13;
  for (const Case c : {Case{GgmlType::F32, GgmlType::F32}, Case{GgmlType::F16, GgmlType::F16}, Case{GgmlType::BF16, GgmlType::BF16}}) {
    const Matrix mat = make_matrix(c, out, in, 51);
    const QMatrix& m = mat.m;
    const std::vector<float>& wd = mat.w;
    const auto x = gaussian(T * in, 53);
    std::vector<float> bias(static_cast<size_t>(out));
    for (int64_t r = 0; r < out; ++r) bias[size_t(r)] = 0.01f * float(r);
    for (Isa isa : levels()) {
      set_isa(isa);
      std::vector<float> y(static_cast<size_t>(T * out));
      qmatmul(m, x.data(), T, y.data(), bias.data());
      for (int64_t t = 0; t < T; ++t)
        for (int64_t r = 0; r < out; ++r) {
          double exact = bias[size_t(r)], mag = std::fabs(bias[size_t(r)]);
          for (int64_t j = 0; j < in; ++j) {
            const double p = double(wd[size_t(r * in + j)]) * x[size_t(t * in + j)];
            exact += p, mag += std::fabs(p);
          }
          EXPECT_LE(std::fabs(y[size_t(t * out + r)] - exact), double(in + 2) * kU * mag)
              << ggml::type_name(c.format) << " " << isa_name(isa) << " t " << t << " r " << r;
        }
    }
    set_isa(detected_isa());
  }
}

namespace {

// y = x · Wᵀ of T activation rows against the fp32 product of the dequantized matrix: within the 8-bit
// activation rounding's worst case Σ|w|·(d_b/2·(1 + 2⁻¹⁴) + 2⁻²¹|x|) plus the order bound of the fp32 chain.
void expect_within_activation_bound(const Case& c, const Matrix& mat, const std::vector<float>& x, int64_t T,
                                    const std::vector<float>& y, const std::string& where) {
  const int64_t out = mat.m.rows, in = mat.m.cols;
  for (int64_t t = 0; t < T; ++t) {
    const std::vector<float> xt(x.begin() + t * in, x.begin() + (t + 1) * in);
    const SpecAct s = spec_quantize(xt);
    for (int64_t r = 0; r < out; ++r) {
      double exact = 0, act = 0, mag = 0;
      for (int64_t j = 0; j < in; ++j) {
        const double w = mat.w[size_t(r * in + j)];
        exact += w * xt[size_t(j)];
        act += std::fabs(w) * (s.d[size_t(j / kActBlock)] / 2 * (1 + 0x1p-14) + 0x1p-21 * std::fabs(xt[size_t(j)]));
        mag += (std::fabs(w) + 2 * offset_of(c.format, mat.bytes.data() + r * mat.m.row_bytes, j)) *
               std::fabs(xt[size_t(j)]) * 1.01;
      }
      EXPECT_LE(std::fabs(y[size_t(t * out + r)] - exact), act + double(in + 19) * kU * mag)
          << ggml::type_name(c.format) << " " << where << " t " << t << " r " << r;
    }
  }
}

}  // namespace

// The prompt path of every integer format through qmatmul (13 rows: tiles at every level, the exact
// fp32 tiles at AVX-512) against the fp32 product of the dequantized matrix, within the activation
// rounding's worst case (zero for the exact tiles) plus the order bound of the longer fp32 chain.
TEST(Kernels, IntegerFormatsManyRowsMatchTheDequantizedProduct) {
  const int64_t out = 40, in = 1024, T = 13;
  for (const Case& c : kGgmlCases) {
    if (float_acts(c.format)) continue;
    const Matrix mat = make_matrix(c, out, in, 61);
    const QMatrix& m = mat.m;
    const auto x = gaussian(T * in, 67);
    // every level, and at AVX-512 both prompt paths where the CPU has bf16 (fp32 tiles, bf16 tiles:
    // the bf16 rounding, ≤ 2⁻⁸|x|, is within the 8-bit worst case used here: d/2 ≥ |x|/254)
    std::vector<std::pair<Isa, bool>> paths;
    for (Isa isa : levels()) paths.push_back({isa, false});
    if (bf16_kernels()) paths.push_back({Isa::Avx512, true});
    for (const auto& [isa, bf16] : paths) {
      set_isa(isa);
      set_bf16_enabled(bf16);
      std::vector<float> y(static_cast<size_t>(T * out));
      qmatmul(m, x.data(), T, y.data(), nullptr);
      expect_within_activation_bound(c, mat, x, T, y,
                                     std::string(isa_name(isa)) + (bf16 ? " bf16" : ""));
    }
    set_isa(detected_isa());
    set_bf16_enabled(true);
  }
}

// Rows of an odd number of 32-weight blocks (qmatrix.cpp sends them to the scalar kernels: the SIMD
// ones step over pairs of blocks) through both qmatmul paths, generation and prompt, against the fp32
// product of the dequantized matrix within the activation rounding's worst case plus the order bound.
TEST(Kernels, RowsOfAnOddNumberOfBlocksMatchTheDequantizedProduct) {
  const int64_t out = 24, in = 32 * 37;
  for (const Case c : {Case{GgmlType::Q8_0, GgmlType::Q8_0}, Case{GgmlType::Q4_0, GgmlType::Q4_0},
                       Case{GgmlType::IQ4_NL, GgmlType::IQ4_NL}, Case{GgmlType::MXFP4, GgmlType::MXFP4}}) {
    const Matrix mat = make_matrix(c, out, in, 91);
    for (const int64_t T : {int64_t(1), int64_t(3), int64_t(13)}) {
      const auto x = gaussian(T * in, 93);
      for (Isa isa : levels()) {
        set_isa(isa);
        std::vector<float> y(static_cast<size_t>(T * out));
        qmatmul(mat.m, x.data(), T, y.data(), nullptr);
        expect_within_activation_bound(c, mat, x, T, y, std::string(isa_name(isa)) + " T " + std::to_string(T));
      }
      set_isa(detected_isa());
    }
  }
}

// Prompts with bf16 products (AVX-512 BF16, Bf16Kernels): the weights are exact (codes ≤ 255, bf16
// weights), the activations rounded to bf16: |x − x̂| ≤ 2⁻⁸|x| (round to nearest even with an 8-bit
// significand: unit roundoff 2⁻⁸), so the product moves by at most 2⁻⁸·Σ|w_i·x_i| — and, the
// roundings being independent and within ±2⁻⁸|x_i|, by 6σ with σ² ≤ Σ (2⁻⁸·w_i·x_i)²/3 — plus the
// fp32 order bound.
TEST(Kernels, Bf16PromptsMatchTheExactProduct) {
  if (!bf16_kernels()) GTEST_SKIP() << "no AVX-512 BF16 on this CPU";
  const int64_t out = 40, in = 1024, T = 13;
  double worst_sigma = 0;
  for (const Case& c : kGgmlCases) {
    if (float_acts(c.format)) continue;  // float formats keep fp32 activations
    if (!bf16_kernels()->panel[c.format]) continue;  // the low-bit types: decoded tiles (the test above)
    const Matrix mat = make_matrix(c, out, in, 71);
    const QMatrix& m = mat.m;
    const std::vector<float>& wd = mat.w;
    const auto x = gaussian(T * in, 73);
    std::vector<float> y(static_cast<size_t>(T * out));
    qmatmul(m, x.data(), T, y.data(), nullptr);
    double fmt_worst = 0;
    for (int64_t t = 0; t < T; ++t)
      for (int64_t r = 0; r < out; ++r) {
        double exact = 0, sum_abs = 0, var = 0, mag = 0;
        for (int64_t j = 0; j < in; ++j) {
          const double p = double(wd[size_t(r * in + j)]) * x[size_t(t * in + j)];
          exact += p, sum_abs += std::fabs(p), var += p * p * 0x1p-16 / 3;
          mag += (std::fabs(wd[size_t(r * in + j)]) + 2 * offset_of(c.format, mat.bytes.data() + r * m.row_bytes, j)) *
                 std::fabs(x[size_t(t * in + j)]) * (1 + 0x1p-8);
        }
        const double order = double(in + 19) * kU * mag, err = std::fabs(y[size_t(t * out + r)] - exact);
        EXPECT_LE(err, 0x1p-8 * sum_abs + order) << ggml::type_name(c.format) << " t " << t << " r " << r;
        EXPECT_LE(err, 6 * std::sqrt(var) + order) << ggml::type_name(c.format) << " t " << t << " r " << r;
        worst_sigma = std::max(worst_sigma, err / std::sqrt(var));
        fmt_worst = std::max(fmt_worst, err / std::sqrt(var));
      }
    std::printf("bf16 prompts %s: largest %.2f sigma\n", std::string(ggml::type_name(c.format)).c_str(), fmt_worst);
  }
  std::printf("bf16 prompts: largest |y - y_exact| = %.2f sigma of the bf16 rounding\n", worst_sigma);
}

TEST(Kernels, QmatmulDoesNotDependOnTheThreadCount) {
  const Case c{GgmlType::Q4_K, GgmlType::Q4_K};
  const int64_t out = 200, in = 512, T = 9;
  Matrix mat = make_matrix(c, out, in, 31);
  QMatrix& m = mat.m;
  const auto x = gaussian(T * in, 37);
  std::vector<float> bias(static_cast<size_t>(out), 0.5f);
  std::vector<float> y1(static_cast<size_t>(T * out)), y2(y1.size());
  set_num_threads(1);
  qmatmul(m, x.data(), T, y1.data(), bias.data());
  set_num_threads(2);
  qmatmul(m, x.data(), T, y2.data(), bias.data());
  EXPECT_EQ(y1, y2);
  // A row map permutes outputs and nothing else.
  m.row_map.resize(size_t(out));
  for (int64_t r = 0; r < out; ++r) m.row_map[size_t(r)] = int32_t(out - 1 - r);
  qmatmul(m, x.data(), T, y2.data(), bias.data());
  for (int64_t t = 0; t < T; ++t)
    for (int64_t r = 0; r < out; ++r) EXPECT_EQ(y2[size_t(t * out + r)], y1[size_t(t * out + out - 1 - r)]);
}

// Generation's row ranges (Kernels::gemv): every row of a range, wherever it sits among the 16 a
// vector reduction takes and wherever the range starts, equals the one-row dot (kernels.h promises
// equality, and the threads' split of the rows relies on it); rows outside the range are not written;
// the row map picks the stored row. 40 rows: two full reductions and a tail of 8.
TEST(Kernels, GenerationRangesEqualTheOneRowDot) {
  std::vector<std::pair<std::string, std::shared_ptr<const QMatrix>>> mats;
  std::vector<Matrix> keep;
  keep.reserve(2 * std::size(kGgmlCases));
  const int64_t out = 40;
  for (const Case& c : kGgmlCases)
    // float formats: also a row length off every vector width (masked / one-by-one tails)
    for (const int64_t n : {int64_t(1280), float_acts(c.format) ? int64_t(1003)
                                           : ggml::traits(c.format).block_size == 32 ? int64_t(576) : int64_t(768)}) {
      keep.push_back(make_matrix(c, out, n, uint32_t(300 + n)));
      mats.emplace_back(std::string(ggml::type_name(c.format)) + " n " + std::to_string(n),
                        std::shared_ptr<const QMatrix>(&keep.back().m, [](const QMatrix*) {}));
    }
  const GroupQuantized g128 = make_groups(out, 1024, 4, 128, false, 61), g64 = make_groups(out, 576, 4, 64, false, 62);
  GroupSource s128(g128, false), s64(g64, true);
  mats.emplace_back("GQ4 g128", make_qmatrix(s128, "w", nullptr));
  mats.emplace_back("GQ4 g64 n 576", make_qmatrix(s64, "w", nullptr));
  std::vector<int32_t> map(static_cast<size_t>(out));
  for (int64_t r = 0; r < out; ++r) map[size_t(r)] = int32_t((r * 11) % out);  // a permutation (11 ⟂ 40)
  int checked = 0;
  for (const auto& [name, m] : mats) {
    ASSERT_TRUE(m) << name;
    const FormatView fi = view_of(m->format);
    const RowParams p = m->params();
    for (Isa isa : levels()) {
      const Kernels& k = kernels_for(isa);
      if (!k.gemv[m->format]) continue;
      const Acts acts = make_acts(1, m->cols, !fi.float_acts, isa, 71);
      for (const int32_t* rm : {static_cast<const int32_t*>(nullptr), static_cast<const int32_t*>(map.data())})
        for (const auto& [r0, r1] : {std::pair<int64_t, int64_t>{0, out}, {3, 29}, {16, 17}, {21, 40}}) {
          std::vector<float> y(static_cast<size_t>(out), std::nanf(""));
          k.gemv[m->format](m->data, m->row_bytes, rm, r0, r1, acts.rows[0], p, y.data());
          for (int64_t r = 0; r < out; ++r) {
            if (r < r0 || r >= r1) {
              EXPECT_TRUE(std::isnan(y[size_t(r)])) << name << " " << isa_name(isa) << ": row " << r << " written";
              continue;
            }
            float want;
            k.dot[m->format](m->data + size_t(rm ? rm[r] : r) * m->row_bytes, acts.rows.data(), 1, p, &want);
            EXPECT_EQ(y[size_t(r)], want) << name << " " << isa_name(isa) << " rows [" << r0 << ", " << r1 << ") row " << r;
            ++checked;
          }
        }
    }
  }
  if (detected_isa() == Isa::Avx512) {
    EXPECT_GT(checked, 0);
  }
}

namespace quantllm::cpu {
namespace {

// Attention's softmax at every level against a double-precision softmax. Bound per value y: the exp
// of each level (scalar: std::exp, < 1 ulp; AVX-512: polynomial, < 3 ulp) and the final multiply,
// 4·2⁻²³·y, plus the sum's rounding, (n/16 + 2)·2⁻²⁴·y (16 fp32 partial sums of n/16 terms each).
// The score minus the maximum is rounded to fp32 first (as in every fp32 softmax): |s − m|·2⁻²⁴·y.
// Tiny values are subnormal: two subnormal steps (2⁻¹⁴⁸) on top.
TEST(Kernels, SoftmaxMatchesTheExactOneAtEveryLevel) {
  for (const int64_t n : {1, 7, 16, 33, 500, 4096}) {
    std::vector<float> scores = gaussian(n, 41 + uint32_t(n), 4.0f);
    if (n > 2) scores[size_t(n / 2)] = -90.0f;  // exp underflows past the fp32 normals
    for (const auto& [lo, hi] : std::vector<std::pair<int64_t, int64_t>>{{0, n}, {n / 3, n}, {n / 4, n - n / 5}}) {
      if (lo >= hi) continue;
      double mx = -INFINITY, sum = 0;
      for (int64_t p = lo; p < hi; ++p) mx = std::max(mx, double(scores[size_t(p)]));
      for (int64_t p = lo; p < hi; ++p) sum += std::exp(double(scores[size_t(p)]) - mx);
      for (Isa isa : levels()) {
        SCOPED_TRACE(::testing::Message() << isa_name(isa) << " n=" << n << " [" << lo << ", " << hi << ")");
        std::vector<float> row = scores;
        kernels_for(isa).softmax(row.data(), lo, hi, n);
        double worst = 0;  // relative error of the normal values, in ulps (2⁻²⁴)
        for (int64_t p = 0; p < n; ++p) {
          const double want = (p >= lo && p < hi) ? std::exp(double(scores[size_t(p)]) - mx) / sum : 0.0;
          const double shifted = double(scores[size_t(p)]) - mx;  // rounded to fp32 by every level: 2⁻²⁴·|shifted|
          const double bound = (4 * 0x1p-23 + double(n / 16 + 2) * kU + std::abs(shifted) * kU) * want + 0x1p-148;
          if (want > 0x1p-126) {  // the exp's and the sum's part alone: against exp of the rounded difference
            const double same_arg = std::exp(double(float(shifted))) / sum;
            worst = std::max(worst, std::abs(row[size_t(p)] - same_arg) / same_arg / kU);
          }
          ASSERT_LE(std::abs(row[size_t(p)] - want), bound) << "p=" << p;
        }
        if (n == 4096 && lo == 0) std::printf("softmax %s, n = 4096: largest relative error %.2f·2^-24\n", std::string(isa_name(isa)).c_str(), worst);
      }
    }
  }
}

// The gated FFN's SiLU at every level against the product in double. Bound per value: the exp (scalar:
// < 1 ulp; AVX-512: < 3 ulp, the softmax's), 1 + e, the division and two multiplications, each ≤ 1 ulp
// and the exp's error damped by e/(1 + e) ≤ 1: 8·2⁻²⁴ relative. Gates past ±88 (e^|g| beyond fp32):
// the exact value is below 10⁻³⁶·|up| for g ≪ 0 and up·g for g ≫ 0; NaN-free either way.
TEST(Kernels, SiluMatchesTheExactOneAtEveryLevel) {
  for (const int64_t n : {1, 15, 16, 17, 1000}) {
    std::vector<float> gate = gaussian(n, 90 + uint32_t(n), 4.0f), up = gaussian(n, 91 + uint32_t(n));
    const float extremes[] = {0.0f, -0.0f, 100.0f, -100.0f, 88.5f, -88.5f, 1e-30f, -1e-30f};
    for (size_t i = 0; i < std::size(extremes) && i < size_t(n); ++i) gate[size_t(i) * 7 % size_t(n)] = extremes[i];
    for (Isa isa : levels()) {
      std::vector<float> got = up;
      kernels_for(isa).silu_mul(got.data(), gate.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        const double g = gate[size_t(i)], want = double(up[size_t(i)]) * g / (1.0 + std::exp(-g));
        const double bound = std::abs(g) > 88 ? 1e-36 * std::abs(up[size_t(i)]) + 8 * kU * std::abs(want)
                                              : 8 * kU * std::abs(want) + 0x1p-148;
        ASSERT_FALSE(std::isnan(got[size_t(i)])) << isa_name(isa) << " g=" << g;
        ASSERT_LE(std::abs(got[size_t(i)] - want), bound) << isa_name(isa) << " n=" << n << " g=" << g;
      }
    }
  }
}

// qmatmul_many (q/k/v, gate/up in one pass) gives qmatmul's numbers, bit for bit, at every thread count.
TEST(Kernels, QmatmulManyEqualsOneQmatmulEach) {
  const int64_t in = 512;
  struct M {
    Case c;
    int64_t out;
  };
  const std::vector<M> ms = {{{GgmlType::Q4_K, GgmlType::Q4_K}, 300}, {{GgmlType::Q6_K, GgmlType::Q6_K}, 64},
                             {{GgmlType::Q8_0, GgmlType::Q8_0}, 129}};
  std::vector<Matrix> made;
  std::vector<QMatrix> mats;
  std::vector<std::vector<float>> biases;
  for (size_t i = 0; i < ms.size(); ++i) {
    made.push_back(make_matrix(ms[i].c, ms[i].out, in, 51 + uint32_t(i)));
    biases.push_back(gaussian(ms[i].out, 61 + uint32_t(i)));
  }
  for (const Matrix& mm : made) mats.push_back(mm.m);
  for (const int64_t T : {1, 3, 9}) {
    const auto x = gaussian(T * in, 71);
    for (const int threads : {1, 2}) {
      set_num_threads(threads);
      std::vector<std::vector<float>> want, got;
      std::vector<QMatmulJob> jobs;
      for (size_t i = 0; i < mats.size(); ++i) {
        want.emplace_back(size_t(T * mats[i].rows));
        got.emplace_back(size_t(T * mats[i].rows), -1.0f);
        qmatmul(mats[i], x.data(), T, want.back().data(), i == 1 ? nullptr : biases[i].data());
      }
      for (size_t i = 0; i < mats.size(); ++i)
        jobs.push_back({&mats[i], got[i].data(), i == 1 ? nullptr : biases[i].data()});
      qmatmul_many(jobs, x.data(), T);
      for (size_t i = 0; i < mats.size(); ++i) EXPECT_EQ(got[i], want[i]) << "T=" << T << " threads=" << threads << " matrix " << i;
    }
  }
  set_num_threads(2);
}

// Act-order GQ4: matrices with one column order share a pass (q/k/v of one Hessian), others fall back
// to one qmatmul each; both give qmatmul's numbers.
TEST(Kernels, QmatmulManyKeepsTheActOrderColumns) {
  const int64_t in = 512;
  const GroupQuantized qa = make_groups(96, in, 4, 128, true, 17), qb = make_groups(40, in, 4, 128, true, 17),
                       qc = make_groups(64, in, 4, 128, true, 18);
  GroupSource sa(qa, false), sb(qb, false), sc(qc, false);
  const auto a = make_qmatrix(sa, "a", nullptr), b = make_qmatrix(sb, "b", nullptr), c = make_qmatrix(sc, "c", nullptr);
  ASSERT_TRUE(a && b && c);
  ASSERT_FALSE(a->col_perm.empty());
  ASSERT_EQ(a->col_perm, b->col_perm);
  ASSERT_NE(a->col_perm, c->col_perm);
  for (const int64_t T : {1, 3}) {
    const auto x = gaussian(T * in, 81);
    for (const QMatrix* other : {b.get(), c.get()}) {
      std::vector<float> wa(size_t(T * a->rows)), wo(size_t(T * other->rows)), ga(wa.size(), -1.0f), go(wo.size(), -1.0f);
      qmatmul(*a, x.data(), T, wa.data(), nullptr);
      qmatmul(*other, x.data(), T, wo.data(), nullptr);
      const QMatmulJob jobs[] = {{a.get(), ga.data(), nullptr}, {other, go.data(), nullptr}};
      qmatmul_many(jobs, x.data(), T);
      EXPECT_EQ(ga, wa) << "T=" << T << " with " << other->name;
      EXPECT_EQ(go, wo) << "T=" << T << " with " << other->name;
    }
  }
}

}  // namespace
}  // namespace quantllm::cpu

