// GPTQ and AWQ GEMM bit layouts against words worked out by hand (in the comments) from the layout
// rules of AutoGPTQ's pack loop and AutoAWQ's WQLinear_GEMM — never from our packer — plus exact
// round trips and the errors a bad tensor raises.
#include "quant/gptq_format.h"

#include "core/dtype.h"

#include <gtest/gtest.h>

#include <random>

using namespace quantllm;

namespace {

int32_t w32(uint32_t u) { return int32_t(u); }

// A quantized tensor with given codes ([out, in]) and zeros ([groups, out]); scales 0.25·(1 + row).
GroupQuantized make(int bits, int64_t out, int64_t in, int64_t groups, std::vector<int32_t> codes, std::vector<int32_t> zeros,
                    std::vector<int32_t> g_idx = {}) {
  GroupQuantized q;
  q.bits = bits;
  q.out = out;
  q.in = in;
  q.group_size = int(in / groups);
  q.qweight.assign(codes.begin(), codes.end());
  q.zeros = std::move(zeros);
  q.scales = Tensor({groups, out});
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t o = 0; o < out; ++o) q.scales.data[size_t(g * out + o)] = 0.25f * float(1 + o + g);
  if (g_idx.empty())
    for (int64_t c = 0; c < in; ++c) g_idx.push_back(int32_t(c / (in / groups)));
  q.g_idx = std::move(g_idx);
  return q;
}

void expect_same(const GroupQuantized& a, const GroupQuantized& b) {
  EXPECT_EQ(a.bits, b.bits);
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(a.in, b.in);
  EXPECT_EQ(a.qweight, b.qweight);
  EXPECT_EQ(a.zeros, b.zeros);
  EXPECT_EQ(a.scales.shape, b.scales.shape);
  EXPECT_EQ(a.scales.data, b.scales.data);
  EXPECT_EQ(a.g_idx, b.g_idx);
  EXPECT_EQ(a.dequantize().data, b.dequantize().data);
}

}  // namespace

TEST(GptqFormat, FourBitsHandComputed) {
  // out = in = 8, one group. codes[o][i] = (o + i) & 15. Column o packs its 8 codes into one word,
  // code i in bits 4i..4i+3: o = 0 → nibbles (high→low) 7 6 5 4 3 2 1 0 = 0x76543210; o = 7 → 0xEDCBA987.
  std::vector<int32_t> codes(64);
  for (int o = 0; o < 8; ++o)
    for (int i = 0; i < 8; ++i) codes[size_t(o * 8 + i)] = (o + i) & 15;
  // zeros[o] = 2·o → v2 word: nibble o = 2o → 0xECA86420. v1 stores (z − 1) mod 16 = F,1,3,5,7,9,B,D
  // (nibble 0 first) → 0xDB97531F; the F of zero 0 stays inside its own nibble.
  const GroupQuantized q = make(4, 8, 8, 1, codes, {0, 2, 4, 6, 8, 10, 12, 14});
  const GptqPacked v2 = pack_gptq(q, GptqCheckpointFormat::kV2, "w");
  EXPECT_EQ(v2.qweight, (std::vector<int32_t>{0x76543210, w32(0x87654321), w32(0x98765432), w32(0xA9876543),
                                              w32(0xBA987654), w32(0xCBA98765), w32(0xDCBA9876), w32(0xEDCBA987)}));
  EXPECT_EQ(v2.qzeros, (std::vector<int32_t>{w32(0xECA86420)}));
  const GptqPacked v1 = pack_gptq(q, GptqCheckpointFormat::kV1, "w");
  EXPECT_EQ(v1.qweight, v2.qweight);
  EXPECT_EQ(v1.qzeros, (std::vector<int32_t>{w32(0xDB97531F)}));
  // Scales 0.25, 0.5, 0.75, 1.0 … as fp16: 0x3400, 0x3800, 0x3A00, 0x3C00.
  EXPECT_EQ(v1.scales[0], 0x3400);
  EXPECT_EQ(v1.scales[1], 0x3800);
  EXPECT_EQ(v1.scales[2], 0x3A00);
  EXPECT_EQ(v1.scales[3], 0x3C00);
  expect_same(unpack_gptq(v1, GptqCheckpointFormat::kV1, 8, "w"), q);
  expect_same(unpack_gptq(v2, GptqCheckpointFormat::kV2, 8, "w"), q);
}

