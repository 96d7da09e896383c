// Packed tensor layouts of GPTQ and AWQ checkpoints, and their exact inverses.
//
// GPTQ (AutoGPTQ / GPTQModel, all widths 2–8 that divide into the layout below):
//   qweight int32 [in·bits/32, out]: for each output column, the codes of the input rows form one
//     little-endian bit stream (code i occupies bits [i·bits, (i+1)·bits) of the column's stream, word
//     k holding stream bits [32k, 32k+32)). For 2, 4 and 8 bits that is 32/bits codes per word, low
//     bits first; for 3 bits it is 32 codes per 3 words with codes 10 and 21 crossing word boundaries,
//     exactly AutoGPTQ's pack loop.
//   qzeros  int32 [n_groups, out·bits/32]: the same stream along the output dimension.
//     checkpoint_format "gptq" (v1) stores zero − 1, "gptq_v2" the true zero. We write v1 fields as
//     (zero − 1) mod 2^bits, confined to their own field: a zero of 0 becomes all ones in its field.
//     (AutoGPTQ's numpy packer ORs the unmasked uint32 of −1 = 0xffffffff, smearing ones over the
//     higher fields of that word; such words cannot be decoded by anyone.) Our reader adds 1 back
//     modulo 2^bits per field, so every zero 0…maxq round-trips. Kernels that add 1 without wrapping
//     (exllama, and GPTQModel's v1→v2 conversion, a plain integer add of 0x…1111 with carries) read a
//     stored all-ones field as 2^bits: v1 cannot represent zero 0 for them; gptq_v2 can.
//   scales  fp16 [n_groups, out];  g_idx int32 [in] (the group of each input row).
// AWQ GEMM (AutoAWQ WQLinear_GEMM, 4 bits only):
//   qweight int32 [in, out/8]: word (i, k) holds the codes of input i and outputs 8k…8k+7, the code of
//     output 8k + kAwqOrder[j] in nibble j (bits 4j…4j+3); kAwqOrder = {0, 2, 4, 6, 1, 3, 5, 7}.
//   qzeros  int32 [in/G, out/8] with the same order, true zeros (no −1);  scales fp16 [in/G, out].
//   Groups are contiguous: no g_idx, so act-order layouts cannot be stored as AWQ.
#pragma once

#include "quant/group_quant.h"

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

namespace quantllm {

enum class GptqCheckpointFormat : uint8_t { kV1, kV2 };  // "gptq" (zero − 1), "gptq_v2" (true zero)

struct GptqPacked {
  int bits = 4;
  int64_t in = 0, out = 0, n_groups = 0;
  std::vector<int32_t> qweight;  // [in·bits/32, out]
  std::vector<int32_t> qzeros;   // [n_groups, out·bits/32]
  std::vector<uint16_t> scales;  // [n_groups, out] fp16 bits
  std::vector<int32_t> g_idx;    // [in]
};

// Throws Error naming `name` if in·bits or out·bits is not a multiple of 32, codes or zeros are out of
// range, a scale is not exactly representable in fp16 (the round trip could not be exact), or g_idx
// names a group that does not exist.
GptqPacked pack_gptq(const GroupQuantized& q, GptqCheckpointFormat format, std::string_view name);
// Inverse of pack_gptq; `group_size` is the configured one (−1 allowed), recorded in the result.
// Checks every size against the others and g_idx against the number of groups.
GroupQuantized unpack_gptq(const GptqPacked& p, GptqCheckpointFormat format, int group_size, std::string_view name);

inline constexpr std::array<int, 8> kAwqOrder = {0, 2, 4, 6, 1, 3, 5, 7};

struct AwqPacked {
  int64_t in = 0, out = 0, n_groups = 0;
  std::vector<int32_t> qweight;  // [in, out/8]
  std::vector<int32_t> qzeros;   // [n_groups, out/8]
  std::vector<uint16_t> scales;  // [n_groups, out] fp16 bits
};

// Throws Error naming `name` unless bits == 4, out % 8 == 0, the groups are contiguous
// (g_idx[c] == c / (in / n_groups)) and the scales are fp16-exact.
AwqPacked pack_awq_gemm(const GroupQuantized& q, std::string_view name);
GroupQuantized unpack_awq_gemm(const AwqPacked& p, int group_size, std::string_view name);

// What every packer checks first: consistent sizes, codes and zeros in [0, 2^bits − 1], g_idx in range,
// bits in 2..8 (Error naming `name`).
void check_unpacked(const GroupQuantized& q, std::string_view name);
// The scales as fp16 bits; Error naming `name` unless every one is exactly an fp16 value.
std::vector<uint16_t> scales_to_f16(const Tensor& scales, std::string_view name);

}  // namespace quantllm
