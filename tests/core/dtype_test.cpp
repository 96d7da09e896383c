// fp16/bf16 conversions against values computed by hand from the IEEE 754 encodings.
#include "core/dtype.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/threads.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

using namespace quantllm;

TEST(DType, F16KnownEncodings) {
  // 1.0 = 0x3c00, -2.0 = 0xc000, 65504 = 0x7bff (max), 2^-24 = 0x0001 (min subnormal), 2^-14 = 0x0400.
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // rounds up to inf
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);         // tie -> even (0)
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);         // 1.5 ulp -> 2 (even)
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -14)), 0x0400);
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie -> even
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
  EXPECT_TRUE(std::isinf(f16_to_f32(0xfc00)));
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(std::numeric_limits<float>::quiet_NaN()))));
}

TEST(DType, F16RoundTripAllValues) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = f16_to_f32(uint16_t(h));
    if (std::isnan(f)) continue;
    EXPECT_EQ(f32_to_f16(f), h) << h;
  }
}

TEST(DType, BF16) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  // 1 + 2^-8 is halfway between bf16 1.0 and 1 + 2^-7: ties to even -> 1.0
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
}

TEST(Core, Utf8Validation) {
  EXPECT_EQ(find_invalid_utf8("h\xc3\xa9llo \xf0\x9f\x99\x82"), std::string_view::npos);
  EXPECT_EQ(find_invalid_utf8("ab\xff"), 2u);
  EXPECT_EQ(find_invalid_utf8("a\xc0\xaf"), 1u);      // overlong
  EXPECT_EQ(find_invalid_utf8("a\xed\xa0\x80"), 1u);  // surrogate
  EXPECT_EQ(find_invalid_utf8("\xe2\x82"), 0u);       // truncated
}

TEST(Core, ParallelForCoversRangeOnce) {
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    std::vector<int> hits(1000, 0);
    parallel_for(1000, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[size_t(i)]++;
    });
    for (int h : hits) EXPECT_EQ(h, 1);
  }
  EXPECT_THROW(parallel_for(10, [](int64_t, int64_t) { throw Error("x"); }), Error);
}

TEST(DType, Fp8E4M3KnownEncodings) {
  // S.EEEE.MMM, bias 7: 1.0 = 0.0111.000 = 0x38; −2.0 = 1.1000.000 = 0xC0; 448 = 0.1111.110 = 0x7E (the
  // largest finite; 0.1111.111 is NaN); 2^−6 = 0.0001.000 = 0x08 (smallest normal); 2^−9 = 0.0000.001 =
  // 0x01 (smallest subnormal, 1/8 · 2^−6); 0.1 → between 0x1D (0.1015625 = 1.625 · 2^−4) and 0x1C
  // (0.09375): nearer 0x1D.
  EXPECT_EQ(f32_to_fp8e4m3(1.0f), 0x38);
  EXPECT_EQ(f32_to_fp8e4m3(-2.0f), 0xC0);
  EXPECT_EQ(f32_to_fp8e4m3(448.0f), 0x7E);
  EXPECT_EQ(f32_to_fp8e4m3(0.015625f), 0x08);
  EXPECT_EQ(f32_to_fp8e4m3(0.001953125f), 0x01);
  EXPECT_EQ(f32_to_fp8e4m3(0.1f), 0x1D);
  EXPECT_EQ(fp8e4m3_to_f32(0x1D), 0.1015625f);
  EXPECT_EQ(fp8e4m3_to_f32(0x7E), 448.0f);
  EXPECT_TRUE(std::isnan(fp8e4m3_to_f32(0x7F)));
  EXPECT_TRUE(std::isnan(fp8e4m3_to_f32(0xFF)));
  // Ties go to the even code: 1.0625 is halfway between 1.0 (0x38) and 1.125 (0x39) → 0x38;
  // 1.1875 halfway between 1.125 (0x39) and 1.25 (0x3A) → 0x3A.
  EXPECT_EQ(f32_to_fp8e4m3(1.0625f), 0x38);
  EXPECT_EQ(f32_to_fp8e4m3(1.1875f), 0x3A);
  // Saturation: beyond 448 stays 448 (no infinity in e4m3fn); NaN → 0x7F.
  EXPECT_EQ(f32_to_fp8e4m3(1e9f), 0x7E);
  EXPECT_EQ(f32_to_fp8e4m3(-500.0f), 0xFE);
  EXPECT_EQ(f32_to_fp8e4m3(std::nanf("")), 0x7F);
  // Every finite code round-trips.
  for (int b = 0; b < 256; ++b)
    if ((b & 0x7F) != 0x7F) EXPECT_EQ(f32_to_fp8e4m3(fp8e4m3_to_f32(uint8_t(b))), b == 0x80 ? 0x80 : b) << b;
}
