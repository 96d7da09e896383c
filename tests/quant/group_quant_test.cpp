// Group-wise parameter finding and RTN against cases worked out by hand from the rules of GPTQ's
// quant.py (values chosen so every fp32 quotient is exact or its rounding is stated).
#include "quant/group_quant.h"

#include "core/dtype.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

using namespace quantllm;

namespace {

Tensor matrix(int64_t rows, int64_t cols, std::vector<float> v) { return Tensor({rows, cols}, std::move(v)); }

}  // namespace

TEST(GroupQuant, AsymmetricOneGroupRoundsHalfToEven) {
  // xmin = −1, xmax = 2.75 → scale = 3.75/15 = 0.25, zero = round(1/0.25) = 4.
  // x/scale + 4: −1→0, 0.5→6, 2.75→15, 0→4, 0.375 (1.5→2)→6, 0.625 (2.5→2)→6, −0.125 (−0.5→−0)→4.
  const Tensor w = matrix(1, 7, {-1.0f, 0.5f, 2.75f, 0.0f, 0.375f, 0.625f, -0.125f});
  const GroupQuantized q = quantize_rtn(w, {.bits = 4, .group_size = -1}, "w");
  EXPECT_EQ(q.qweight, (std::vector<uint8_t>{0, 6, 15, 4, 6, 6, 4}));
  ASSERT_EQ(q.scales.shape, (Shape{1, 1}));
  EXPECT_EQ(q.scales.data[0], 0.25f);
  EXPECT_EQ(q.zeros, (std::vector<int32_t>{4}));
  EXPECT_EQ(q.g_idx, (std::vector<int32_t>(7, 0)));
  EXPECT_EQ(q.dequantize().data, (std::vector<float>{-1.0f, 0.5f, 2.75f, 0.0f, 0.5f, 0.5f, 0.0f}));
}

TEST(GroupQuant, SymmetricClampsTheTopCode) {
  // absmax 3.75 → xmin = −3.75, scale = 7.5/15 = 0.5, zero = 8.
  // x/0.5: −7.5→−8 (even)→0, 2→10, 0.5→0→8, 7.5→8→16→clamped 15.
  const Tensor w = matrix(1, 4, {-3.75f, 1.0f, 0.25f, 3.75f});
  const GroupQuantized q = quantize_rtn(w, {.bits = 4, .group_size = -1, .sym = true}, "w");
  EXPECT_EQ(q.qweight, (std::vector<uint8_t>{0, 10, 8, 15}));
  EXPECT_EQ(q.scales.data[0], 0.5f);
  EXPECT_EQ(q.zeros[0], 8);
  EXPECT_EQ(q.dequantize().data, (std::vector<float>{-4.0f, 1.0f, 0.0f, 3.5f}));
}

TEST(GroupQuant, SymmetricNonNegativeRowKeepsReferenceQuirk) {
  // quant.py only mirrors xmin when it is negative: [1, 3.75] keeps xmin = 0, scale = 3.75/15 = 0.25,
  // zero = 8 → codes 4+8 = 12 and 15+8 = 23 → 15: the top of the row clips to 1.75.
  const GroupQuantized q = quantize_rtn(matrix(1, 2, {1.0f, 3.75f}), {.bits = 4, .group_size = -1, .sym = true}, "w");
  EXPECT_EQ(q.qweight, (std::vector<uint8_t>{12, 15}));
  EXPECT_EQ(q.dequantize().data, (std::vector<float>{1.0f, 1.75f}));
}

TEST(GroupQuant, GroupsAndZeroRow) {
  // 2 bits (maxq 3), groups of 2.
  // row 0, group 0 [−1, 2]: scale 1, zero 1 → codes 0, 3.  group 1 [0.6, 1.5]: xmin 0 → scale 0.5,
  //   zero 0 → 0.6/0.5 = 1.2 → 1, 1.5/0.5 = 3.
  // row 1, group 0 [0, 0]: range [−1, 1] → scale 2/3 = 0.666666687f, 1/scale = 1.5f → zero 2 (even),
  //   codes 2; stored scale fp16(2/3) = 0x3955 = 0.66650390625.  group 1 [−3, 0]: scale 1, zero 3 → 0, 3.
  const Tensor w = matrix(2, 4, {-1.0f, 2.0f, 0.6f, 1.5f, 0.0f, 0.0f, -3.0f, 0.0f});
  const GroupQuantized q = quantize_rtn(w, {.bits = 2, .group_size = 2}, "w");
  EXPECT_EQ(q.qweight, (std::vector<uint8_t>{0, 3, 1, 3, 2, 2, 0, 3}));
  ASSERT_EQ(q.scales.shape, (Shape{2, 2}));  // [n_groups, out]
  EXPECT_EQ(q.scales.data, (std::vector<float>{1.0f, 0.66650390625f, 0.5f, 1.0f}));
  EXPECT_EQ(q.zeros, (std::vector<int32_t>{1, 2, 0, 3}));
  EXPECT_EQ(q.g_idx, (std::vector<int32_t>{0, 0, 1, 1}));
  EXPECT_EQ(q.dequantize().data, (std::vector<float>{-1.0f, 2.0f, 0.5f, 1.5f, 0.0f, 0.0f, -3.0f, 0.0f}));
}