TEST(GptqFormat, TwoBitsHandComputed) {
  // out = in = 16, one group, codes[o][i] = (o + i) & 3. Each byte holds 4 codes, low first:
  // o ≡ 0: (0,1,2,3) → 0b11100100 = 0xE4; o ≡ 1: (1,2,3,0) → 0x39; o ≡ 2: (2,3,0,1) → 0x4E; o ≡ 3: 0x93.
  std::vector<int32_t> codes(256), zeros(16);
  for (int o = 0; o < 16; ++o) {
    for (int i = 0; i < 16; ++i) codes[size_t(o * 16 + i)] = (o + i) & 3;
    zeros[size_t(o)] = o & 3;
  }
  const GroupQuantized q = make(2, 16, 16, 1, codes, zeros);
  const GptqPacked v2 = pack_gptq(q, GptqCheckpointFormat::kV2, "w");
  const std::vector<int32_t> pattern = {w32(0xE4E4E4E4), 0x39393939, 0x4E4E4E4E, w32(0x93939393)};
  ASSERT_EQ(v2.qweight.size(), 16u);  // [16·2/32, 16] = [1, 16]
  for (int o = 0; o < 16; ++o) EXPECT_EQ(v2.qweight[size_t(o)], pattern[size_t(o & 3)]) << o;
  // zeros o & 3 along out: the o ≡ 0 pattern 0xE4E4E4E4; v1 (z−1) mod 4 = 3,0,1,2 → 0x93939393.
  EXPECT_EQ(v2.qzeros, (std::vector<int32_t>{w32(0xE4E4E4E4)}));
  const GptqPacked v1 = pack_gptq(q, GptqCheckpointFormat::kV1, "w");
  EXPECT_EQ(v1.qzeros, (std::vector<int32_t>{w32(0x93939393)}));
  expect_same(unpack_gptq(v1, GptqCheckpointFormat::kV1, -1, "w"), q);
  expect_same(unpack_gptq(v2, GptqCheckpointFormat::kV2, -1, "w"), q);
}

TEST(GptqFormat, EightBitsHandComputed) {
  // out = in = 4: one word per column, byte i = code i.
  const std::vector<int32_t> codes = {0x01, 0x02, 0x03, 0xFF,   // o = 0 → 0xFF030201
                                      0x10, 0x20, 0x30, 0x40,   // o = 1 → 0x40302010
                                      0x00, 0x00, 0x00, 0x80,   // o = 2 → 0x80000000
                                      0x7F, 0x00, 0xAB, 0x00};  // o = 3 → 0x00AB007F
  // zeros 0, 128, 255, 7 → v2 0x07FF8000; v1: 255, 127, 254, 6 → 0x06FE7FFF.
  const GroupQuantized q = make(8, 4, 4, 1, codes, {0, 128, 255, 7});
  const GptqPacked v2 = pack_gptq(q, GptqCheckpointFormat::kV2, "w");
  EXPECT_EQ(v2.qweight, (std::vector<int32_t>{w32(0xFF030201), 0x40302010, w32(0x80000000), 0x00AB007F}));
  EXPECT_EQ(v2.qzeros, (std::vector<int32_t>{0x07FF8000}));
  const GptqPacked v1 = pack_gptq(q, GptqCheckpointFormat::kV1, "w");
  EXPECT_EQ(v1.qzeros, (std::vector<int32_t>{0x06FE7FFF}));
  expect_same(unpack_gptq(v1, GptqCheckpointFormat::kV1, 4, "w"), q);
}

