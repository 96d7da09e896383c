// Per-weight codes of the GGML blocks and the grid a block header allows (see codes.h).
#include "quant/ggml/codes.h"

#include "core/error.h"

#include <cmath>
#include <cstring>

namespace quantllm::ggml {

namespace {

// Where the bits of weight j's code live, as (byte, shift, width) fields; a code is the fields
// concatenated from the lowest. Each function lists the fields of one weight.
struct Field {
  int byte, shift, width;
};

// The 4-bit nibble layout of Q4_0 / IQ4_NL (and each 32-weight group of IQ4_XS): weight j of 32 in the
// low nibble of byte j (j < 16) or the high nibble of byte j − 16.
Field nibble32(int qs_offset, int j) { return {qs_offset + j % 16, j < 16 ? 0 : 4, 4}; }

// The 2-bit layout of Q2_K / Q3_K: weight j of 256 in byte (j / 128)·32 + j % 32 at bits 2·((j % 128) / 32).
Field pair256(int qs_offset, int j) { return {qs_offset + (j / 128) * 32 + j % 32, 2 * ((j % 128) / 32), 2}; }

// Q4_K / Q5_K's nibbles: 64-weight chunk c shares 32 bytes, the first 32 weights low, the next high.
Field nibble_k(int qs_offset, int j) { return {qs_offset + (j / 64) * 32 + j % 32, (j % 64) < 32 ? 0 : 4, 4}; }

int fields(GgmlType type, int j, Field* f) {
  switch (type) {
    case GgmlType::Q4_0:
      f[0] = nibble32(offsetof(BlockQ4_0, qs), j);
      return 1;
    case GgmlType::Q4_1:
      f[0] = nibble32(offsetof(BlockQ4_1, qs), j);
      return 1;
    case GgmlType::IQ4_NL:
      f[0] = nibble32(offsetof(BlockIQ4_NL, qs), j);
      return 1;
    case GgmlType::Q5_0:
      f[0] = nibble32(offsetof(BlockQ5_0, qs), j);
      f[1] = {int(offsetof(BlockQ5_0, qh)) + j / 8, j % 8, 1};
      return 2;
    case GgmlType::Q5_1:
      f[0] = nibble32(offsetof(BlockQ5_1, qs), j);
      f[1] = {int(offsetof(BlockQ5_1, qh)) + j / 8, j % 8, 1};
      return 2;
    case GgmlType::Q8_0:
      f[0] = {int(offsetof(BlockQ8_0, qs)) + j, 0, 8};
      return 1;
    case GgmlType::Q2_K:
      f[0] = pair256(offsetof(BlockQ2_K, qs), j);
      return 1;
    case GgmlType::Q3_K:
      f[0] = pair256(offsetof(BlockQ3_K, qs), j);
      f[1] = {int(offsetof(BlockQ3_K, hmask)) + j % 32, j / 32, 1};
      return 2;
    case GgmlType::Q4_K:
      f[0] = nibble_k(offsetof(BlockQ4_K, qs), j);
      return 1;
    case GgmlType::Q5_K:
      f[0] = nibble_k(offsetof(BlockQ5_K, qs), j);
      f[1] = {int(offsetof(BlockQ5_K, qh)) + j % 32, 2 * (j / 64) + ((j % 64) < 32 ? 0 : 1), 1};
      return 2;
    case GgmlType::Q6_K: {
      const int half = j / 128, l = j % 32, quarter = (j % 128) / 32;
      f[0] = {int(offsetof(BlockQ6_K, ql)) + 64 * half + l + (quarter % 2) * 32, quarter < 2 ? 0 : 4, 4};
      f[1] = {int(offsetof(BlockQ6_K, qh)) + 32 * half + l, 2 * quarter, 2};
      return 2;
    }
    case GgmlType::IQ4_XS:
      f[0] = nibble32(int(offsetof(BlockIQ4_XS, qs)) + 16 * (j / 32), j % 32);
      return 1;
    default:
      return 0;
  }
}

// The stored integer of code k: Q8_0 stores q = k − 127 as int8; every other type stores k itself.
uint8_t stored(GgmlType type, uint8_t k) { return type == GgmlType::Q8_0 ? uint8_t(int8_t(int(k) - 127)) : k; }
uint8_t code_of(GgmlType type, uint8_t s) { return type == GgmlType::Q8_0 ? uint8_t(int(int8_t(s)) + 127) : s; }

}  // namespace

int code_levels(GgmlType type) {
  switch (type) {
    case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q4_K: case GgmlType::IQ4_NL: case GgmlType::IQ4_XS:
      return 16;
    case GgmlType::Q5_0: case GgmlType::Q5_1: case GgmlType::Q5_K:
      return 32;
    case GgmlType::Q8_0:
      return 255;
    case GgmlType::Q2_K:
      return 4;
    case GgmlType::Q3_K:
      return 8;
    case GgmlType::Q6_K:
      return 64;
    default:
      return 0;
  }
}

void set_codes(GgmlType type, void* block, const uint8_t* codes) {
  const int levels = code_levels(type);
  QL_ASSERT(levels > 0, "type {} has no per-weight codes", type_name(type));
  auto* b = static_cast<uint8_t*>(block);
  Field f[2];
  for (int j = 0, n = traits(type).block_size; j < n; ++j) {
    QL_ASSERT(codes[j] < levels, "code {} of weight {} out of range for {}", codes[j], j, type_name(type));
    const uint8_t v = stored(type, codes[j]);
    int used = 0;
    for (int k = 0, nf = fields(type, j, f); k < nf; ++k) {
      const uint8_t mask = uint8_t(((1u << f[k].width) - 1u) << f[k].shift);
      const uint8_t bits = uint8_t(((v >> used) << f[k].shift) & mask);
      b[f[k].byte] = uint8_t((b[f[k].byte] & ~mask) | bits);
      used += f[k].width;
    }
  }
}

void get_codes(GgmlType type, const void* block, uint8_t* codes) {
  QL_ASSERT(code_levels(type) > 0, "type {} has no per-weight codes", type_name(type));
  const auto* b = static_cast<const uint8_t*>(block);
  Field f[2];
  for (int j = 0, n = traits(type).block_size; j < n; ++j) {
    unsigned v = 0;
    int used = 0;
    for (int k = 0, nf = fields(type, j, f); k < nf; ++k) {
      v |= ((unsigned(b[f[k].byte]) >> f[k].shift) & ((1u << f[k].width) - 1u)) << used;
      used += f[k].width;
    }
    codes[j] = code_of(type, uint8_t(v));
  }
}

BlockGrid block_grid(GgmlType type, const void* block) {
  BlockGrid g;
  block_grid(type, block, g);
  return g;
}

void block_grid(GgmlType type, const void* block, BlockGrid& g) {
  const QuantTraits& t = traits(type);
  const int n = t.block_size;
  thread_local std::vector<uint8_t> copy, codes;  // called once per block of every row: no allocation each time
  copy.assign(static_cast<const uint8_t*>(block), static_cast<const uint8_t*>(block) + t.type_size);
  codes.resize(static_cast<size_t>(n));
  auto values_at = [&](uint8_t k, std::vector<float>& out) {
    std::fill(codes.begin(), codes.end(), k);
    set_codes(type, copy.data(), codes.data());
    out.resize(size_t(n));
    t.dequantize(copy.data(), out.data(), n);
  };
  if (type == GgmlType::IQ4_NL || type == GgmlType::IQ4_XS) {
    g.base.clear(), g.step.clear();
    values_at(8, g.scale);  // kIq4nlValues[8] = 1: the weight's scale itself
    return;
  }
  g.scale.clear();
  values_at(0, g.base);
  values_at(1, g.step);
  for (int i = 0; i < n; ++i) g.step[size_t(i)] -= g.base[size_t(i)];
}

uint8_t BlockGrid::nearest(int i, float x, int levels, float& value) const {
  if (uniform()) {
    const float b = base[size_t(i)], s = step[size_t(i)];
    int k = 0;
    if (s != 0.0f && std::isfinite(s)) {
      const float r = std::nearbyint((x - b) / s);
      k = !(r >= 0.0f) ? 0 : (r > float(levels - 1) ? levels - 1 : int(r));  // NaN: code 0, never int(NaN)
    }
    value = b + s * float(k);
    return uint8_t(k);
  }
  const float d = scale[size_t(i)];
  int best = 0;
  float best_err = INFINITY;
  for (int k = 0; k < levels; ++k) {
    const float v = d * float(kIq4nlValues[k]);
    const float e = std::fabs(x - v);
    if (e < best_err) best = k, best_err = e, value = v;
  }
  if (!std::isfinite(best_err)) value = d * float(kIq4nlValues[0]);
  return uint8_t(best);
}

}  // namespace quantllm::ggml
