// Bit-stream packing of GPTQ and AWQ GEMM tensors (layouts described in gptq_format.h).
#include "quant/gptq_format.h"

#include "core/dtype.h"
#include "core/threads.h"

#include <algorithm>
#include <atomic>
#include <cmath>

namespace quantllm {

namespace {

// Field `index` (of `bits` bits) of a little-endian bit stream whose 32-bit words lie `stride` apart.
void put_field(uint32_t* words, int64_t stride, int64_t index, int bits, uint32_t v) {
  const int64_t bit = index * bits, w = bit >> 5;
  const int off = int(bit & 31);
  words[w * stride] |= v << off;
  if (off + bits > 32) words[(w + 1) * stride] |= v >> (32 - off);
}

uint32_t get_field(const uint32_t* words, int64_t stride, int64_t index, int bits) {
  const int64_t bit = index * bits, w = bit >> 5;
  const int off = int(bit & 31);
  uint32_t v = words[w * stride] >> off;
  if (off + bits > 32) v |= words[(w + 1) * stride] << (32 - off);
  return v & uint32_t(max_code(bits));
}

std::vector<int32_t> to_int32(const std::vector<uint32_t>& u) { return {u.begin(), u.end()}; }  // modular (C++20)
std::vector<uint32_t> to_uint32(const std::vector<int32_t>& s) { return {s.begin(), s.end()}; }

Tensor scales_from_f16(const std::vector<uint16_t>& h, int64_t n_groups, int64_t out) {
  Tensor s({n_groups, out});
  for (size_t i = 0; i < h.size(); ++i) s.data[i] = f16_to_f32(h[i]);
  return s;
}

}  // namespace

// Checks the shapes and value ranges every packer relies on.
void check_unpacked(const GroupQuantized& q, std::string_view name) {
  if (q.bits < 2 || q.bits > 8) fail("tensor '{}': {} bits cannot be packed (2 to 8 supported)", name, q.bits);
  const int64_t ng = q.n_groups();
  if (int64_t(q.qweight.size()) != q.out * q.in || int64_t(q.g_idx.size()) != q.in || ng < 1 ||
      q.scales.ndim() != 2 || q.scales.dim(1) != q.out || int64_t(q.zeros.size()) != ng * q.out)
    fail("tensor '{}': inconsistent quantized tensor (out {}, in {}, scales {}, {} zeros, {} g_idx)", name, q.out, q.in,
         shape_str(q.scales.shape), q.zeros.size(), q.g_idx.size());
  const int maxq = max_code(q.bits);
  std::atomic<int64_t> bad{-1};
  parallel_for(int64_t(q.qweight.size()), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      if (int(q.qweight[size_t(i)]) > maxq) bad = i;
  }, 1 << 20);
  if (bad >= 0) fail("tensor '{}': code {} at {} outside [0, {}]", name, q.qweight[size_t(bad.load())], bad.load(), maxq);
  for (size_t i = 0; i < q.zeros.size(); ++i)
    if (q.zeros[i] < 0 || q.zeros[i] > maxq) fail("tensor '{}': zero point {} at {} outside [0, {}]", name, q.zeros[i], i, maxq);
  for (size_t i = 0; i < q.g_idx.size(); ++i)
    if (q.g_idx[i] < 0 || q.g_idx[i] >= ng) fail("tensor '{}': g_idx[{}] = {} but there are {} groups", name, i, q.g_idx[i], ng);
}

std::vector<uint16_t> scales_to_f16(const Tensor& scales, std::string_view name) {
  std::vector<uint16_t> h(scales.data.size());
  for (size_t i = 0; i < h.size(); ++i) {
    h[i] = f32_to_f16(scales.data[i]);
    if (f16_to_f32(h[i]) != scales.data[i] || !std::isfinite(scales.data[i]))
      fail("tensor '{}': scale {} at {} is not an fp16 value; the checkpoint would not reproduce it", name, scales.data[i], i);
  }
  return h;
}