TEST(GptqFormat, ThreeBitsCrossWordBoundariesLikeAutoGptq) {
  // out = in = 32: 3 words per column. Even columns hold codes i & 7 (0,1,…,7 repeating): every 8
  // codes form the 24-bit pattern P = 0b111'110'101'100'011'010'001'000 = 0xFAC688, repeated at stream
  // bits 0, 24, 48, 72. Word 0 = P | (P & 0xFF) << 24 = 0x88FAC688 (bit 31 is the low bit of code 10
  // = 2 → code 10 = 0b010 straddles words 0 and 1, as AutoGPTQ's `intweight[i] << 30` then
  // `(intweight[i] >> 2) & 1`); word 1 = P >> 8 | (P & 0xFFFF) << 16 = 0xC688FAC6; word 2 =
  // P >> 16 | P << 8 = 0xFAC688FA. Odd columns hold 7 − (i & 7) = every field inverted: the
  // complements 0x77053977, 0x39770539, 0x05397705.
  std::vector<int32_t> codes(32 * 32), zeros(32);
  for (int o = 0; o < 32; ++o) {
    for (int i = 0; i < 32; ++i) codes[size_t(o * 32 + i)] = (o % 2 == 0) ? (i & 7) : 7 - (i & 7);
    zeros[size_t(o)] = o & 7;
  }
  const GroupQuantized q = make(3, 32, 32, 1, codes, zeros);
  const GptqPacked v2 = pack_gptq(q, GptqCheckpointFormat::kV2, "w");
  ASSERT_EQ(v2.qweight.size(), 3u * 32u);  // [32·3/32, 32]
  for (int o = 0; o < 32; ++o) {
    const bool even = o % 2 == 0;
    EXPECT_EQ(v2.qweight[size_t(0 * 32 + o)], even ? w32(0x88FAC688) : 0x77053977) << o;
    EXPECT_EQ(v2.qweight[size_t(1 * 32 + o)], even ? w32(0xC688FAC6) : 0x39770539) << o;
    EXPECT_EQ(v2.qweight[size_t(2 * 32 + o)], even ? w32(0xFAC688FA) : 0x05397705) << o;
  }
  // zeros o & 7 along out: the same three words. v1 stores (z − 1) mod 8 = 7,0,1,…,6: pattern
  // P' = (P << 3 | 7) mod 2^24 = 0xD63447 → words 0x47D63447, 0x3447D634, 0xD63447D6.
  EXPECT_EQ(v2.qzeros, (std::vector<int32_t>{w32(0x88FAC688), w32(0xC688FAC6), w32(0xFAC688FA)}));
  const GptqPacked v1 = pack_gptq(q, GptqCheckpointFormat::kV1, "w");
  EXPECT_EQ(v1.qzeros, (std::vector<int32_t>{0x47D63447, 0x3447D634, w32(0xD63447D6)}));
  expect_same(unpack_gptq(v1, GptqCheckpointFormat::kV1, -1, "w"), q);
  expect_same(unpack_gptq(v2, GptqCheckpointFormat::kV2, -1, "w"), q);
}

TEST(GptqFormat, ActOrderGroupIndexIsStoredAndUsed) {
  // 4 bits, out = 8, in = 8, two groups of 4 assigned out of order (act-order): g_idx as given.
  // Packed words do not depend on g_idx; dequantization does: row 0 has scales 0.25 (group 0) and
  // 0.5 (group 1) and zeros 8 (group 0) and 4 (group 1). Codes of row 0: all 10 →
  // group 0 columns give 0.25·(10 − 8) = 0.5, group 1 columns 0.5·(10 − 4) = 3.
  const std::vector<int32_t> g_idx = {1, 0, 0, 1, 1, 0, 1, 0};
  std::vector<int32_t> codes(64, 10), zeros(16, 8);
  for (int o = 0; o < 8; ++o) zeros[size_t(8 + o)] = 4;
  const GroupQuantized q = make(4, 8, 8, 2, codes, zeros, g_idx);
  const Tensor d = q.dequantize();
  EXPECT_EQ(std::vector<float>(d.data.begin(), d.data.begin() + 8),
            (std::vector<float>{3.0f, 0.5f, 0.5f, 3.0f, 3.0f, 0.5f, 3.0f, 0.5f}));
  const GptqPacked p = pack_gptq(q, GptqCheckpointFormat::kV1, "w");
  EXPECT_EQ(p.g_idx, g_idx);
  EXPECT_EQ(p.qweight, std::vector<int32_t>(8, w32(0xAAAAAAAA)));
  // zeros 8 → v1 7 in every nibble of group 0; 4 → 3 in group 1.
  EXPECT_EQ(p.qzeros, (std::vector<int32_t>{0x77777777, 0x33333333}));
  const GroupQuantized back = unpack_gptq(p, GptqCheckpointFormat::kV1, 4, "w");
  expect_same(back, q);
}

TEST(GptqFormat, RandomRoundTripsAllWidths) {
  std::mt19937 rng(11);
  for (int bits : {2, 3, 4, 5, 6, 7, 8}) {
    const int64_t out = 64, in = 128, groups = 4;
    std::uniform_int_distribution<int> code(0, max_code(bits)), grp(0, int(groups - 1));
    std::vector<int32_t> codes(static_cast<size_t>(out * in)), zeros(static_cast<size_t>(groups * out)), g_idx(static_cast<size_t>(in));
    for (auto& c : codes) c = code(rng);
    for (auto& z : zeros) z = code(rng);
    for (auto& g : g_idx) g = grp(rng);
    GroupQuantized q = make(bits, out, in, groups, codes, zeros, g_idx);
    for (auto fmt : {GptqCheckpointFormat::kV1, GptqCheckpointFormat::kV2})
      expect_same(unpack_gptq(pack_gptq(q, fmt, "w"), fmt, 32, "w"), q);
  }
}

