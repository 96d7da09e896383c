// Element types of stored tensors and the conversions between 16-bit floats and fp32.
//
// fp16 conversion rounds to nearest even and handles subnormals, infinities and NaN exactly like
// IEEE hardware (F16C) does, so the bytes we write match what PyTorch / numpy / ggml write.
// bf16 conversion rounds to nearest even too (as torch and ggml do); NaN stays NaN.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace quantllm {

enum class DType : uint8_t { F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL, F8_E4M3 };

// Bytes per element.
size_t dtype_size(DType t);
// The safetensors spelling ("F32", "BF16", …).
std::string_view dtype_name(DType t);
std::optional<DType> dtype_from_name(std::string_view name);

inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40u);  // quiet NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);                                           // round to nearest even
  return uint16_t(bits >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// fp8 e4m3fn (OCP FP8 E4M3, torch.float8_e4m3fn, safetensors "F8_E4M3"): 1 sign, 4 exponent (bias 7) and
// 3 mantissa bits; exponent 0 is subnormal (m/8 · 2^−6), no infinities, S.1111.111 is NaN, ±448 the
// largest finite values. Encoding rounds to nearest even and saturates finite values beyond ±448 to
// ±448 (what a quantizer wants after scaling); NaN encodes as 0x7f.
float fp8e4m3_to_f32(uint8_t b);
uint8_t f32_to_fp8e4m3(float f);
inline constexpr float kFp8E4M3Max = 448.0f;

// Bulk conversions to fp32 (n elements).
void convert_to_f32(DType src_type, const void* src, float* dst, size_t n);

}  // namespace quantllm
