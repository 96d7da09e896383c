// Shared cases and helpers of the CPU kernel tests (kernels_test.cpp, qmatmul_test.cpp): the formats with
// their ggml counterparts, random rows and activations, the activation spec computed independently.
#pragma once

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
    // the low-bit types (runtime/cpu/kernels_lowbit.h)
    {GgmlType::IQ2_XXS, GgmlType::IQ2_XXS}, {GgmlType::IQ2_XS, GgmlType::IQ2_XS}, {GgmlType::IQ2_S, GgmlType::IQ2_S},
    {GgmlType::IQ3_XXS, GgmlType::IQ3_XXS}, {GgmlType::IQ3_S, GgmlType::IQ3_S},   {GgmlType::IQ1_S, GgmlType::IQ1_S},
    {GgmlType::IQ1_M, GgmlType::IQ1_M},     {GgmlType::TQ1_0, GgmlType::TQ1_0},   {GgmlType::TQ2_0, GgmlType::TQ2_0},
    {GgmlType::MXFP4, GgmlType::MXFP4},
};

// The scale |α| of weight i of a low-bit row (kernels_lowbit.h's forms), read off the bytes here
// independently of the decoders; the kernels remove the offset β = 128·α separately.
double lowbit_alpha(GgmlType f, const uint8_t* row, int64_t i) {
  using namespace quantllm::ggml;
  auto u16 = [](const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8; };
  auto u32 = [&](const uint8_t* p) { return u16(p) | u16(p + 2) << 16; };
  const int64_t k = i % 256;  // position in the 256-weight super-block
  switch (f) {
    case GgmlType::IQ2_XXS: {
      const uint8_t* b = row + (i / 256) * sizeof(BlockIQ2_XXS);
      return std::fabs(f16_to_f32(uint16_t(u16(b)))) * (0.5 + (u32(b + 2 + 8 * (k / 32) + 4) >> 28)) / 4;
    }
    case GgmlType::IQ2_XS:
    case GgmlType::IQ2_S: {
      const size_t size = f == GgmlType::IQ2_XS ? sizeof(BlockIQ2_XS) : sizeof(BlockIQ2_S);
      const uint8_t* b = row + (i / 256) * size;
      const uint8_t* scales = b + size - 8;  // both blocks end in their 8 scale bytes
      return std::fabs(f16_to_f32(uint16_t(u16(b)))) * (0.5 + ((scales[k / 32] >> (4 * ((k / 16) % 2))) & 15)) / 4;
    }
    case GgmlType::IQ3_XXS: {
      const uint8_t* b = row + (i / 256) * sizeof(BlockIQ3_XXS);
      return std::fabs(f16_to_f32(uint16_t(u16(b)))) * (0.5 + (u32(b + 2 + 64 + 4 * (k / 32)) >> 28)) / 2;
    }
    case GgmlType::IQ3_S: {
      const auto& b = reinterpret_cast<const BlockIQ3_S*>(row)[i / 256];
      return std::fabs(f16_to_f32(b.d)) * (1 + 2 * ((b.scales[k / 64] >> (4 * ((k / 32) % 2))) & 15));
    }
    case GgmlType::IQ1_S: {
      const uint8_t* b = row + (i / 256) * sizeof(BlockIQ1_S);
      return std::fabs(f16_to_f32(uint16_t(u16(b)))) * (2 * ((u16(b + 34 + 2 * (k / 32)) >> 12) & 7) + 1) / 8;
    }
    case GgmlType::IQ1_M: {
      const auto& b = reinterpret_cast<const BlockIQ1_M*>(row)[i / 256];
      uint32_t sc[4], dbits = 0;
      for (int j = 0; j < 4; ++j) sc[j] = u16(b.scales + 2 * j), dbits |= (sc[j] >> 12) << (4 * j);
      return std::fabs(f16_to_f32(uint16_t(dbits))) * (2 * ((sc[k / 64] >> (3 * ((k / 16) % 4))) & 7) + 1) / 8;
    }
    case GgmlType::TQ1_0: return std::fabs(f16_to_f32(reinterpret_cast<const BlockTQ1_0*>(row)[i / 256].d));
    case GgmlType::TQ2_0: return std::fabs(f16_to_f32(reinterpret_cast<const BlockTQ2_0*>(row)[i / 256].d));
    case GgmlType::MXFP4: return std::ldexp(1.0, int(reinterpret_cast<const BlockMXFP4*>(row)[i / 32].e) - 128);
    default: return 0.0;
  }
}

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
    default: return 128.0 * lowbit_alpha(f, row, i);
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
  // The types llama.cpp quantizes only with an importance matrix get a made-up one (any positive
  // weighting is one; these tests need valid bytes, not the best ones).
  std::vector<float> imatrix;
  if (ggml::requires_imatrix(c.type))
    for (int64_t j = 0; j < n; ++j) imatrix.push_back(1.0f + 0.25f * float(j % 7));
  ggml::quantize_rows(c.type, x.data(), r.bytes.data(), out, n, imatrix.empty() ? nullptr : imatrix.data());
  r.w.resize(size_t(out * n));
  ggml::dequantize_rows(c.type, r.bytes.data(), r.w.data(), out, n);
  r.m.format = c.format, r.m.rows = out, r.m.cols = n, r.m.row_bytes = ggml::row_size(c.type, n);
  r.m.data = r.bytes.data();
  return r;
}
[[maybe_unused]] Matrix make_row(const Case& c, int64_t n, uint32_t seed) { return make_matrix(c, 1, n, seed); }

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
