// The per-weight codes of GGML blocks (quant/ggml/codes.h) against llama.cpp's own blocks, and GPTQ onto
// GGML blocks (quant/ggml/gptq_grid.h) against llama.cpp's quantizer given the same importance:
// - codes read from llama.cpp's bytes and written back into the header reproduce those bytes, and the
//   grid the header allows gives llama.cpp's dequantized values at those codes;
// - with an uncorrelated Hessian (no error feedback) GPTQ keeps llama.cpp's header and rounds each
//   weight to its nearest value on it: the header bytes are llama.cpp's, the squared error at most its;
// - with correlated inputs, GPTQ's output error tr(E H Eᵀ) is below llama.cpp's for every type.
#include "quant/ggml/codes.h"
#include "quant/ggml/gptq_grid.h"
#include "quant/gptq.h"
#include "support/ggml_golden.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace quantllm;
using namespace quantllm::ggml;
using namespace quantllm::test;

namespace {

const GgmlType kTypes[] = {GgmlType::Q4_0, GgmlType::Q4_1,   GgmlType::Q5_0,  GgmlType::Q5_1, GgmlType::Q8_0,
                           GgmlType::Q2_K, GgmlType::Q3_K,   GgmlType::Q4_K,  GgmlType::Q5_K, GgmlType::Q6_K,
                           GgmlType::IQ4_NL, GgmlType::IQ4_XS};

// The block with every code 0: its header alone.
std::vector<uint8_t> header_only(GgmlType type, const uint8_t* block) {
  const QuantTraits& t = traits(type);
  std::vector<uint8_t> b(block, block + t.type_size), zeros(size_t(t.block_size), 0);
  set_codes(type, b.data(), zeros.data());
  return b;
}

Tensor random_matrix(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  Tensor t({rows, cols});
  for (float& v : t.data) v = nd(rng);
  return t;
}

class GgmlCodes : public testing::TestWithParam<GgmlType> {};

TEST_P(GgmlCodes, LlamaCppBlocksSplitIntoHeaderAndCodesAndBack) {
  const GgmlType type = GetParam();
  const QuantTraits& t = traits(type);
  int checked = 0;
  for (const GoldenSet& s : golden_sets())
    for (const GoldenEntry& e : s.entries) {
      if (e.type_id != uint32_t(type)) continue;
      SCOPED_TRACE(s.name + (e.with_imatrix ? " with imatrix" : ""));
      const int64_t n_blocks = int64_t(e.bytes.size()) / t.type_size;
      std::vector<uint8_t> codes(size_t(t.block_size));
      for (int64_t b = 0; b < n_blocks; ++b) {
        const uint8_t* block = e.bytes.data() + b * t.type_size;
        get_codes(type, block, codes.data());
        std::vector<uint8_t> again = header_only(type, block);
        set_codes(type, again.data(), codes.data());
        ASSERT_TRUE(std::equal(again.begin(), again.end(), block)) << "block " << b;
        // The header's grid at these codes is llama.cpp's dequantization, up to the rounding of base + step·k.
        const BlockGrid g = block_grid(type, block);
        for (int i = 0; i < t.block_size; ++i) {
          const float want = e.dequantized[size_t(b * t.block_size + i)];
          if (!std::isfinite(want)) continue;  // the float edge cases of fp_edges
          const float got = g.uniform() ? g.base[size_t(i)] + g.step[size_t(i)] * float(codes[size_t(i)])
                                        : g.scale[size_t(i)] * float(kIq4nlValues[codes[size_t(i)]]);
          const float mag = g.uniform() ? std::fabs(g.base[size_t(i)]) + std::fabs(g.step[size_t(i)]) * 255.0f
                                        : std::fabs(g.scale[size_t(i)]) * 127.0f;
          ASSERT_LE(std::fabs(got - want), 4.0f * 1.2e-7f * mag) << "block " << b << " weight " << i;
        }
        ++checked;
      }
    }
  EXPECT_GT(checked, 0) << "no golden blocks of " << t.name;
}

// GPTQ of w onto `type` with Hessian h; its bytes.
std::vector<uint8_t> gptq_bytes(GgmlType type, const Tensor& w, const std::vector<double>& h, double damp) {
  GgmlGptqGrid grid(type, w.dim(0), w.dim(1));
  GPTQOptions o;
  o.damp_percent = damp;
  gptq_quantize_grid(w, h, o, grid, "test");
  return grid.take_bytes();
}

TEST_P(GgmlCodes, WithoutErrorFeedbackGptqKeepsLlamaCppsHeaderAndRoundsToNearest) {
  const GgmlType type = GetParam();
  const QuantTraits& t = traits(type);
  const int64_t out = 16, in = 512;
  const Tensor w = random_matrix(out, in, 7);
  // H = diag(v): Hinv is diagonal, no error reaches another column; importance v as llama.cpp's imatrix.
  std::vector<double> h(size_t(in * in), 0.0);
  std::vector<float> v(static_cast<size_t>(in));
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(0.5f, 2.0f);
  for (int64_t i = 0; i < in; ++i) v[size_t(i)] = u(rng), h[size_t(i * in + i)] = v[size_t(i)];
  const std::vector<uint8_t> ours = gptq_bytes(type, w, h, 0.0);
  // llama.cpp's fit of each block on its own (GPTQ fits a block when it reaches it; the legacy types'
  // imatrix search regularizes with the mean square of what it is given: here the block's).
  std::vector<uint8_t> theirs(ours.size());
  const int64_t bs = t.block_size;
  for (int64_t r = 0; r < out; ++r)
    for (int64_t c = 0; c < in; c += bs)
      quantize_rows(type, w.ptr() + r * in + c, theirs.data() + size_t(r) * row_size(type, in) + size_t(c / bs * t.type_size),
                    1, bs, v.data() + c);
  std::vector<float> yo(size_t(out * in)), yt(size_t(out * in));
  dequantize_rows(type, ours.data(), yo.data(), out, in);
  dequantize_rows(type, theirs.data(), yt.data(), out, in);
  for (size_t b = 0; b < ours.size(); b += size_t(t.type_size))
    ASSERT_EQ(header_only(type, ours.data() + b), header_only(type, theirs.data() + b)) << "block at byte " << b;
  for (size_t i = 0; i < yo.size(); ++i) {
    const float eo = std::fabs(yo[i] - w.data[i]), et = std::fabs(yt[i] - w.data[i]);
    ASSERT_LE(eo, et * (1.0f + 1e-5f) + 1e-6f) << "weight " << i << ": ours " << yo[i] << ", llama.cpp " << yt[i];
  }
}

TEST_P(GgmlCodes, GptqLowersTheOutputErrorBelowLlamaCppsImatrixQuant) {
  const GgmlType type = GetParam();
  const int64_t out = 32, in = 512, rows = 2048;
  const Tensor w = random_matrix(out, in, 11);
  // Correlated inputs: x = z·A with a random mixing A, so H = AᵀZᵀZA is far from diagonal.
  const Tensor z = random_matrix(rows, in, 12), a = random_matrix(in, in, 13);
  Tensor x({rows, in});
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < in; ++k) {
      const float zk = z.data[size_t(r * in + k)] * (k < 32 ? 1.0f : 0.2f);  // a few strong directions
      if (zk == 0.0f) continue;
      for (int64_t j = 0; j < in; ++j) x.data[size_t(r * in + j)] += zk * a.data[size_t(k * in + j)] / 22.6f;
    }
  HessianAccumulator acc(in);
  acc.add_batch(x.ptr(), rows, in);
  const std::vector<double> h = acc.hessian();
  std::vector<float> diag(static_cast<size_t>(in));
  for (int64_t i = 0; i < in; ++i) diag[size_t(i)] = float(h[size_t(i * in + i)]);
  const std::vector<uint8_t> ours = gptq_bytes(type, w, h, 0.01);
  std::vector<uint8_t> theirs(ours.size());
  quantize_rows(type, w.ptr(), theirs.data(), out, in, diag.data());
  Tensor yo({out, in}), yt({out, in});
  dequantize_rows(type, ours.data(), yo.ptr(), out, in);
  dequantize_rows(type, theirs.data(), yt.ptr(), out, in);
  const double eo = relative_objective(w, yo, h), et = relative_objective(w, yt, h);
  std::printf("  %-7s output error: GPTQ %.4e, llama.cpp with imatrix %.4e (%.1f%% lower)\n",
              std::string(type_name(type)).c_str(), eo, et, 100.0 * (1.0 - eo / et));
  EXPECT_LT(eo, 0.9 * et);
}

INSTANTIATE_TEST_SUITE_P(Types, GgmlCodes, testing::ValuesIn(kTypes),
                         [](const testing::TestParamInfo<GgmlType>& i) { return std::string(type_name(i.param)); });

}  // namespace