GptqPacked pack_gptq(const GroupQuantized& q, GptqCheckpointFormat format, std::string_view name) {
  check_unpacked(q, name);
  const int bits = q.bits;
  if ((q.in * bits) % 32 != 0 || (q.out * bits) % 32 != 0)
    fail("tensor '{}': shape [{}, {}] cannot be packed at {} bits (in·bits and out·bits must be multiples of 32)", name,
         q.out, q.in, bits);
  GptqPacked p;
  p.bits = bits;
  p.in = q.in;
  p.out = q.out;
  p.n_groups = q.n_groups();
  const int64_t wrows = q.in * bits / 32, zcols = q.out * bits / 32;
  const uint32_t mask = uint32_t(max_code(bits));

  // qweight [in·bits/32, out]: column o is row o's bit stream. Tiles of 64 columns per task keep the
  // rows of words a tile writes in cache (and tasks never share a cache line of the output).
  p.qweight.assign(size_t(wrows * q.out), 0);
  auto* qw = reinterpret_cast<uint32_t*>(p.qweight.data());
  constexpr int64_t kTile = 64;
  parallel_for((q.out + kTile - 1) / kTile, [&](int64_t t0, int64_t t1) {
    for (int64_t o = t0 * kTile; o < std::min(q.out, t1 * kTile); ++o) {
      const uint8_t* codes = q.qweight.data() + o * q.in;
      for (int64_t i = 0; i < q.in; ++i) put_field(qw + o, q.out, i, bits, uint32_t(codes[i]));
    }
  });

  std::vector<uint32_t> qz(size_t(p.n_groups * zcols), 0u);  // [n_groups, out·bits/32]
  for (int64_t g = 0; g < p.n_groups; ++g)
    for (int64_t o = 0; o < q.out; ++o) {
      uint32_t z = uint32_t(q.zeros[size_t(g * q.out + o)]);
      if (format == GptqCheckpointFormat::kV1) z = (z - 1u) & mask;
      put_field(qz.data() + g * zcols, 1, o, bits, z);
    }
  p.qzeros = to_int32(qz);
  p.scales = scales_to_f16(q.scales, name);
  p.g_idx = q.g_idx;
  return p;
}

GroupQuantized unpack_gptq(const GptqPacked& p, GptqCheckpointFormat format, int group_size, std::string_view name) {
  const int bits = p.bits;
  if (bits < 2 || bits > 8) fail("tensor '{}': {} bits is not a GPTQ width (2 to 8)", name, bits);
  if (p.in <= 0 || p.out <= 0 || p.n_groups <= 0 || (p.in * bits) % 32 != 0 || (p.out * bits) % 32 != 0)
    fail("tensor '{}': impossible GPTQ shape (in {}, out {}, {} groups, {} bits)", name, p.in, p.out, p.n_groups, bits);
  const int64_t wrows = p.in * bits / 32, zcols = p.out * bits / 32;
  if (int64_t(p.qweight.size()) != wrows * p.out)
    fail("tensor '{}': qweight has {} elements, expected [{}, {}]", name, p.qweight.size(), wrows, p.out);
  if (int64_t(p.qzeros.size()) != p.n_groups * zcols)
    fail("tensor '{}': qzeros has {} elements, expected [{}, {}]", name, p.qzeros.size(), p.n_groups, zcols);
  if (int64_t(p.scales.size()) != p.n_groups * p.out)
    fail("tensor '{}': scales has {} elements, expected [{}, {}]", name, p.scales.size(), p.n_groups, p.out);
  if (int64_t(p.g_idx.size()) != p.in) fail("tensor '{}': g_idx has {} elements, expected {}", name, p.g_idx.size(), p.in);
  if (group_size != -1 && (group_size <= 0 || p.in % group_size != 0))
    fail("tensor '{}': group size {} does not divide the input size {}", name, group_size, p.in);

  GroupQuantized q;
  q.bits = bits;
  q.group_size = group_size;
  q.out = p.out;
  q.in = p.in;
  q.qweight.resize(size_t(p.out * p.in));
  const std::vector<uint32_t> qw = to_uint32(p.qweight), qz = to_uint32(p.qzeros);
  for (int64_t o = 0; o < p.out; ++o)
    for (int64_t i = 0; i < p.in; ++i) q.qweight[size_t(o * p.in + i)] = uint8_t(get_field(qw.data() + o, p.out, i, bits));
  q.zeros.resize(size_t(p.n_groups * p.out));
  const uint32_t mask = uint32_t(max_code(bits));
  for (int64_t g = 0; g < p.n_groups; ++g)
    for (int64_t o = 0; o < p.out; ++o) {
      uint32_t z = get_field(qz.data() + g * zcols, 1, o, bits);
      if (format == GptqCheckpointFormat::kV1) z = (z + 1u) & mask;  // stored zero − 1, wrapping per field
      q.zeros[size_t(g * p.out + o)] = int32_t(z);
    }
  q.scales = scales_from_f16(p.scales, p.n_groups, p.out);
  q.g_idx = p.g_idx;
  for (int64_t i = 0; i < p.in; ++i)
    if (q.g_idx[size_t(i)] < 0 || q.g_idx[size_t(i)] >= p.n_groups)
      fail("tensor '{}': g_idx[{}] = {} but qzeros/scales have {} groups", name, i, q.g_idx[size_t(i)], p.n_groups);
  return q;
}

