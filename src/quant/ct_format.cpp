// compressed-tensors pack-quantized packing (layout described in ct_format.h).
#include "quant/ct_format.h"

#include "core/dtype.h"
#include "core/error.h"
#include "quant/gptq_format.h"

#include <algorithm>
#include <cmath>

namespace quantllm {

bool contiguous_groups(const GroupQuantized& q) {
  const int64_t gs = q.in / std::max<int64_t>(q.n_groups(), 1);
  for (int64_t c = 0; c < q.in; ++c)
    if (q.g_idx[size_t(c)] != c / gs) return false;
  return q.in % std::max<int64_t>(q.n_groups(), 1) == 0;
}

CtPacked pack_ct(const GroupQuantized& q, bool symmetric, std::string_view name) {
  check_unpacked(q, name);
  CtPacked p;
  p.bits = q.bits, p.symmetric = symmetric, p.in = q.in, p.out = q.out, p.n_groups = q.n_groups();
  const int pf = CtPacked::pack_factor(q.bits), bits = q.bits;
  const int64_t cols = p.packed_cols(), G = p.n_groups;

  p.weight_packed.assign(size_t(q.out * cols), 0);
  for (int64_t r = 0; r < q.out; ++r) {
    const uint8_t* codes = q.qweight.data() + r * q.in;
    int32_t* words = p.weight_packed.data() + r * cols;
    for (int64_t c = 0; c < q.in; ++c)
      words[c / pf] = int32_t(uint32_t(words[c / pf]) | (uint32_t(codes[c]) << ((c % pf) * bits)));
  }

  // Scales and zeros: ours are [n_groups, out], the file's [out, n_groups].
  const std::vector<uint16_t> h = scales_to_f16(q.scales, name);
  p.weight_scale.resize(h.size());
  for (int64_t g = 0; g < G; ++g)
    for (int64_t r = 0; r < q.out; ++r) p.weight_scale[size_t(r * G + g)] = f16_to_f32(h[size_t(g * q.out + r)]);

  const int32_t mid = 1 << (bits - 1);
  if (symmetric) {
    for (size_t i = 0; i < q.zeros.size(); ++i)
      if (q.zeros[i] != mid)
        fail("tensor '{}': symmetric compressed-tensors has no zero points, but group {} of row {} has zero {} (not {})",
             name, int64_t(i) / q.out, int64_t(i) % q.out, q.zeros[i], mid);
  } else {
    p.weight_zero_point.assign(size_t(p.packed_zero_rows() * G), 0);
    for (int64_t r = 0; r < q.out; ++r)
      for (int64_t g = 0; g < G; ++g) {
        int32_t& w = p.weight_zero_point[size_t((r / pf) * G + g)];
        w = int32_t(uint32_t(w) | (uint32_t(q.zeros[size_t(g * q.out + r)]) << ((r % pf) * bits)));
      }
  }
  if (!contiguous_groups(q)) p.g_idx = q.g_idx;
  return p;
}

GroupQuantized unpack_ct(const CtPacked& p, int group_size, std::string_view name) {
  if (p.bits < 2 || p.bits > 8) fail("tensor '{}': {} bits (compressed-tensors packs 2 to 8)", name, p.bits);
  if (p.in < 1 || p.out < 1 || p.n_groups < 1)
    fail("tensor '{}': shape [{}, {}] with {} groups", name, p.out, p.in, p.n_groups);
  const int pf = CtPacked::pack_factor(p.bits), bits = p.bits;
  const uint32_t mask = (1u << bits) - 1;
  const int64_t cols = p.packed_cols(), G = p.n_groups;
  if (int64_t(p.weight_packed.size()) != p.out * cols)
    fail("tensor '{}': weight_packed has {} words, [{}, {}] expected for weight_shape [{}, {}] at {} bits", name,
         p.weight_packed.size(), p.out, cols, p.out, p.in, bits);
  if (int64_t(p.weight_scale.size()) != p.out * G)
    fail("tensor '{}': weight_scale has {} values, [{}, {}] expected", name, p.weight_scale.size(), p.out, G);
  if (!p.symmetric && int64_t(p.weight_zero_point.size()) != p.packed_zero_rows() * G)
    fail("tensor '{}': weight_zero_point has {} words, [{}, {}] expected", name, p.weight_zero_point.size(),
         p.packed_zero_rows(), G);
  if (!p.g_idx.empty() && int64_t(p.g_idx.size()) != p.in)
    fail("tensor '{}': weight_g_idx has {} entries for {} input columns", name, p.g_idx.size(), p.in);
  const int64_t gs = group_size > 0 ? group_size : p.in;
  if (p.g_idx.empty() && (p.in % gs != 0 || p.in / gs != G))
    fail("tensor '{}': {} groups of {} columns do not make {} input columns", name, G, gs, p.in);

  GroupQuantized q;
  q.bits = bits, q.group_size = group_size, q.out = p.out, q.in = p.in;
  q.qweight.resize(size_t(p.out * p.in));
  // Bits a word may use: pf fields, all of them in a row's full words, fewer in its last one.
  for (int64_t r = 0; r < p.out; ++r)
    for (int64_t k = 0; k < cols; ++k) {
      const uint32_t w = uint32_t(p.weight_packed[size_t(r * cols + k)]);
      const int64_t fields = std::min<int64_t>(pf, p.in - k * pf);
      const uint32_t used = fields * bits >= 32 ? ~0u : (1u << (fields * bits)) - 1;
      if (w & ~used)
        fail("tensor '{}': weight_packed word [{}, {}] = {:#010x} has bits set past its {} codes", name, r, k, w, fields);
      for (int64_t i = 0; i < fields; ++i) q.qweight[size_t(r * p.in + k * pf + i)] = uint8_t((w >> (i * bits)) & mask);
    }
  q.scales = Tensor({G, p.out});
  for (int64_t r = 0; r < p.out; ++r)
    for (int64_t g = 0; g < G; ++g) {
      const float s = p.weight_scale[size_t(r * G + g)];
      if (!std::isfinite(s)) fail("tensor '{}': weight_scale [{}, {}] is {}", name, r, g, s);
      q.scales.data[size_t(g * p.out + r)] = s;
    }
  q.zeros.assign(size_t(G * p.out), 1 << (bits - 1));
  if (!p.symmetric)
    for (int64_t r = 0; r < p.out; ++r)
      for (int64_t g = 0; g < G; ++g)
        q.zeros[size_t(g * p.out + r)] =
            int32_t((uint32_t(p.weight_zero_point[size_t((r / pf) * G + g)]) >> ((r % pf) * bits)) & mask);
  if (p.g_idx.empty()) {
    q.g_idx.resize(size_t(p.in));
    for (int64_t c = 0; c < p.in; ++c) q.g_idx[size_t(c)] = int32_t(c / gs);
  } else {
    q.g_idx = p.g_idx;
    for (int64_t c = 0; c < p.in; ++c)
      if (q.g_idx[size_t(c)] < 0 || q.g_idx[size_t(c)] >= G)
        fail("tensor '{}': weight_g_idx[{}] = {} but there are {} groups", name, c, q.g_idx[size_t(c)], G);
  }
  return q;
}

}  // namespace quantllm