TEST(GroupQuant, ScalesAreStoredAsFp16AndCodesUseFp32Scale) {
  // [−0.1, 1.0] at 3 bits: scale = 1.1/7 in fp32; the stored scale is its fp16 rounding. Codes come
  // from the fp32 scale (kAfterCodes) — equal here to those of the rounded scale, as they nearly always are.
  const Tensor w = matrix(1, 2, {-0.1f, 1.0f});
  const GroupQuantized q = quantize_rtn(w, {.bits = 3, .group_size = -1}, "w");
  const float s32 = (1.0f - -0.1f) / 7.0f;
  EXPECT_EQ(q.scales.data[0], f16_to_f32(f32_to_f16(s32)));
  EXPECT_NE(q.scales.data[0], s32);
  const GroupQuantized b =
      quantize_rtn(w, {.bits = 3, .group_size = -1, .scale_rounding = ScaleRounding::kBeforeCodes}, "w");
  EXPECT_EQ(b.scales.data[0], q.scales.data[0]);
}

TEST(GroupQuant, MseShrinkNeverWorseThanFullRange) {
  std::mt19937 rng(3);
  std::student_t_distribution<float> heavy(3.0f);  // outliers make shrinking worthwhile
  std::vector<float> v(64 * 128);
  for (float& x : v) x = heavy(rng);
  const Tensor w({64, 128}, v);
  for (int bits : {2, 3, 4}) {
    const GroupQuantized plain = quantize_rtn(w, {.bits = bits, .group_size = 32}, "w");
    const GroupQuantized mse = quantize_rtn(w, {.bits = bits, .group_size = 32, .mse = true}, "w");
    // The search minimizes Σ|err|^2.4 per group with the fp32 scale; compare that same quantity.
    auto err = [&](const GroupQuantized& q) {
      const Tensor d = q.dequantize();
      double e = 0;
      for (size_t i = 0; i < v.size(); ++i) e += std::pow(std::fabs(double(d.data[i]) - v[i]), 2.4);
      return e;
    };
    EXPECT_LT(err(mse), err(plain)) << bits << " bits";
  }
}

TEST(GroupQuant, AwqRangeRule) {
  // AutoAWQ zero_point: range [min, max] = [0.5, 2] (0 not forced in) → scale 1.5/15 = 0.1f,
  // zero = −round(0.5/0.1f) = −round(5.0000) = −5 → clamped to 0.
  const GroupQuantized q = quantize_rtn(matrix(1, 2, {0.5f, 2.0f}), {.bits = 4, .group_size = -1, .rule = RangeRule::kAwq}, "w");
  EXPECT_EQ(q.zeros[0], 0);
  EXPECT_EQ(q.qweight, (std::vector<uint8_t>{5, 15}));
  // Symmetric AWQ: scale = absmax/(2^(bits−1) − 1) = 3.5/7 = 0.5, zero 8.
  const GroupQuantized s =
      quantize_rtn(matrix(1, 2, {-3.5f, 1.0f}), {.bits = 4, .group_size = -1, .sym = true, .rule = RangeRule::kAwq}, "w");
  EXPECT_EQ(s.scales.data[0], 0.5f);
  EXPECT_EQ(s.qweight, (std::vector<uint8_t>{1, 10}));
}

TEST(GroupQuant, BadInputsNameTheTensor) {
  const Tensor w({2, 6});
  try {
    quantize_rtn(w, {.bits = 4, .group_size = 4}, "layers.0.mlp.up_proj");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layers.0.mlp.up_proj"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("group size 4"), std::string::npos);
  }
  EXPECT_THROW(quantize_rtn(w, {.bits = 1, .group_size = -1}, "w"), Error);
  EXPECT_THROW(quantize_rtn(w, {.bits = 9, .group_size = -1}, "w"), Error);
  EXPECT_THROW(quantize_rtn(w, {.bits = 4, .group_size = 0}, "w"), Error);
  Tensor bad({2, 6});
  bad.data[7] = std::numeric_limits<float>::quiet_NaN();
  try {
    quantize_rtn(bad, {.bits = 4, .group_size = -1}, "layers.1.self_attn.q_proj");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layers.1.self_attn.q_proj"), std::string::npos);
  }
  bad.data[7] = std::numeric_limits<float>::infinity();
  EXPECT_THROW(quantize_rtn(bad, {.bits = 4, .group_size = -1}, "w"), Error);
}
