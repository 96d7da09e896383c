// The ternary formats TQ1_0 and TQ2_0 (BitNet b1.58 / TriLM weights): each weight of a 256-weight block
// is d · t with t in {−1, 0, 1} and d the block's largest |x| (fp16). Neither uses an importance matrix.
// TQ1_0 packs five trits a byte (1.6875 bits a weight), TQ2_0 four 2-bit codes (2.0625); layouts in
// blocks.h. As llama.cpp's quantize_row_tq1_0_ref / tq2_0_ref: t = lroundf(x / d), half away from zero.
#include "quant/ggml/internal.h"  // first: its pragmas must precede every inline function

#include <cmath>

namespace quantllm::ggml::detail {

namespace {

// The block's scale d = max |x| and its inverse (0 for an all-zero block).
float ternary_scale(const float* x, float* inv) {
  float amax = 0;
  for (int j = 0; j < kQK_K; ++j) amax = amax > std::fabs(x[j]) ? amax : std::fabs(x[j]);  // NaN wins, as ggml's MAX
  *inv = amax != 0 ? 1.0f / amax : 0.0f;
  return amax;
}

// t + 1 in {0, 1, 2} for one weight.
int trit(float x, float inv) { return int(std::lround(x * inv)) + 1; }

// A byte holding the base-3 number q (< 243) scaled to 256/243 (rounded up), so that the leading trit
// of q·3^k is (byte·3^k mod 256)·3 >> 8.
uint8_t pack_trits(int q) { return uint8_t((q * 256 + 242) / 243); }

// The trit at position k (0: the most significant) of a byte written by pack_trits.
int unpack_trit(uint8_t byte, int k) {
  static constexpr uint8_t kPow3[5] = {1, 3, 9, 27, 81};
  const uint8_t shifted = uint8_t(byte * kPow3[k]);  // mod 256
  return (int(shifted) * 3) >> 8;
}

}  // namespace

// TQ1_0: qs[0..31] hold weights 0..159 (byte m: weights m, m+32, …, m+128, first = most significant
// trit), qs[32..47] weights 160..239 (byte m: 160+m, 176+m, …, 224+m), qh[0..3] weights 240..255 (byte
// j: 240+j, 244+j, 248+j, 252+j, then a zero trit).
void quantize_row_tq1_0(const float* x, void* dst, int64_t n, const float* /*imatrix*/) {
  auto* y = static_cast<BlockTQ1_0*>(dst);
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    float inv;
    y[b].d = to_fp16(ternary_scale(x, &inv));
    for (int m = 0; m < 32; ++m) {
      int q = 0;
      for (int k = 0; k < 5; ++k) q = q * 3 + trit(x[m + 32 * k], inv);
      y[b].qs[m] = pack_trits(q);
    }
    for (int m = 0; m < 16; ++m) {
      int q = 0;
      for (int k = 0; k < 5; ++k) q = q * 3 + trit(x[160 + m + 16 * k], inv);
      y[b].qs[32 + m] = pack_trits(q);
    }
    for (int j = 0; j < 4; ++j) {
      int q = 0;
      for (int k = 0; k < 4; ++k) q = q * 3 + trit(x[240 + j + 4 * k], inv);
      y[b].qh[j] = pack_trits(q * 3);
    }
  }
}

void dequantize_row_tq1_0(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockTQ1_0*>(src);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float d = from_fp16(x[b].d);
    for (int k = 0; k < 5; ++k)
      for (int m = 0; m < 32; ++m) *y++ = float(unpack_trit(x[b].qs[m], k) - 1) * d;
    for (int k = 0; k < 5; ++k)
      for (int m = 0; m < 16; ++m) *y++ = float(unpack_trit(x[b].qs[32 + m], k) - 1) * d;
    for (int k = 0; k < 4; ++k)
      for (int j = 0; j < 4; ++j) *y++ = float(unpack_trit(x[b].qh[j], k) - 1) * d;
  }
}

// TQ2_0: per 128 weights 32 bytes; weight 32k + m (k < 4) in bits 2k, 2k+1 of byte m.
void quantize_row_tq2_0(const float* x, void* dst, int64_t n, const float* /*imatrix*/) {
  auto* y = static_cast<BlockTQ2_0*>(dst);
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    float inv;
    y[b].d = to_fp16(ternary_scale(x, &inv));
    for (int h = 0; h < 2; ++h) {
      for (int m = 0; m < 32; ++m) {
        int q = 0;
        for (int k = 0; k < 4; ++k) q |= (trit(x[128 * h + 32 * k + m], inv) & 3) << (2 * k);
        y[b].qs[32 * h + m] = uint8_t(q);
      }
    }
  }
}

void dequantize_row_tq2_0(const void* src, float* y, int64_t n) {
  const auto* x = static_cast<const BlockTQ2_0*>(src);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const float d = from_fp16(x[b].d);
    for (int h = 0; h < 2; ++h)
      for (int k = 0; k < 4; ++k)
        for (int m = 0; m < 32; ++m) *y++ = float(((x[b].qs[32 * h + m] >> (2 * k)) & 3) - 1) * d;
  }
}

}  // namespace quantllm::ggml::detail