TEST(GptqFormat, PackErrorsNameTheTensor) {
  GroupQuantized q = make(3, 32, 16, 1, std::vector<int32_t>(32 * 16, 1), std::vector<int32_t>(32, 1));
  try {
    pack_gptq(q, GptqCheckpointFormat::kV1, "layers.2.mlp.down_proj");  // 16·3 bits is not a word multiple
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layers.2.mlp.down_proj"), std::string::npos);
  }
  GroupQuantized r = make(4, 8, 8, 1, std::vector<int32_t>(64, 1), std::vector<int32_t>(8, 1));
  r.scales.data[3] = 0.1f;  // not an fp16 value: the checkpoint could not reproduce it
  EXPECT_THROW(pack_gptq(r, GptqCheckpointFormat::kV2, "w"), Error);
  r.scales.data[3] = 0.25f;
  r.qweight[5] = 16;
  EXPECT_THROW(pack_gptq(r, GptqCheckpointFormat::kV2, "w"), Error);
  r.qweight[5] = 1;
  r.g_idx[2] = 1;  // only one group
  EXPECT_THROW(pack_gptq(r, GptqCheckpointFormat::kV2, "w"), Error);
  r.g_idx[2] = 0;
  GptqPacked p = pack_gptq(r, GptqCheckpointFormat::kV2, "w");
  p.qzeros.push_back(0);
  EXPECT_THROW(unpack_gptq(p, GptqCheckpointFormat::kV2, 8, "w"), Error);
  p.qzeros.pop_back();
  p.g_idx[0] = 3;
  EXPECT_THROW(unpack_gptq(p, GptqCheckpointFormat::kV2, 8, "w"), Error);
  p.g_idx[0] = 0;
  EXPECT_THROW(unpack_gptq(p, GptqCheckpointFormat::kV2, 3, "w"), Error);  // 3 does not divide 8
}

TEST(AwqFormat, GemmOrderHandComputed) {
  // in = 2, out = 8, one group. Word (i, 0), nibble j ← output kAwqOrder[j] = 0,2,4,6,1,3,5,7.
  // Input 0 codes[o] = o: nibbles j = 0,2,4,6,1,3,5,7 → (high→low) 7 5 3 1 6 4 2 0 = 0x75316420.
  // Input 1 codes[o] = 15 − o: nibbles 15,13,11,9,14,12,10,8 → 0x8ACE9BDF.
  std::vector<int32_t> codes(16);
  for (int o = 0; o < 8; ++o) {
    codes[size_t(o * 2 + 0)] = o;
    codes[size_t(o * 2 + 1)] = 15 - o;
  }
  // zeros[o] = o + 1, true zeros (no −1): nibbles 1,3,5,7,2,4,6,8 → 0x86427531.
  const GroupQuantized q = make(4, 8, 2, 1, codes, {1, 2, 3, 4, 5, 6, 7, 8});
  const AwqPacked p = pack_awq_gemm(q, "w");
  EXPECT_EQ(p.qweight, (std::vector<int32_t>{0x75316420, w32(0x8ACE9BDF)}));  // [in, out/8] = [2, 1]
  EXPECT_EQ(p.qzeros, (std::vector<int32_t>{w32(0x86427531)}));
  EXPECT_EQ(p.scales[0], 0x3400);  // 0.25
  expect_same(unpack_awq_gemm(p, -1, "w"), q);
}

TEST(AwqFormat, RoundTripAndRejections) {
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> code(0, 15);
  const int64_t out = 32, in = 64, groups = 4;
  std::vector<int32_t> codes(static_cast<size_t>(out * in)), zeros(static_cast<size_t>(groups * out));
  for (auto& c : codes) c = code(rng);
  for (auto& z : zeros) z = code(rng);
  const GroupQuantized q = make(4, out, in, groups, codes, zeros);
  const AwqPacked p = pack_awq_gemm(q, "w");
  EXPECT_EQ(p.qweight.size(), size_t(in * out / 8));
  EXPECT_EQ(p.qzeros.size(), size_t(groups * out / 8));
  expect_same(unpack_awq_gemm(p, 16, "w"), q);
  EXPECT_THROW(unpack_awq_gemm(p, 32, "w"), Error);  // qzeros says 4 groups of 16

  try {
    pack_awq_gemm(make(3, 32, 32, 1, std::vector<int32_t>(1024, 0), std::vector<int32_t>(32, 0)), "layers.0.mlp.gate_proj");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("4-bit"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("layers.0.mlp.gate_proj"), std::string::npos);
  }
  GroupQuantized act = q;
  std::swap(act.g_idx[0], act.g_idx[20]);  // act-order style map
  EXPECT_THROW(pack_awq_gemm(act, "w"), Error);
  EXPECT_THROW(pack_awq_gemm(make(4, 4, 8, 1, std::vector<int32_t>(32, 0), std::vector<int32_t>(4, 0)), "w"), Error);
}
