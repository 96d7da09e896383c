// compressed-tensors pack-quantized layout against words worked out by hand (in the comments) from the
// format's rules (compressed-tensors' pack_to_int32: codes offset into the unsigned range, floor(32/bits)
// per int32 word along the input dimension, low bits first; zero points packed along the output
// dimension) — never from our packer — plus exact round trips and the errors a bad tensor raises.
#include "quant/ct_format.h"

#include "core/dtype.h"
#include "core/error.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace quantllm;

namespace {

int32_t w32(uint32_t u) { return int32_t(u); }

// codes [out, in], zeros [groups, out]; scales 0.25·(1 + row + group); groups of in / groups columns.
GroupQuantized make(int bits, int64_t out, int64_t in, int64_t groups, const std::vector<int>& codes,
                    std::vector<int32_t> zeros, std::vector<int32_t> g_idx = {}) {
  GroupQuantized q;
  q.bits = bits, q.out = out, q.in = in, q.group_size = int(in / groups);
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
  EXPECT_EQ(a.qweight, b.qweight);
  EXPECT_EQ(a.zeros, b.zeros);
  EXPECT_EQ(a.scales.data, b.scales.data);
  EXPECT_EQ(a.g_idx, b.g_idx);
  EXPECT_EQ(a.dequantize().data, b.dequantize().data);
}

}  // namespace

TEST(CtFormat, FourBitsHandComputed) {
  // out 2, in 10 (8 codes a word: 2 words a row, the second holding 2 codes), 2 groups of 5 columns.
  // Row 0 codes c & 15 = 0 … 9: word 0 nibbles (high → low) 7 6 5 4 3 2 1 0 = 0x76543210, word 1 = 0x98.
  // Row 1 codes (c + 1) & 15 = 1 … 10: 0x87654321 and 0xA9.
  std::vector<int> codes;
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 10; ++c) codes.push_back((c + r) & 15);
  // Zeros group 0: rows 3, 12; group 1: 0, 15. Packed along the rows, 8 a word: [1, 2] words
  // {3 | 12 << 4, 0 | 15 << 4} = {0xC3, 0xF0}. Scales [out, groups]: {0.25, 0.5, 0.5, 0.75}.
  const GroupQuantized q = make(4, 2, 10, 2, codes, {3, 12, 0, 15});
  const CtPacked p = pack_ct(q, false, "w");
  EXPECT_EQ(p.weight_packed, (std::vector<int32_t>{0x76543210, 0x98, w32(0x87654321u), 0xA9}));
  EXPECT_EQ(p.weight_zero_point, (std::vector<int32_t>{0xC3, 0xF0}));
  EXPECT_EQ(p.weight_scale, (std::vector<float>{0.25f, 0.5f, 0.5f, 0.75f}));
  EXPECT_TRUE(p.g_idx.empty());  // contiguous groups: no weight_g_idx
  // W[1, 7] = scale[1, g 1] · (code 8 − zero 15) = 0.75 · −7.
  EXPECT_EQ(unpack_ct(p, 5, "w").dequantize().data[size_t(1 * 10 + 7)], 0.75f * -7.0f);
  expect_same(unpack_ct(p, 5, "w"), q);
}

TEST(CtFormat, EightAndThreeBitsHandComputed) {
  // 8 bits, 4 codes a word; row {1, 2, 3, 200, 255}: word 0 = 0xC8030201 (200 = 0xC8), word 1 = 0xFF.
  const GroupQuantized q8 = make(8, 1, 5, 1, {1, 2, 3, 200, 255}, {128});
  const CtPacked p8 = pack_ct(q8, true, "w8");  // symmetric: zero 128 = 2^7, nothing stored
  EXPECT_EQ(p8.weight_packed, (std::vector<int32_t>{w32(0xC8030201u), 0xFF}));
  EXPECT_TRUE(p8.weight_zero_point.empty());
  expect_same(unpack_ct(p8, 5, "w8"), q8);
  // 3 bits, 10 codes a word (bits 30, 31 unused); row codes c & 7 for c = 0 … 11. In octal each digit
  // is one field: word 0 = fields 9 … 0 = 1 0 7 6 5 4 3 2 1 0 = 01076543210, word 1 = fields 3 2 = 032.
  std::vector<int> codes;
  for (int c = 0; c < 12; ++c) codes.push_back(c & 7);
  const GroupQuantized q3 = make(3, 1, 12, 1, codes, {4});
  const CtPacked p3 = pack_ct(q3, true, "w3");
  EXPECT_EQ(p3.weight_packed, (std::vector<int32_t>{01076543210, 032}));
  expect_same(unpack_ct(p3, 12, "w3"), q3);
}

