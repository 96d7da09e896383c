// The IQ codebooks' search structure (iq_lattice.h): level codes, grid points, the neighbour lists, and the
// pieces every lattice quantizer shares (the least-squares sums, the sign split).
#include "quant/ggml/internal.h"  // first: its pragmas must precede every inline function
#include "quant/ggml/iq_lattice.h"

#include "core/error.h"
#include "quant/ggml/iq_grids.h"

#include <algorithm>
#include <cfloat>

namespace quantllm::ggml::detail {

namespace {

// levels 0..max_level are what the quantizers produce (IQ1/IQ2 clamp to 2, IQ3 to 7); codes with a
// higher level get no neighbours.
Lattice build(std::span<const uint16_t> index, int dim, int bits, int max_level, int nwant) {
  Lattice l;
  l.size = int(index.size());
  l.dim = dim;
  l.bits = bits;
  const uint32_t ncodes = 1u << (dim * bits), mask = (1u << bits) - 1;
  l.pos.resize(size_t(l.size) * size_t(dim));
  l.point_of.assign(ncodes, -1);
  for (int k = 0; k < l.size; ++k) {
    for (int i = 0; i < dim; ++i) l.pos[size_t(k * dim + i)] = int8_t(2 * ((index[size_t(k)] >> (bits * i)) & mask) + 1);
    l.point_of[index[size_t(k)]] = k;
  }
  l.first.assign(ncodes + 1, 0);
  const int max_d2 = dim * 4 * int(mask) * int(mask);  // positions differ by at most 2·mask
  std::vector<int> d2(size_t(l.size)), count(size_t(max_d2) + 1);
  for (uint32_t c = 0; c < ncodes; ++c) {
    l.first[c] = uint32_t(l.nb.size());
    if (l.point_of[c] >= 0) continue;
    bool valid = true;
    for (int i = 0; i < dim; ++i) valid = valid && int((c >> (bits * i)) & mask) <= max_level;
    if (!valid) continue;
    std::fill(count.begin(), count.end(), 0);
    for (int j = 0; j < l.size; ++j) {
      int s = 0;
      for (int i = 0; i < dim; ++i) {
        const int d = l.pos[size_t(j * dim + i)] - int(2 * ((c >> (bits * i)) & mask) + 1);
        s += d * d;
      }
      d2[size_t(j)] = s;
      ++count[size_t(s)];
    }
    // The nwant smallest distances present, each with its points in index order: the (distance,
    // index) order of a full sort.
    int have = 0;
    for (int d = 0; d <= max_d2 && have < nwant; ++d) {
      if (count[size_t(d)] == 0) continue;
      ++have;
      for (int j = 0; j < l.size; ++j)
        if (d2[size_t(j)] == d) l.nb.push_back(uint16_t(j));
    }
  }
  l.first[ncodes] = uint32_t(l.nb.size());
  return l;
}

}  // namespace

int Lattice::best_neighbour(uint32_t code, const float* xval, const float* weight, float scale, int8_t* L) const {
  float best = FLT_MAX;
  int best_k = -1;
  for (uint16_t k : neighbours(code)) {
    const int8_t* p = pos.data() + size_t(k) * size_t(dim);
    float d2 = 0;
    for (int i = 0; i < dim; ++i) {
      const float diff = scale * float(p[i]) - xval[i];
      d2 += weight[i] * diff * diff;
    }
    if (d2 < best) {
      best = d2;
      best_k = k;
    }
  }
  QL_ASSERT(best_k >= 0, "IQ lattice: no neighbour of code {} beats FLT_MAX (NaN input?)", code);
  const int8_t* p = pos.data() + size_t(best_k) * size_t(dim);
  for (int i = 0; i < dim; ++i) L[i] = int8_t((p[i] - 1) / 2);
  return best_k;
}

void fit_sums(const int8_t* L, const float* xval, const float* w, int n, float& sumqx, float& sumq2) {
  sumqx = 0;
  sumq2 = 0;
  for (int i = 0; i < n; ++i) {
    const float q = float(2 * L[i] + 1);
    sumqx += w[i] * xval[i] * q;
    sumq2 += w[i] * q * q;
  }
}

const Lattice& lattice(GgmlType type) {
  switch (type) {
    case GgmlType::IQ2_XXS: {
      static const Lattice l = build(kIq2xxsIndex, 8, 2, 2, 2);
      return l;
    }
    case GgmlType::IQ2_XS: {
      static const Lattice l = build(kIq2xsIndex, 8, 2, 2, 2);
      return l;
    }
    case GgmlType::IQ2_S: {
      static const Lattice l = build(kIq2sIndex, 8, 2, 2, 1);
      return l;
    }
    case GgmlType::IQ1_S:
    case GgmlType::IQ1_M: {
      static const Lattice l = build(kIq1sIndex, 8, 2, 2, 3);
      return l;
    }
    case GgmlType::IQ3_XXS: {
      static const Lattice l = build(kIq3xxsIndex, 4, 3, 7, 2);
      return l;
    }
    case GgmlType::IQ3_S: {
      static const Lattice l = build(kIq3sIndex, 4, 3, 7, 3);
      return l;
    }
    default:
      QL_ASSERT(false, "{} has no IQ lattice", type_name(type));
  }
  return lattice(GgmlType::IQ2_XXS);  // not reached
}

void split_signs(const float* x, const float* w, int octets, bool even, float* xval, uint8_t* signs) {
  for (int k = 0; k < octets; ++k) {
    const float* xk = x + 8 * k;
    const float* wk = w + 8 * k;
    float* vk = xval + 8 * k;
    int negatives = 0;
    uint8_t s = 0;
    for (int i = 0; i < 8; ++i) {
      if (xk[i] >= 0) {
        vk[i] = xk[i];
      } else {
        vk[i] = -xk[i];
        ++negatives;
        s = uint8_t(s | (1 << i));
      }
    }
    if (even && negatives % 2 != 0) {
      int imin = 0;
      float min = wk[0] * xk[0] * xk[0];
      for (int i = 1; i < 8; ++i) {
        const float v = wk[i] * xk[i] * xk[i];
        if (v < min) {
          min = v;
          imin = i;
        }
      }
      vk[imin] = -vk[imin];
      s = uint8_t(s ^ (1 << imin));
    }
    signs[k] = even ? uint8_t(s & 127) : s;
  }
}

}  // namespace quantllm::ggml::detail
