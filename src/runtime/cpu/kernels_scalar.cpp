// The portable kernels: the reference every SIMD kernel is tested against (its rows of the kernel
// tables keyed by type id, kernels.h; the type facts themselves are quant/ggml/types.h's one table).
//
// A packed row is decoded into the form of kernels.h (w_i = α·u_i − β per 16 weights), then the dot
// product is taken per activation block of 32: exact int32 sums Σ u·q over each 16, scaled by α and
// the block's d, and the offsets Σ β·dsum16 subtracted at the end. The SIMD kernels compute the same
// integers; only the order of the fp32 operations differs, which the kernel tests' bound covers.
// The low-bit types are decoded by kernels_lowbit.cpp (shared by all levels) and multiplied by the
// decoded-row tile here.
#include "runtime/cpu/kernels.h"
#include "runtime/cpu/kernels_lowbit.h"

#include "core/dtype.h"
#include "core/error.h"
#include "quant/ggml/blocks.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace quantllm::cpu {

using namespace quantllm::ggml;

namespace {

// clang-format off
// clang-format on

inline float h2f(uint16_t h) { return f16_to_f32(h); }

// The pieces of an activation block that share one weight scale α (α is per 16 codes).
constexpr int kSeg = kActBlock < 16 ? kActBlock : 16;

void quantize_act_scalar(const float* x, int64_t n, int8_t* q, float* d, float* dsum16, float* dexp) {
  for (int64_t b = 0; b < n / kActBlock; ++b) {
    const float* xb = x + b * kActBlock;
    float amax = 0;
    for (int i = 0; i < kActBlock; ++i) amax = std::max(amax, std::fabs(xb[i]));
    const float id = amax > 0 ? 127.0f / amax : 0.0f;
    d[b] = amax / 127.0f;
    for (int i = 0; i < kActBlock; ++i) q[b * kActBlock + i] = int8_t(std::nearbyint(xb[i] * id));  // |x·id| <= 127·(1 + 2⁻²³)
    for (int l = 0; l < kActBlock / 4; ++l) dexp[b * (kActBlock / 4) + l] = d[b];
  }
  // dsum16[h] = Σ_{i∈h} d·q, per activation block inside the 16 (each an exact integer sum times d).
  constexpr int kSeg = kActBlock < 16 ? kActBlock : 16;
  for (int64_t h = 0; h < n / 16; ++h) {
    float s = 0;
    for (int64_t i0 = 16 * h; i0 < 16 * h + 16; i0 += kSeg) {
      int sum = 0;
      for (int64_t i = i0; i < i0 + kSeg; ++i) sum += q[i];
      s += d[i0 / kActBlock] * float(sum);
    }
    dsum16[h] = s;
  }
}

// ---------------------------------------------------------------- float formats

template <typename Load>
void dot_float(const uint8_t* w, const ActRow* act, int na, const RowParams& p, float* out, Load load) {
  for (int a = 0; a < na; ++a) {
    float acc = 0;
    for (int64_t i = 0; i < p.n; ++i) acc += load(w, i) * act[a].x[i];
    out[a] = acc;
  }
}

void dot_f32(const uint8_t* w, const ActRow* act, int na, const RowParams& p, float* out) {
  dot_float(w, act, na, p, out, [](const uint8_t* w, int64_t i) {
    float v;
    std::memcpy(&v, w + 4 * i, 4);
    return v;
  });
}
void dot_f16(const uint8_t* w, const ActRow* act, int na, const RowParams& p, float* out) {
  dot_float(w, act, na, p, out, [](const uint8_t* w, int64_t i) {
    uint16_t h;
    std::memcpy(&h, w + 2 * i, 2);
    return f16_to_f32(h);
  });
}
void dot_bf16(const uint8_t* w, const ActRow* act, int na, const RowParams& p, float* out) {
  dot_float(w, act, na, p, out, [](const uint8_t* w, int64_t i) {
    uint16_t h;
    std::memcpy(&h, w + 2 * i, 2);
    return bf16_to_f32(h);
  });
}

// ---------------------------------------------------------------- integer formats

// A row in the form w_i = alpha[i/16]·u[i] − beta[i/16].
struct Decoded {
  std::vector<uint8_t> u;
  std::vector<float> alpha, beta;
};

void decode_q8_0(const uint8_t* w, int64_t n, Decoded& r) {
  const auto* blk = reinterpret_cast<const BlockQ8_0*>(w);
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float d = h2f(blk[b].d);
    for (int i = 0; i < kQK; ++i) r.u[size_t(b * kQK + i)] = uint8_t(blk[b].qs[i] + 128);
    for (int h = 0; h < 2; ++h) r.alpha[size_t(2 * b + h)] = d, r.beta[size_t(2 * b + h)] = 128.0f * d;
  }
}

