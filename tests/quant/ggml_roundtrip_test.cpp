// Round-trip error of the ggml formats, and the traits table's lookups.
//
// The bound is derived from each format's decoded grid rather than guessed: for every weight we
// rebuild, from the block bytes and the layout in blocks.h, the set G of values its (sub-)block can
// represent, and require |x - x̂| <= min_g |x - g| + tol, i.e. x̂ is the nearest representable value.
// All quantizers end with a round-to-nearest pass; the only slack is that some round against the
// scale before it is stored as fp16, which moves grid point g by at most 2^-11 (fp16's relative
// rounding, or 2^-25 absolute below fp16's normal range) of each of its terms: |g| <= max|G| + |m|
// for an offset m. Taking "nearest in one grid" against "nearest in the other" doubles that:
//   tol = 2^-10 (max|G| + 2|m|) + 2^-24 qmax + 2^-22 |x|   (the last term: float rounding of x / d).
// With an importance matrix the K-quants and IQ4 formats still end with that pass; Q4_0/Q4_1/Q5_0/
// Q5_1 keep the quants of their best trial grid under the least-squares scale instead, so for them
// no per-weight bound exists; we check that the importance-weighted error is no worse than without.
#include "core/error.h"
#include "quant/ggml/types.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

using namespace quantllm;
using namespace quantllm::ggml;