TEST(CtFormat, ActOrderGroupIndexAndChannelStrategy) {
  // Groups scattered over the columns (act-order): weight_g_idx keeps them and the dequantization uses them.
  std::vector<int> codes(16);
  for (int c = 0; c < 16; ++c) codes[size_t(c)] = c;
  const std::vector<int32_t> g_idx = {1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0};
  const GroupQuantized q = make(4, 1, 16, 2, codes, {2, 9}, g_idx);
  const CtPacked p = pack_ct(q, false, "w");
  EXPECT_EQ(p.g_idx, g_idx);
  const Tensor w = unpack_ct(p, 8, "w").dequantize();
  EXPECT_EQ(w.data[0], 0.5f * (0 - 9));   // column 0 is in group 1: scale 0.25·2, zero 9
  EXPECT_EQ(w.data[1], 0.25f * (1 - 2));  // column 1 in group 0
  // Per channel (group_size −1): one group per row.
  const GroupQuantized qc = make(4, 2, 8, 1, std::vector<int>(16, 5), {8, 8});
  expect_same(unpack_ct(pack_ct(qc, true, "c"), -1, "c"), qc);
}

TEST(CtFormat, RandomRoundTripsAllWidths) {
  std::mt19937 rng(7);
  for (int bits = 2; bits <= 8; ++bits)
    for (int64_t in : {int64_t(64), int64_t(100), int64_t(37)}) {
      const int64_t out = 24 + bits, groups = in == 64 ? 4 : 1;
      std::vector<int> codes(size_t(out * in));
      for (auto& c : codes) c = int(rng() % (1u << bits));
      std::vector<int32_t> zeros(size_t(groups * out));
      for (auto& z : zeros) z = int32_t(rng() % (1u << bits));
      const GroupQuantized q = make(bits, out, in, groups, codes, zeros);
      expect_same(unpack_ct(pack_ct(q, false, "r"), int(in / groups), "r"), q);
    }
}

TEST(CtFormat, ErrorsNameTheTensor) {
  const GroupQuantized q = make(4, 2, 10, 2, std::vector<int>(20, 3), {8, 8, 8, 7});
  // Symmetric needs every zero at 2^(bits−1).
  try {
    pack_ct(q, true, "layers.0.q_proj");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layers.0.q_proj"), std::string::npos) << e.what();
  }
  GroupQuantized bad_scale = q;
  bad_scale.scales.data[0] = 0.1f;  // not an fp16 value
  EXPECT_THROW(pack_ct(bad_scale, false, "s"), Error);
  CtPacked p = pack_ct(q, false, "w");
  CtPacked past = p;
  past.weight_packed[1] |= 0x100;  // a field past the row's 10 codes
  EXPECT_THROW(unpack_ct(past, 5, "w"), Error);
  CtPacked short_words = p;
  short_words.weight_packed.pop_back();
  EXPECT_THROW(unpack_ct(short_words, 5, "w"), Error);
  CtPacked bad_gidx = p;
  bad_gidx.g_idx.assign(10, 2);  // there are 2 groups
  EXPECT_THROW(unpack_ct(bad_gidx, 5, "w"), Error);
  CtPacked nan_scale = p;
  nan_scale.weight_scale[0] = std::nanf("");
  EXPECT_THROW(unpack_ct(nan_scale, 5, "w"), Error);
  EXPECT_THROW(unpack_ct(p, 4, "w"), Error);  // groups of 4 do not make 10 columns in 2 groups
}
