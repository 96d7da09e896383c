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
// dmin·m, Q6_K: 32·d·|sc|, GQ4: s·z, IQ4_NL/IQ4_XS: 128·|α| for the unsigned-code trick) and x̂ = d·q. Two such computations differ by twice that.
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
#include "core/dtype.h"
#include "core/threads.h"
#include "quant/ggml/types.h"
#include "quant/gptq_format.h"
#include "runtime/cpu/kernels.h"
#include "runtime/cpu/qmatrix.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <random>

using namespace quantllm;
using namespace quantllm::cpu;
using ggml::GgmlType;

namespace {

// What the tests need of a type: the row of the one type table (quant/ggml/types.h), as one view.
struct FormatView {
  std::string_view name;
  int block, block_bytes;
  bool float_acts;
};
FormatView view_of(GgmlType t) {
  const auto& tr = ggml::traits(t);
  return {tr.name, tr.block_size, tr.type_size, float_acts(t)};
}

constexpr double kU = 0x1p-24;

std::vector<Isa> levels() {
  std::vector<Isa> v = {Isa::Scalar};
  if (detected_isa() >= Isa::Avx2) v.push_back(Isa::Avx2);
  if (detected_isa() >= Isa::Avx512) v.push_back(Isa::Avx512);
  return v;
}

// Gaussian values with a few large outliers, as LLM activations and weights have.
std::vector<float> gaussian(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = nd(rng);
  for (int64_t i = 0; i < n; i += 97) v[size_t(i)] *= 12.0f;
  return v;
}

// The activation codes as kernels.h specifies them, computed here independently.
struct SpecAct {
  std::vector<int8_t> q;
  std::vector<float> d, dsum16, dexp;
  std::vector<float> xhat;  // d·q
};
SpecAct spec_quantize(const std::vector<float>& x) {
  constexpr int block = kActBlock;
  SpecAct a;
  const int64_t n = int64_t(x.size());
  a.q.resize(size_t(n));
  a.xhat.resize(size_t(n));
  std::vector<int> sums;
  for (int64_t b = 0; b < n / block; ++b) {
    float amax = 0;
    for (int i = 0; i < block; ++i) amax = std::max(amax, std::fabs(x[size_t(b * block + i)]));
    const float id = amax > 0 ? 127.0f / amax : 0.0f, d = amax / 127.0f;
    int sum = 0;
    for (int i = 0; i < block; ++i) {
      const size_t k = size_t(b * block + i);
      a.q[k] = int8_t(std::nearbyint(x[k] * id));
      a.xhat[k] = d * float(a.q[k]);
      sum += a.q[k];
    }
    a.d.push_back(d);
    sums.push_back(sum);
    for (int l = 0; l < block / 4; ++l) a.dexp.push_back(d);
  }
  // dsum16: the blocks of each 16 values, d·Σq added left to right
  for (int64_t h = 0; h < n / 16; ++h) {
    float s = 0;
    for (int64_t b = h * 16 / block; b < (h + 1) * 16 / block; ++b) s += a.d[size_t(b)] * float(sums[size_t(b)]);
    a.dsum16.push_back(s);
  }
  return a;
}

struct Case {
  GgmlType format;
  GgmlType type;
};
const Case kGgmlCases[] = {
    {GgmlType::F32, GgmlType::F32},   {GgmlType::F16, GgmlType::F16},   {GgmlType::BF16, GgmlType::BF16},
    {GgmlType::Q8_0, GgmlType::Q8_0}, {GgmlType::Q4_0, GgmlType::Q4_0}, {GgmlType::Q4_K, GgmlType::Q4_K},
    {GgmlType::Q5_K, GgmlType::Q5_K}, {GgmlType::Q6_K, GgmlType::Q6_K}, {GgmlType::IQ4_NL, GgmlType::IQ4_NL},
    {GgmlType::IQ4_XS, GgmlType::IQ4_XS},
};

// |o_i| of the header comment for weight i of a packed ggml row.
double offset_of(GgmlType f, const uint8_t* row, int64_t i) {
  using namespace quantllm::ggml;
  switch (f) {
    case GgmlType::Q8_0: return 128.0 * f16_to_f32(reinterpret_cast<const BlockQ8_0*>(row)[i / 32].d);
    case GgmlType::Q4_0: return 8.0 * std::fabs(f16_to_f32(reinterpret_cast<const BlockQ4_0*>(row)[i / 32].d));
    case GgmlType::Q4_K: return 63.0 * std::fabs(f16_to_f32(reinterpret_cast<const BlockQ4_K*>(row)[i / 256].dmin));
    case GgmlType::Q5_K: return 63.0 * std::fabs(f16_to_f32(reinterpret_cast<const BlockQ5_K*>(row)[i / 256].dmin));
    case GgmlType::Q6_K: {
      const auto& b = reinterpret_cast<const BlockQ6_K*>(row)[i / 256];
      return 32.0 * std::fabs(f16_to_f32(b.d)) * std::abs(int(b.scales[(i % 256) / 16]));
    }
    case GgmlType::IQ4_NL: return 128.0 * std::fabs(f16_to_f32(reinterpret_cast<const BlockIQ4_NL*>(row)[i / 32].d));
    case GgmlType::IQ4_XS: {
      const auto& b = reinterpret_cast<const BlockIQ4_XS*>(row)[i / 256];
      return 128.0 * std::fabs(f16_to_f32(b.d)) * std::abs(iq4_xs_scale(b, int(i % 256) / 32) - 32);
    }
    default: return 0.0;
  }
}

// `out` rows of n Gaussian weights quantized by quant/ggml (llama.cpp's bytes), their dequantized
// values, and the QMatrix over the bytes (moving a Matrix keeps m valid: the byte buffer moves along).
struct Matrix {
  std::vector<uint8_t> bytes;
  std::vector<float> w;  // dequantized [out, n]
  QMatrix m;
};
Matrix make_matrix(const Case& c, int64_t out, int64_t n, uint32_t seed) {
  const auto x = gaussian(out * n, seed, 0.02f);
  Matrix r;
  r.bytes.resize(ggml::row_size(c.type, n) * size_t(out));
  ggml::quantize_rows(c.type, x.data(), r.bytes.data(), out, n, nullptr);
  r.w.resize(size_t(out * n));
  ggml::dequantize_rows(c.type, r.bytes.data(), r.w.data(), out, n);
  r.m.format = c.format, r.m.rows = out, r.m.cols = n, r.m.row_bytes = ggml::row_size(c.type, n);
  r.m.data = r.bytes.data();
  return r;
}
Matrix make_row(const Case& c, int64_t n, uint32_t seed) { return make_matrix(c, 1, n, seed); }

// Activation rows quantized by level `isa` (or fp32 for float formats).
struct Acts {
  std::vector<std::vector<float>> x, d, dsum16, dexp;
  std::vector<std::vector<int8_t>> q;
  std::vector<ActRow> rows;
};
Acts make_acts(int na, int64_t n, bool quantize, Isa isa, uint32_t seed) {
  Acts a;
  for (int t = 0; t < na; ++t) {
    a.x.push_back(gaussian(n, seed + uint32_t(t)));
    a.q.emplace_back(static_cast<size_t>(n));
    a.d.emplace_back(static_cast<size_t>(n / kActBlock));
    a.dsum16.emplace_back(static_cast<size_t>(n / 16));
    a.dexp.emplace_back(static_cast<size_t>(n / 4));
  }
  for (int t = 0; t < na; ++t) {
    const size_t i = size_t(t);
    ActRow r;
    r.x = a.x[i].data();
    if (quantize) {
      kernels_for(isa).quantize_act(r.x, n, a.q[i].data(), a.d[i].data(), a.dsum16[i].data(), a.dexp[i].data());
      r = ActRow{a.q[i].data(), a.d[i].data(), a.dsum16[i].data(), a.dexp[i].data(), r.x};
    }
    a.rows.push_back(r);
  }
  return a;
}

}  // namespace

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