void decode_q4_0(const uint8_t* w, int64_t n, Decoded& r) {
  const auto* blk = reinterpret_cast<const BlockQ4_0*>(w);
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float d = h2f(blk[b].d);
    for (int j = 0; j < 16; ++j) {
      r.u[size_t(b * kQK + j)] = blk[b].qs[j] & 15;
      r.u[size_t(b * kQK + j + 16)] = blk[b].qs[j] >> 4;
    }
    for (int h = 0; h < 2; ++h) r.alpha[size_t(2 * b + h)] = d, r.beta[size_t(2 * b + h)] = 8.0f * d;
  }
}

template <bool kFive>
void decode_q45_k(const uint8_t* w, int64_t n, Decoded& r) {
  using Block = std::conditional_t<kFive, BlockQ5_K, BlockQ4_K>;
  const auto* blocks = reinterpret_cast<const Block*>(w);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const Block& blk = blocks[b];
    const float d = h2f(blk.d), dmin = h2f(blk.dmin);
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      get_scale_min_k4(j, blk.scales, sc, m);
      const int c = j / 2;  // 64-weight chunk: 32 qs bytes, low nibbles = group 2c, high = 2c + 1
      for (int l = 0; l < 32; ++l) {
        int q = (j % 2 == 0) ? (blk.qs[32 * c + l] & 15) : (blk.qs[32 * c + l] >> 4);
        if constexpr (kFive) q |= ((blk.qh[l] >> j) & 1) << 4;
        r.u[size_t(b * kQK_K + 32 * j + l)] = uint8_t(q);
      }
      for (int h = 0; h < 2; ++h) {
        r.alpha[size_t(b * 16 + 2 * j + h)] = d * float(sc);
        r.beta[size_t(b * 16 + 2 * j + h)] = dmin * float(m);
      }
    }
  }
}

void decode_q6_k(const uint8_t* w, int64_t n, Decoded& r) {
  const auto* blocks = reinterpret_cast<const BlockQ6_K*>(w);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const BlockQ6_K& blk = blocks[b];
    uint8_t* u = r.u.data() + b * kQK_K;
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = blk.ql + 64 * h;
      const uint8_t* qh = blk.qh + 32 * h;
      for (int l = 0; l < 32; ++l) {
        u[128 * h + l] = uint8_t((ql[l] & 15) | ((qh[l] & 3) << 4));
        u[128 * h + l + 32] = uint8_t((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4));
        u[128 * h + l + 64] = uint8_t((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
        u[128 * h + l + 96] = uint8_t((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
      }
    }
    const float d = h2f(blk.d);
    for (int g = 0; g < 16; ++g) {
      r.alpha[size_t(b * 16 + g)] = d * float(blk.scales[g]);
      r.beta[size_t(b * 16 + g)] = 32.0f * r.alpha[size_t(b * 16 + g)];
    }
  }
}

void decode_gq4(const uint8_t* w, int64_t n, int64_t gs, Decoded& r) {
  const uint8_t* groups = w + n / 2;
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t byte = w[(i / 64) * 32 + (i % 32)];
    r.u[size_t(i)] = (i % 64) < 32 ? (byte & 15) : (byte >> 4);
  }
  for (int64_t h = 0; h < n / 16; ++h) {
    const int64_t g = h * 16 / gs;
    uint16_t sh;
    std::memcpy(&sh, groups + 4 * g, 2);
    r.alpha[size_t(h)] = h2f(sh);
    r.beta[size_t(h)] = h2f(sh) * float(groups[4 * g + 2]);
  }
}

// 32 IQ4 weights (16 bytes of nibbles, as Q4_0) with scale a: u = level + 128, β = 128·a.
void decode_iq4_group(const uint8_t* qs, float a, uint8_t* u, float* alpha, float* beta) {
  for (int j = 0; j < 16; ++j) {
    u[j] = uint8_t(kIq4nlValues[qs[j] & 15] + 128);
    u[j + 16] = uint8_t(kIq4nlValues[qs[j] >> 4] + 128);
  }
  for (int h = 0; h < 2; ++h) alpha[h] = a, beta[h] = 128.0f * a;
}

void decode_iq4_nl(const uint8_t* w, int64_t n, Decoded& r) {
  const auto* blk = reinterpret_cast<const BlockIQ4_NL*>(w);
  for (int64_t b = 0; b < n / kQK; ++b)
    decode_iq4_group(blk[b].qs, h2f(blk[b].d), &r.u[size_t(b * kQK)], &r.alpha[size_t(2 * b)], &r.beta[size_t(2 * b)]);
}

void decode_iq4_xs(const uint8_t* w, int64_t n, Decoded& r) {
  const auto* blocks = reinterpret_cast<const BlockIQ4_XS*>(w);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    const BlockIQ4_XS& blk = blocks[b];
    const float d = h2f(blk.d);
    for (int g = 0; g < 8; ++g)
      decode_iq4_group(blk.qs + 16 * g, d * float(iq4_xs_scale(blk, g) - 32), &r.u[size_t(b * kQK_K + 32 * g)],
                       &r.alpha[size_t(b * 16 + 2 * g)], &r.beta[size_t(b * 16 + 2 * g)]);
  }
}