AwqPacked pack_awq_gemm(const GroupQuantized& q, std::string_view name) {
  check_unpacked(q, name);
  if (q.bits != 4) fail("tensor '{}': the AWQ GEMM layout stores 4-bit codes only, not {} bits", name, q.bits);
  if (q.out % 8 != 0) fail("tensor '{}': AWQ GEMM needs the output size ({}) to be a multiple of 8", name, q.out);
  const int64_t ng = q.n_groups();
  if (q.in % ng != 0) fail("tensor '{}': {} groups do not divide the input size {}", name, ng, q.in);
  const int64_t gs = q.in / ng;
  for (int64_t c = 0; c < q.in; ++c)
    if (q.g_idx[size_t(c)] != c / gs)
      fail("tensor '{}': AWQ stores contiguous groups only (g_idx[{}] = {}, expected {}); act-order needs GPTQ", name, c,
           q.g_idx[size_t(c)], c / gs);
  AwqPacked p;
  p.in = q.in;
  p.out = q.out;
  p.n_groups = ng;
  const int64_t words = q.out / 8;
  std::vector<uint32_t> qw(size_t(q.in * words), 0u), qz(size_t(ng * words), 0u);
  // qweight [in, out/8] gathers 8 output rows per word: a transpose, done in 64 × 64 tiles (reads of the
  // tile's rows and writes of its words both stay in cache), tiles of input columns spread over threads.
  constexpr int64_t kTile = 64;
  parallel_for((q.in + kTile - 1) / kTile, [&](int64_t t0, int64_t t1) {
    for (int64_t i0 = t0 * kTile; i0 < std::min(q.in, t1 * kTile); i0 += kTile)
      for (int64_t k0 = 0; k0 < words; k0 += kTile)
        for (int64_t i = i0; i < std::min(q.in, i0 + kTile); ++i)
          for (int64_t k = k0; k < std::min(words, k0 + kTile); ++k) {
            uint32_t w = 0;
            for (int j = 0; j < 8; ++j) w |= uint32_t(q.qweight[size_t((8 * k + kAwqOrder[size_t(j)]) * q.in + i)]) << (4 * j);
            qw[size_t(i * words + k)] = w;
          }
  });
  for (int64_t g = 0; g < ng; ++g)
    for (int64_t k = 0; k < words; ++k) {
      uint32_t w = 0;
      for (int j = 0; j < 8; ++j) w |= uint32_t(q.zeros[size_t(g * q.out + 8 * k + kAwqOrder[size_t(j)])]) << (4 * j);
      qz[size_t(g * words + k)] = w;
    }
  p.qweight = to_int32(qw);
  p.qzeros = to_int32(qz);
  p.scales = scales_to_f16(q.scales, name);
  return p;
}

GroupQuantized unpack_awq_gemm(const AwqPacked& p, int group_size, std::string_view name) {
  if (p.in <= 0 || p.out <= 0 || p.out % 8 != 0 || p.n_groups <= 0 || p.in % p.n_groups != 0)
    fail("tensor '{}': impossible AWQ GEMM shape (in {}, out {}, {} groups)", name, p.in, p.out, p.n_groups);
  const int64_t words = p.out / 8, gs = p.in / p.n_groups;
  if (group_size != -1 && group_size != gs)
    fail("tensor '{}': group size {} configured but qzeros has {} groups for {} inputs", name, group_size, p.n_groups, p.in);
  if (int64_t(p.qweight.size()) != p.in * words)
    fail("tensor '{}': qweight has {} elements, expected [{}, {}]", name, p.qweight.size(), p.in, words);
  if (int64_t(p.qzeros.size()) != p.n_groups * words)
    fail("tensor '{}': qzeros has {} elements, expected [{}, {}]", name, p.qzeros.size(), p.n_groups, words);
  if (int64_t(p.scales.size()) != p.n_groups * p.out)
    fail("tensor '{}': scales has {} elements, expected [{}, {}]", name, p.scales.size(), p.n_groups, p.out);
  GroupQuantized q;
  q.bits = 4;
  q.group_size = group_size;
  q.out = p.out;
  q.in = p.in;
  q.qweight.resize(size_t(p.out * p.in));
  q.zeros.resize(size_t(p.n_groups * p.out));
  for (int64_t i = 0; i < p.in; ++i)
    for (int64_t k = 0; k < words; ++k) {
      const uint32_t w = uint32_t(p.qweight[size_t(i * words + k)]);
      for (int j = 0; j < 8; ++j) q.qweight[size_t((8 * k + kAwqOrder[size_t(j)]) * p.in + i)] = uint8_t((w >> (4 * j)) & 15u);
    }
  for (int64_t g = 0; g < p.n_groups; ++g)
    for (int64_t k = 0; k < words; ++k) {
      const uint32_t w = uint32_t(p.qzeros[size_t(g * words + k)]);
      for (int j = 0; j < 8; ++j) q.zeros[size_t(g * p.out + 8 * k + kAwqOrder[size_t(j)])] = int32_t((w >> (4 * j)) & 15u);
    }
  q.scales = scales_from_f16(p.scales, p.n_groups, p.out);
  q.g_idx.resize(size_t(p.in));
  for (int64_t c = 0; c < p.in; ++c) q.g_idx[size_t(c)] = int32_t(c / gs);
  return q;
}

}  // namespace quantllm
