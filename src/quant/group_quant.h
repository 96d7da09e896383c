// Group-wise integer quantization of a weight matrix: the number format shared by GPTQ and AWQ
// checkpoints (per output row and per group of input columns: an fp16 scale and an integer zero point;
// codes q in [0, 2^bits − 1]; weight = scale · (q − zero)).
//
// Parameter finding follows the GPTQ reference (IST-DASLab gptq, quant.py, Quantizer.find_params with
// perchannel=True) bit for bit in fp32: the range always includes 0, a symmetric grid puts the zero at
// 2^(bits−1), an all-zero row gets the range [−1, 1], rounding is half-to-even (torch.round), and the
// optional MSE search shrinks the range over a 100-point grid up to 80% minimizing Σ|q − x|^2.4.
// AutoAWQ's rule (pseudo_quantize_tensor: range = [min, max] without forcing 0 in, scale clamped at
// 1e-5/maxq) is available as RangeRule::kAwq for the AWQ path.
//
// fp16 scales. Checkpoints store scales as fp16. GPTQModel/AutoGPTQ find the codes with the fp32
// scale (the one GPTQ's error feedback used) and round the scale to fp16 only when packing; readers
// then dequantize with the fp16 scale. ScaleRounding::kAfterCodes (default) does exactly that, and
// GroupQuantized::scales holds the fp16-rounded values, so dequantize() is bit-for-bit what any
// reader of the exported checkpoint computes. kBeforeCodes rounds the scale to fp16 first and finds
// the codes (and, in GPTQ, the error feedback) with it: the exported weights are then exactly the
// ones the algorithm optimized, at the price of deviating from the reference implementations.
#pragma once

#include "core/tensor.h"

#include <cmath>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace quantllm {

enum class ScaleRounding : uint8_t {
  kAfterCodes,   // codes from the fp32 scale, scale stored as fp16 (GPTQModel, AutoGPTQ, AutoAWQ)
  kBeforeCodes,  // scale rounded to fp16 first; codes and error feedback use the rounded scale
};

enum class RangeRule : uint8_t {
  kGptq,  // GPTQ quant.py: range includes 0; sym: scale = 2·absmax/maxq, zero = (maxq+1)/2
  kAwq,   // AutoAWQ: asym range [min, max]; sym: scale = absmax/(2^(bits−1)−1), zero = 2^(bits−1)
};

struct QuantParams {
  int bits = 4;
  int group_size = 128;  // −1: one group per row
  bool sym = false;
  bool mse = false;  // GPTQ's MSE-optimal shrinking of the range (maxshrink 0.8, grid 100, norm 2.4)
  ScaleRounding scale_rounding = ScaleRounding::kAfterCodes;
  RangeRule rule = RangeRule::kGptq;
};

inline int max_code(int bits) { return (1 << bits) - 1; }

// Throws Error naming `name` unless bits ∈ [2, 8] and the group size is −1 or a positive divisor of `in`.
void validate_quant_params(const QuantParams& p, int64_t in, std::string_view name);
// (check_finite, the NaN / Inf check of weights, lives in core/tensor.h.)

int64_t group_count(const QuantParams& p, int64_t in);
int64_t effective_group_size(const QuantParams& p, int64_t in);  // in when group_size == −1

// The parameters of one row of one group.
struct GroupParams {
  float scale = 1.0f;
  int32_t zero = 0;
};

// x: the values of one row restricted to one group. Implements find_params (see the file comment),
// including the MSE search when p.mse, and the fp16 rounding of the scale for kBeforeCodes (for
// kAfterCodes the returned scale is the fp32 one: round it with finalize_scale after the codes).
GroupParams find_group_params(std::span<const float> x, const QuantParams& p);

// The scale as stored in the checkpoint (fp16-rounded, as a float).
float finalize_scale(float scale);

// q = clamp(round(x / scale) + zero, 0, maxq): division and half-to-even rounding in fp32 like torch.
inline int32_t quantize_value(float x, const GroupParams& g, int maxq) {
  float q = std::nearbyint(x / g.scale) + float(g.zero);
  q = q < 0.0f ? 0.0f : (q > float(maxq) ? float(maxq) : q);
  return int32_t(q);
}
inline float dequantize_value(int32_t q, const GroupParams& g) { return g.scale * float(q - g.zero); }

// A quantized linear layer before packing. Codes are kept unpacked in [out, in] order; groups are
// given by g_idx so act-order layouts (any column → group map) are represented too.
struct GroupQuantized {
  int bits = 4;
  int group_size = 128;  // as configured (−1: one group per row)
  int64_t out = 0, in = 0;
  std::vector<uint8_t> qweight;  // [out, in] codes in [0, 2^bits − 1] (bits ≤ 8: one byte a weight)
  Tensor scales;                 // [n_groups, out], fp16-representable values
  std::vector<int32_t> zeros;    // [n_groups, out] in [0, 2^bits − 1]
  std::vector<int32_t> g_idx;    // [in]: group of each input column

  int64_t n_groups() const { return scales.empty() ? 0 : scales.dim(0); }
  GroupParams params(int64_t group, int64_t row) const {
    return {scales.data[size_t(group * out + row)], zeros[size_t(group * out + row)]};
  }
  // W: [out, in] = scale[g_idx[c], r] · (q[r, c] − zero[g_idx[c], r]) in fp32.
  Tensor dequantize() const;
};

// Round-to-nearest quantization of w: [out, in] (no error feedback). g_idx[c] = c / group_size.
GroupQuantized quantize_rtn(const Tensor& w, const QuantParams& p, std::string_view name);

}  // namespace quantllm
