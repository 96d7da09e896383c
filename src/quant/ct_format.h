// compressed-tensors' "pack-quantized" layout of integer weight groups (llm-compressor writes it, vLLM
// loads it as its main quantized format), and its exact inverse.
//
// For a linear layer W [out, in] quantized to `bits` (2–8) in groups along the input dimension:
//   weight_packed      int32 [out, ceil(in / pf)], pf = floor(32 / bits) codes per word: word k of row r
//                      holds the codes of columns k·pf … k·pf + pf − 1, column k·pf + i in bits
//                      [i·bits, (i+1)·bits), low bits first; a row's last word is padded with zero fields,
//                      and when bits does not divide 32 the top 32 − pf·bits bits of every word are zero.
//                      A field holds the signed code plus 2^(bits−1) (compressed-tensors quantizes to the
//                      signed range [−2^(bits−1), 2^(bits−1) − 1]): our unsigned code as it is.
//   weight_scale       [out, n_groups] (n_groups = 1 for strategy "channel"), a float type (we write fp16,
//                      exactly our scales; llm-compressor writes the model's dtype).
//   weight_zero_point  int32 [ceil(out / pf), n_groups], asymmetric only: the zero points (signed, plus
//                      2^(bits−1) in the field: our unsigned zero) packed the same way along the OUTPUT
//                      dimension. Symmetric layers store none: every zero is 2^(bits−1) in our terms.
//   weight_g_idx       int32 [in], optional: the group of each input column (actorder "group").
//   weight_shape       int64 [2] = {out, in}.
// W[r, c] = scale[r, g] · (code[r, c] − zero[r, g]) with g = g_idx[c] (c / group_size without g_idx).
#pragma once

#include "quant/group_quant.h"

#include <cstdint>
#include <string_view>
#include <vector>

namespace quantllm {

struct CtPacked {
  int bits = 4;
  bool symmetric = false;
  int64_t in = 0, out = 0, n_groups = 0;
  std::vector<int32_t> weight_packed;      // [out, ceil(in / pf)]
  std::vector<float> weight_scale;         // [out, n_groups] (written as fp16; read from any float type)
  std::vector<int32_t> weight_zero_point;  // [ceil(out / pf), n_groups]; empty when symmetric
  std::vector<int32_t> g_idx;              // [in], or empty when the groups are contiguous

  static int pack_factor(int bits) { return 32 / bits; }
  int64_t packed_cols() const { return (in + pack_factor(bits) - 1) / pack_factor(bits); }
  int64_t packed_zero_rows() const { return (out + pack_factor(bits) - 1) / pack_factor(bits); }
};

// True when every input column's group is its index ÷ the group size (no weight_g_idx needed).
bool contiguous_groups(const GroupQuantized& q);

// Throws Error naming `name` when bits is outside 2..8, a code or zero is out of range, a scale is not
// exactly an fp16 value, or `symmetric` is asked of a layer whose zeros are not all 2^(bits−1).
CtPacked pack_ct(const GroupQuantized& q, bool symmetric, std::string_view name);
// Inverse of pack_ct; group_size is the configured one (−1 per channel). Checks every size against the
// others, the padding fields (zero), g_idx against n_groups, and fails naming `name`.
GroupQuantized unpack_ct(const CtPacked& p, int group_size, std::string_view name);

}  // namespace quantllm