// Row w of format F decoded into this thread's buffer.
template <GgmlType F>
const Decoded& decode_format(const uint8_t* w, const RowParams& p) {
  const int64_t n = p.n;
  thread_local Decoded r;
  r.u.resize(size_t(n));
  r.alpha.resize(size_t(n / 16));
  r.beta.resize(size_t(n / 16));
  if constexpr (F == GgmlType::Q8_0) decode_q8_0(w, n, r);
  if constexpr (F == GgmlType::Q4_0) decode_q4_0(w, n, r);
  if constexpr (F == GgmlType::Q4_K) decode_q45_k<false>(w, n, r);
  if constexpr (F == GgmlType::Q5_K) decode_q45_k<true>(w, n, r);
  if constexpr (F == GgmlType::Q6_K) decode_q6_k(w, n, r);
  if constexpr (F == GgmlType::GQ4) decode_gq4(w, n, p.group_size, r);
  if constexpr (F == GgmlType::IQ4_NL) decode_iq4_nl(w, n, r);
  if constexpr (F == GgmlType::IQ4_XS) decode_iq4_xs(w, n, r);
  return r;
}

template <GgmlType F>
void dot_int(const uint8_t* w, const ActRow* act, int na, const RowParams& p, float* out) {
  const int64_t n = p.n;
  const Decoded& r = decode_format<F>(w, p);
  for (int a = 0; a < na; ++a) {
    float acc = 0;
    for (int64_t b = 0; b < n / kActBlock; ++b) {
      float s = 0;
      for (int64_t i0 = b * kActBlock; i0 < (b + 1) * kActBlock; i0 += kSeg) {  // pieces sharing one α
        int t = 0;
        for (int64_t i = i0; i < i0 + kSeg; ++i) t += int(r.u[size_t(i)]) * int(act[a].q[i]);
        s += r.alpha[size_t(i0 / 16)] * float(t);
      }
      acc += act[a].d[b] * s;
    }
    float off = 0;
    for (int64_t h = 0; h < n / 16; ++h) off += r.beta[size_t(h)] * act[a].dsum16[h];
    out[a] = acc - off;
  }
}

template <GgmlType F>
void decode_row(const uint8_t* w, const RowParams& p, const DecodedRow& out) {
  const int64_t n = p.n;
  const Decoded& r = decode_format<F>(w, p);
  std::copy(r.u.begin(), r.u.end(), out.u);
  for (int64_t j = 0; j < n / 4; ++j) out.alpha[j] = r.alpha[size_t(j / 4)];
  std::copy(r.beta.begin(), r.beta.end(), out.beta);
}

// The decoded form against activation rows, per activation block as dot_int does.
void gemm_tile(const DecodedRow* w, int nr, const ActRow* act, int na, int64_t n, float* out, int64_t ldo) {
  for (int r = 0; r < nr; ++r)
    for (int a = 0; a < na; ++a) {
      float acc = 0;
      for (int64_t b = 0; b < n / kActBlock; ++b) {
        float s = 0;
        for (int64_t i0 = b * kActBlock; i0 < (b + 1) * kActBlock; i0 += kSeg) {
          int t = 0;
          for (int64_t i = i0; i < i0 + kSeg; ++i) t += int(w[r].u[i]) * int(act[a].q[i]);
          s += w[r].alpha[i0 / 4] * float(t);
        }
        acc += act[a].d[b] * s;
      }
      float off = 0;
      for (int64_t h = 0; h < n / 16; ++h) off += w[r].beta[h] * act[a].dsum16[h];
      out[a * ldo + r] = acc - off;
    }
}