namespace {

float half(uint16_t h) {
  // Independent fp16 decode (bit layout: 1 sign, 5 exponent, 10 mantissa bits).
  const int e = (h >> 10) & 31, m = h & 1023;
  const float v = e == 0 ? std::ldexp(float(m), -24) : std::ldexp(float(1024 + m), e - 25);
  return (h & 0x8000) ? -v : v;
}

struct Grid {
  std::vector<float> values;
  float offset = 0;  // |m| of an affine grid
  int qmax = 0;      // largest |integer level|
};

Grid affine(float d, float m, int qlo, int qhi) {  // d * q + m, q in [qlo, qhi]
  Grid g;
  for (int q = qlo; q <= qhi; ++q) g.values.push_back(d * float(q) + m);
  g.offset = std::fabs(m);
  g.qmax = std::max(std::abs(qlo), std::abs(qhi));
  return g;
}

Grid nonlinear(float d) {
  static const int kLevels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
  Grid g;
  for (int l : kLevels) g.values.push_back(d * float(l));
  g.qmax = 127;
  return g;
}

// The grid of weight i (index within the row) of a quantized row.
Grid grid_of(GgmlType type, const uint8_t* row, int64_t i) {
  switch (type) {
    case GgmlType::Q4_0: return affine(half(reinterpret_cast<const BlockQ4_0*>(row)[i / 32].d), 0, -8, 7);
    case GgmlType::Q5_0: return affine(half(reinterpret_cast<const BlockQ5_0*>(row)[i / 32].d), 0, -16, 15);
    case GgmlType::Q8_0: return affine(half(reinterpret_cast<const BlockQ8_0*>(row)[i / 32].d), 0, -128, 127);
    case GgmlType::Q4_1: {
      const auto& b = reinterpret_cast<const BlockQ4_1*>(row)[i / 32];
      return affine(half(b.d), half(b.m), 0, 15);
    }
    case GgmlType::Q5_1: {
      const auto& b = reinterpret_cast<const BlockQ5_1*>(row)[i / 32];
      return affine(half(b.d), half(b.m), 0, 31);
    }
    case GgmlType::IQ4_NL: return nonlinear(half(reinterpret_cast<const BlockIQ4_NL*>(row)[i / 32].d));
    case GgmlType::Q2_K: {
      const auto& b = reinterpret_cast<const BlockQ2_K*>(row)[i / 256];
      const int g = int(i % 256) / 16;
      return affine(half(b.d) * float(b.scales[g] & 15), -half(b.dmin) * float(b.scales[g] >> 4), 0, 3);
    }
    case GgmlType::Q3_K: {
      const auto& b = reinterpret_cast<const BlockQ3_K*>(row)[i / 256];
      const int g = int(i % 256) / 16;
      const int low = g < 8 ? b.scales[g] & 15 : b.scales[g - 8] >> 4;
      const int s = low | (((b.scales[8 + g % 4] >> (2 * (g / 4))) & 3) << 4);
      return affine(half(b.d) * float(s - 32), 0, -4, 3);
    }
    case GgmlType::Q4_K:
    case GgmlType::Q5_K: {
      const uint8_t* sc = type == GgmlType::Q4_K ? reinterpret_cast<const BlockQ4_K*>(row)[i / 256].scales
                                                 : reinterpret_cast<const BlockQ5_K*>(row)[i / 256].scales;
      const uint16_t d = type == GgmlType::Q4_K ? reinterpret_cast<const BlockQ4_K*>(row)[i / 256].d
                                                : reinterpret_cast<const BlockQ5_K*>(row)[i / 256].d;
      const uint16_t dmin = type == GgmlType::Q4_K ? reinterpret_cast<const BlockQ4_K*>(row)[i / 256].dmin
                                                   : reinterpret_cast<const BlockQ5_K*>(row)[i / 256].dmin;
      const int g = int(i % 256) / 32;
      const int s = g < 4 ? sc[g] & 63 : (sc[g + 4] & 15) | ((sc[g - 4] >> 6) << 4);
      const int m = g < 4 ? sc[g + 4] & 63 : (sc[g + 4] >> 4) | ((sc[g] >> 6) << 4);
      return affine(half(d) * float(s), -half(dmin) * float(m), 0, type == GgmlType::Q4_K ? 15 : 31);
    }
    case GgmlType::Q6_K: {
      const auto& b = reinterpret_cast<const BlockQ6_K*>(row)[i / 256];
      return affine(half(b.d) * float(b.scales[(i % 256) / 16]), 0, -32, 31);
    }
    case GgmlType::IQ4_XS: {
      const auto& b = reinterpret_cast<const BlockIQ4_XS*>(row)[i / 256];
      const int g = int(i % 256) / 32;
      const int s = ((b.scales_l[g / 2] >> (4 * (g % 2))) & 15) | (((b.scales_h >> (2 * g)) & 3) << 4);
      return nonlinear(half(b.d) * float(s - 32));
    }
    default: break;
  }
  QL_ASSERT(false, "no grid for {}", type_name(type));
  __builtin_unreachable();
}

// Test matrix: gaussian rows, rows with outliers, and rows whose 16-blocks span orders of magnitude.
std::vector<float> test_matrix(int64_t nrows, int64_t n, std::vector<float>& imatrix) {
  std::mt19937 rng(42);
  std::normal_distribution<float> g(0.f, 1.f);
  std::vector<float> x(size_t(nrows * n));
  for (int64_t r = 0; r < nrows; ++r) {
    for (int64_t j = 0; j < n; j += 16) {
      const float scale = r % 3 == 2 ? std::exp(2.f * g(rng)) : 1.f;
      for (int64_t k = 0; k < 16; ++k) x[size_t(r * n + j + k)] = scale * g(rng) * (r % 3 == 1 && g(rng) > 2.3f ? 30.f : 1.f);
    }
  }
  imatrix.resize(size_t(n));
  for (auto& v : imatrix) v = std::exp(g(rng));
  return x;
}

// The lattice (vector) formats round groups of 8 or 4 weights to a codebook point, not each weight on
// its own, so a weight need not decode to its nearest representable value.
bool is_lattice(GgmlType t) {
  return t == GgmlType::IQ1_S || t == GgmlType::IQ1_M || t == GgmlType::IQ2_XXS || t == GgmlType::IQ2_XS ||
         t == GgmlType::IQ2_S || t == GgmlType::IQ3_XXS || t == GgmlType::IQ3_S;
}

bool ends_with_nearest_rounding(GgmlType t, bool with_imatrix) {
  if (!with_imatrix) return true;
  return !(t == GgmlType::Q4_0 || t == GgmlType::Q4_1 || t == GgmlType::Q5_0 || t == GgmlType::Q5_1);
}

class GgmlRoundTrip : public testing::TestWithParam<GgmlType> {};

TEST_P(GgmlRoundTrip, EachWeightDecodesToItsNearestGridValue) {
  const QuantTraits& t = traits(GetParam());
  if (is_lattice(t.type)) GTEST_SKIP() << "lattice format: rounds groups to codebook points (goldens check it)";
  const int64_t nrows = 6, n = 1024;
  std::vector<float> imatrix;
  const std::vector<float> x = test_matrix(nrows, n, imatrix);
  for (bool with_im : {false, true}) {
    if (!ends_with_nearest_rounding(t.type, with_im)) continue;
    SCOPED_TRACE(with_im ? "with imatrix" : "without imatrix");
    std::vector<uint8_t> q(t.row_size(n) * nrows);
    quantize_rows(t.type, x.data(), q.data(), nrows, n, with_im ? imatrix.data() : nullptr);
    std::vector<float> y(x.size());
    dequantize_rows(t.type, q.data(), y.data(), nrows, n);
    int failures = 0;
    for (int64_t r = 0; r < nrows && failures < 5; ++r) {
      for (int64_t i = 0; i < n && failures < 5; ++i) {
        const float xi = x[size_t(r * n + i)], yi = y[size_t(r * n + i)];
        if (!t.is_quantized) {
          // F16 / BF16: half an ulp of the 11 / 8-bit significand; F32 exact.
          const float rel = t.type == GgmlType::F32 ? 0.f : t.type == GgmlType::F16 ? 0x1p-11f : 0x1p-8f;
          EXPECT_LE(std::fabs(xi - yi), rel * std::fabs(xi) + 0x1p-25f);
          continue;
        }
        const Grid g = grid_of(t.type, q.data() + size_t(r) * t.row_size(n), i);
        float nearest = INFINITY, gmax = 0;
        for (float v : g.values) {
          nearest = std::min(nearest, std::fabs(xi - v));
          gmax = std::max(gmax, std::fabs(v));
        }
        const float tol = 0x1p-10f * (gmax + 2 * g.offset) + 0x1p-24f * float(g.qmax) + 0x1p-22f * std::fabs(xi);
        if (!(std::fabs(xi - yi) <= nearest + tol)) {
          ++failures;
          ADD_FAILURE() << "row " << r << " weight " << i << ": x " << xi << " decodes to " << yi
                        << ", nearest grid value is " << nearest << " away (tol " << tol << ")";
        }
      }
    }
  }
}

// Q4_0/Q4_1/Q5_0/Q5_1 with an imatrix: their weighted fit starts from the plain quantizer's grid
// (scale max/-nmax, or the [min, max] span) with the fit's own weights w_j = imatrix_j *
// sqrt(sigma2 + x_j^2), and only ever accepts a candidate that lowers sum_j w_j (x_j - x̂_j)^2. So per
// block that weighted error is at most the plain quantizer's, up to the fp16 rounding of the stored
// scale and offset, which moves each x̂_j by at most 2^-11 (|x̂_j| + 2|m|) on either side; by the
// triangle inequality in the w-norm:
//   sqrt(E_imatrix) <= sqrt(E_plain) + delta_imatrix + delta_plain,  delta = 2^-11 ||(|x̂| + 2|m|)||_w
TEST_P(GgmlRoundTrip, ImatrixFitIsNoWorseThanPlainUnderItsWeights) {
  const QuantTraits& t = traits(GetParam());
  if (is_lattice(t.type)) GTEST_SKIP() << "lattice format: rounds groups to codebook points (goldens check it)";
  if (ends_with_nearest_rounding(t.type, true)) GTEST_SKIP() << "covered by the nearest-grid check";
  const int64_t nrows = 6, n = 1024, bs = t.block_size;
  std::vector<float> imatrix;
  const std::vector<float> x = test_matrix(nrows, n, imatrix);
  std::vector<uint8_t> q[2];
  std::vector<float> y[2];
  for (int with_im = 0; with_im < 2; ++with_im) {
    q[with_im].resize(t.row_size(n) * nrows);
    quantize_rows(t.type, x.data(), q[with_im].data(), nrows, n, with_im ? imatrix.data() : nullptr);
    y[with_im].resize(x.size());
    dequantize_rows(t.type, q[with_im].data(), y[with_im].data(), nrows, n);
  }
  for (int64_t r = 0; r < nrows; ++r) {
    const float* xr = x.data() + r * n;
    double sigma2 = 0;
    for (int64_t i = 0; i < n; ++i) sigma2 += double(xr[i]) * xr[i];
    sigma2 /= double(n);
    for (int64_t b = 0; b < n / bs; ++b) {
      double err[2] = {0, 0}, delta[2] = {0, 0};
      for (int k = 0; k < 2; ++k) {
        const float m = grid_of(t.type, q[k].data() + size_t(r) * t.row_size(n), b * bs).offset;
        for (int64_t j = b * bs; j < (b + 1) * bs; ++j) {
          const double w = double(imatrix[size_t(j)]) * std::sqrt(sigma2 + double(xr[j]) * xr[j]);
          const double yj = y[k][size_t(r * n + j)];
          err[k] += w * (xr[j] - yj) * (xr[j] - yj);
          const double shift = 0x1p-11 * (std::fabs(yj) + 2 * m);
          delta[k] += w * shift * shift;
        }
      }
      const double bound = std::sqrt(err[0]) + std::sqrt(delta[0]) + std::sqrt(delta[1]);
      EXPECT_LE(std::sqrt(err[1]), bound * (1 + 1e-5)) << "row " << r << " block " << b;
    }
  }
}

std::vector<GgmlType> all_type_ids() {
  std::vector<GgmlType> v;
  for (const auto& t : all_types()) v.push_back(t.type);
  return v;
}

INSTANTIATE_TEST_SUITE_P(AllFormats, GgmlRoundTrip, testing::ValuesIn(all_type_ids()),
                         [](const testing::TestParamInfo<GgmlType>& info) { return std::string(type_name(info.param)); });

TEST(GgmlTraits, IdsSizesAndLookups) {
  // llama.cpp's ggml_type ids and block sizes (ggml.h / ggml-common.h).
  struct Expect {
    const char* name;
    uint32_t id;
    int block, bytes;
  };
  const Expect expected[] = {{"F32", 0, 1, 4},         {"F16", 1, 1, 2},         {"Q4_0", 2, 32, 18},
                             {"Q4_1", 3, 32, 20},      {"Q5_0", 6, 32, 22},      {"Q5_1", 7, 32, 24},
                             {"Q8_0", 8, 32, 34},      {"Q2_K", 10, 256, 84},    {"Q3_K", 11, 256, 110},
                             {"Q4_K", 12, 256, 144},   {"Q5_K", 13, 256, 176},   {"Q6_K", 14, 256, 210},
                             {"IQ1_S", 19, 256, 50},   {"IQ4_NL", 20, 32, 18},   {"IQ4_XS", 23, 256, 136},
                             {"IQ1_M", 29, 256, 56},   {"BF16", 30, 1, 2}};
  ASSERT_EQ(all_types().size(), std::size(expected));
  for (const auto& e : expected) {
    const QuantTraits* t = find_type(e.name);
    ASSERT_NE(t, nullptr) << e.name;
    EXPECT_EQ(uint32_t(t->type), e.id);
    EXPECT_EQ(t->block_size, e.block);
    EXPECT_EQ(t->type_size, e.bytes);
    EXPECT_EQ(find_type(e.id), t);
    EXPECT_EQ(&traits(t->type), t);
  }
  EXPECT_EQ(find_type("q4_k"), find_type("Q4_K"));  // case-insensitive
  EXPECT_EQ(find_type("Q4_K_M"), nullptr);          // a mix, not a format
  EXPECT_EQ(find_type(uint32_t(4)), nullptr);       // removed Q4_2
  EXPECT_EQ(row_size(GgmlType::Q6_K, 4096), 16u * 210u);
}

TEST(GgmlTraits, UnknownNameIsAUserError) {
  try {
    type_by_name("Q7_K");
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("unknown quantization type 'Q7_K' (known: F32, F16, Q4_0"), std::string::npos) << msg;
    EXPECT_NE(msg.find("IQ4_XS"), std::string::npos) << msg;
  }
}

}  // namespace
