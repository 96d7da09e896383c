// Element types: names, sizes, and fp16 <-> fp32 conversion (bit-exact with IEEE hardware).
#include "core/dtype.h"

#include "core/error.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace quantllm {

namespace {
struct DTypeRow {
  DType type;
  std::string_view name;
  size_t size;
};
constexpr DTypeRow kDTypes[] = {
    {DType::F32, "F32", 4}, {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2}, {DType::F64, "F64", 8},
    {DType::I64, "I64", 8}, {DType::I32, "I32", 4}, {DType::I16, "I16", 2},   {DType::I8, "I8", 1},
    {DType::U8, "U8", 1},   {DType::BOOL, "BOOL", 1}, {DType::F8_E4M3, "F8_E4M3", 1},
};
const DTypeRow& row(DType t) {
  for (const auto& r : kDTypes)
    if (r.type == t) return r;
  QL_ASSERT(false, "unknown dtype {}", int(t));
  __builtin_unreachable();
}
}  // namespace

size_t dtype_size(DType t) { return row(t).size; }
std::string_view dtype_name(DType t) { return row(t).name; }
std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& r : kDTypes)
    if (r.name == name) return r.type;
  return std::nullopt;
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: value = mant * 2^-24
      float f = std::ldexp(float(mant), -24);
      std::memcpy(&bits, &f, 4);
      bits |= sign;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = uint16_t((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return uint16_t(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));  // NaN
  if (ax >= 0x477ff000u) return uint16_t(sign | 0x7c00u);                           // overflow -> inf
  if (ax < 0x38800000u) {                                                           // subnormal or zero
    // value / 2^-24, rounded to nearest even, by adding in float arithmetic
    float a;
    std::memcpy(&a, &ax, 4);
    const float scaled = a * 16777216.0f;  // 2^24, exact
    const float r = std::nearbyint(scaled);  // default rounding mode: nearest even
    return uint16_t(sign | uint16_t(r));
  }
  // normal: rebias exponent, round mantissa to nearest even
  uint32_t m = ax - (112u << 23);
  m += 0xfffu + ((m >> 13) & 1u);
  return uint16_t(sign | uint16_t(m >> 13));
}

float fp8e4m3_to_f32(uint8_t b) {
  const int e = (b >> 3) & 15, m = b & 7;
  const float sign = (b & 0x80) ? -1.0f : 1.0f;
  if (e == 15 && m == 7) return std::nanf("");
  if (e == 0) return sign * std::ldexp(float(m), -9);  // m/8 · 2^−6
  return sign * std::ldexp(float(8 + m), e - 10);       // (1 + m/8) · 2^(e − 7)
}

uint8_t f32_to_fp8e4m3(float f) {
  if (std::isnan(f)) return 0x7f;
  const uint8_t sign = std::signbit(f) ? 0x80 : 0;
  const float a = std::min(std::fabs(f), kFp8E4M3Max);
  // The 127 finite non-negative codes in increasing order: the nearest, ties to the even code.
  static const std::vector<float> values = [] {
    std::vector<float> v(127);
    for (int c = 0; c < 127; ++c) v[size_t(c)] = fp8e4m3_to_f32(uint8_t(c));
    return v;
  }();
  const auto it = std::lower_bound(values.begin(), values.end(), a);
  int hi = int(it - values.begin());
  if (hi == 0) return sign;  // a == 0
  const int lo = hi - 1;
  const float dl = a - values[size_t(lo)], dh = values[size_t(hi)] - a;
  const int c = dl < dh ? lo : dh < dl ? hi : (lo % 2 == 0 ? lo : hi);
  return uint8_t(sign | c);
}

void convert_to_f32(DType src_type, const void* src, float* dst, size_t n) {
  switch (src_type) {
    case DType::F32:
      std::memcpy(dst, src, n * 4);
      return;
    case DType::F16: {
      // A 64K-entry table (256 KiB, built once) is exact and several times faster than decoding bits.
      static const std::vector<float> table = [] {
        std::vector<float> t(65536);
        for (uint32_t h = 0; h < 65536; ++h) t[h] = f16_to_f32(uint16_t(h));
        return t;
      }();
      const auto* s = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = table[s[i]];
      return;
    }
    case DType::BF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case DType::F8_E4M3: {
      static const std::vector<float> table = [] {
        std::vector<float> t(256);
        for (int b = 0; b < 256; ++b) t[size_t(b)] = fp8e4m3_to_f32(uint8_t(b));
        return t;
      }();
      const auto* s = static_cast<const uint8_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = table[s[i]];
      return;
    }
    case DType::F64: {
      const auto* s = static_cast<const double*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = float(s[i]);
      return;
    }
    default:
      fail("cannot convert {} tensor to F32", dtype_name(src_type));
  }
}

}  // namespace quantllm