// The low-bit types (kernels_lowbit.h): the portable decoder, then the tile above with one row.
template <DecodeFn kDecode>
void dot_lowbit(const uint8_t* w, const ActRow* act, int na, const RowParams& p, float* out) {
  dot_decoded(kDecode, gemm_tile, w, act, na, p, out);
}

const Kernels kScalar = {
    Isa::Scalar,
    {dot_f32, dot_f16, dot_bf16, dot_int<GgmlType::Q8_0>, dot_int<GgmlType::Q4_0>, dot_int<GgmlType::Q4_K>,
     dot_int<GgmlType::Q5_K>, dot_int<GgmlType::Q6_K>, dot_int<GgmlType::GQ4>, dot_int<GgmlType::IQ4_NL>,
     dot_int<GgmlType::IQ4_XS>, dot_lowbit<decode_iq2_xxs>, dot_lowbit<decode_iq2_xs>, dot_lowbit<decode_iq2_s>,
     dot_lowbit<decode_iq3_xxs>, dot_lowbit<decode_iq3_s>, dot_lowbit<decode_iq1_s>, dot_lowbit<decode_iq1_m>,
     dot_lowbit<decode_tq1_0>, dot_lowbit<decode_tq2_0>, dot_lowbit<decode_mxfp4>},
    {},  // no gemv: dot row by row
    quantize_act_scalar,
    {nullptr, nullptr, nullptr, decode_row<GgmlType::Q8_0>, decode_row<GgmlType::Q4_0>, decode_row<GgmlType::Q4_K>,
     decode_row<GgmlType::Q5_K>, decode_row<GgmlType::Q6_K>, decode_row<GgmlType::GQ4>, decode_row<GgmlType::IQ4_NL>,
     decode_row<GgmlType::IQ4_XS>, decode_iq2_xxs, decode_iq2_xs, decode_iq2_s, decode_iq3_xxs, decode_iq3_s,
     decode_iq1_s, decode_iq1_m, decode_tq1_0, decode_tq2_0, decode_mxfp4},
    {nullptr, nullptr, nullptr, gemm_tile, gemm_tile, gemm_tile, gemm_tile, gemm_tile, gemm_tile, gemm_tile, gemm_tile,
     gemm_tile, gemm_tile, gemm_tile, gemm_tile, gemm_tile, gemm_tile, gemm_tile, gemm_tile, gemm_tile, gemm_tile},
    {},
    nullptr,
    softmax_scalar,
    silu_mul_scalar,
};

}  // namespace

void softmax_scalar(float* row, int64_t lo, int64_t hi, int64_t n) {
  QL_ASSERT(0 <= lo && lo < hi && hi <= n);
  float mx = -INFINITY;
  for (int64_t p = lo; p < hi; ++p) mx = std::max(mx, row[p]);
  double sum = 0;
  for (int64_t p = lo; p < hi; ++p) sum += (row[p] = std::exp(row[p] - mx));
  const float inv = float(1.0 / sum);
  for (int64_t p = 0; p < n; ++p) row[p] = (p >= lo && p < hi) ? row[p] * inv : 0.0f;
}

void silu_mul_scalar(float* up, const float* gate, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    up[i] *= g / (1.0f + std::exp(-g));
  }
}

size_t packed_row_bytes(GgmlType f, int64_t n, int group_size) {
  const ggml::QuantTraits& t = ggml::traits(f);
  QL_ASSERT(n % t.block_size == 0, "{} row of {} weights", t.name, n);
  size_t bytes = size_t(n / t.block_size) * size_t(t.type_size);
  if (f == GgmlType::GQ4) {
    QL_ASSERT(group_size > 0 && n % group_size == 0);
    bytes += size_t(n / group_size) * 4;
  }
  return bytes;
}

const Kernels& kernels_scalar() { return kScalar; }

const Kernels& kernels_for(Isa isa) {
  QL_ASSERT(int(isa) <= int(detected_isa()), "{} kernels on a CPU with {}", isa_name(isa), isa_name(detected_isa()));
  switch (isa) {
    case Isa::Avx512: return kernels_avx512();
    case Isa::Avx2: return kernels_avx2();
    case Isa::Scalar: break;
  }
  return kScalar;
}

const Kernels& kernels() { return kernels_for(active_isa()); }

}  // namespace quantllm::cpu
