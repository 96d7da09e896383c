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