// The prompt path of every integer format through qmatmul (13 rows: tiles at every level, the exact
// fp32 tiles at AVX-512) against the fp32 product of the dequantized matrix, within the activation
// rounding's worst case (zero for the exact tiles) plus the order bound of the longer fp32 chain.
TEST(Kernels, IntegerFormatsManyRowsMatchTheDequantizedProduct) {
  const int64_t out = 40, in = 1024, T = 13;
  for (const Case& c : kGgmlCases) {
    if (float_acts(c.format)) continue;
    const Matrix mat = make_matrix(c, out, in, 61);
    const QMatrix& m = mat.m;
    const std::vector<float>& wd = mat.w;
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
      for (int64_t t = 0; t < T; ++t) {
        const std::vector<float> xt(x.begin() + t * in, x.begin() + (t + 1) * in);
        const SpecAct s = spec_quantize(xt);
        for (int64_t r = 0; r < out; ++r) {
          double exact = 0, act = 0, mag = 0;
          for (int64_t j = 0; j < in; ++j) {
            const double w = wd[size_t(r * in + j)];
            exact += w * xt[size_t(j)];
            act += std::fabs(w) * (s.d[size_t(j / kActBlock)] / 2 * (1 + 0x1p-14) + 0x1p-21 * std::fabs(xt[size_t(j)]));
            mag += (std::fabs(w) + 2 * offset_of(c.format, mat.bytes.data() + r * m.row_bytes, j)) * std::fabs(xt[size_t(j)]) * 1.01;
          }
          EXPECT_LE(std::fabs(y[size_t(t * out + r)] - exact), act + double(in + 19) * kU * mag)
              << ggml::type_name(c.format) << " " << isa_name(isa) << (bf16 ? " bf16" : "") << " t " << t << " r " << r;
        }
      }
    }
    set_isa(detected_isa());
    set_bf16_enabled(true);
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
