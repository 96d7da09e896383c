// Group-wise parameter finding (GPTQ quant.py and AutoAWQ rules), RTN and dequantization.
#include "quant/group_quant.h"

#include "core/dtype.h"
#include "core/threads.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace quantllm {

void validate_quant_params(const QuantParams& p, int64_t in, std::string_view name) {
  if (p.bits < 2 || p.bits > 8) fail("tensor '{}': {} bits requested; group quantization supports 2 to 8", name, p.bits);
  if (p.group_size == -1) return;
  if (p.group_size <= 0 || in % p.group_size != 0)
    fail("tensor '{}': group size {} does not divide the input size {} (use -1 or a divisor)", name, p.group_size, in);
}

int64_t effective_group_size(const QuantParams& p, int64_t in) { return p.group_size == -1 ? in : p.group_size; }
int64_t group_count(const QuantParams& p, int64_t in) { return p.group_size == -1 ? 1 : in / p.group_size; }

float finalize_scale(float scale) {
  float h = f16_to_f32(f32_to_f16(scale));
  // A range below 2^-25·maxq would store a zero scale (every weight of the group reads back as 0 and
  // a kBeforeCodes division by zero); the smallest fp16 subnormal keeps it positive.
  if (h == 0.0f) h = std::ldexp(1.0f, -24);
  return h;
}

namespace {

// Quantize x with (scale, zero) and return Σ |deq − x|^norm (MSE search objective), summed in double.
double shrink_error(std::span<const float> x, const GroupParams& g, int maxq, float norm) {
  double err = 0.0;
  for (float v : x) {
    const float d = dequantize_value(quantize_value(v, g, maxq), g) - v;
    err += double(std::pow(std::fabs(d), norm));
  }
  return err;
}

GroupParams params_from_range(float xmin, float xmax, const QuantParams& p, int maxq) {
  GroupParams g;
  if (p.rule == RangeRule::kGptq) {
    g.scale = (xmax - xmin) / float(maxq);
    g.zero = p.sym ? (maxq + 1) / 2 : int32_t(std::nearbyint(-xmin / g.scale));
  } else if (!p.sym) {  // AutoAWQ zero_point=True
    g.scale = std::max(xmax - xmin, 1e-5f) / float(maxq);
    g.zero = int32_t(std::clamp(-std::nearbyint(xmin / g.scale), 0.0f, float(maxq)));
  } else {  // AutoAWQ zero_point=False: signed codes, stored offset by 2^(bits-1)
    g.scale = std::max(xmax, 1e-5f) / float((maxq + 1) / 2 - 1);
    g.zero = (maxq + 1) / 2;
  }
  if (p.scale_rounding == ScaleRounding::kBeforeCodes) g.scale = finalize_scale(g.scale);
  return g;
}

}  // namespace

GroupParams find_group_params(std::span<const float> x, const QuantParams& p) {
  QL_ASSERT(!x.empty());
  const int maxq = max_code(p.bits);
  float xmin, xmax;
  const auto [lo, hi] = std::minmax_element(x.begin(), x.end());
  if (p.rule == RangeRule::kGptq) {
    xmin = std::min(*lo, 0.0f);
    xmax = std::max(*hi, 0.0f);
    if (p.sym) {
      xmax = std::max(std::fabs(xmin), xmax);
      if (xmin < 0.0f) xmin = -xmax;
    }
    if (xmin == 0.0f && xmax == 0.0f) {
      xmin = -1.0f;
      xmax = 1.0f;
    }
  } else {
    xmin = *lo;
    xmax = *hi;
    if (p.sym) xmax = std::max(std::fabs(xmin), std::fabs(xmax));
  }
  GroupParams best = params_from_range(xmin, xmax, p, maxq);
  if (!p.mse) return best;

  // quant.py: for i in range(int(maxshrink * grid)): p = 1 − i/grid; a candidate replaces the best
  // only when strictly better. The symmetric zero stays (maxq+1)/2.
  constexpr int kGrid = 100;
  constexpr int kSteps = 80;  // int(0.8 · 100)
  constexpr float kNorm = 2.4f;
  double best_err = std::numeric_limits<double>::infinity();
  for (int i = 0; i < kSteps; ++i) {
    const float shrink = float(1.0 - double(i) / kGrid);
    const GroupParams cand = params_from_range(shrink * xmin, shrink * xmax, p, maxq);
    const double err = shrink_error(x, cand, maxq, kNorm);
    if (err < best_err) {
      best_err = err;
      best = cand;
    }
  }
  return best;
}

Tensor GroupQuantized::dequantize() const {
  QL_ASSERT(int64_t(qweight.size()) == out * in && int64_t(g_idx.size()) == in);
  Tensor w({out, in});
  parallel_for(out, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* dst = w.row(r);
      const uint8_t* q = qweight.data() + r * in;
      for (int64_t c = 0; c < in; ++c) dst[c] = dequantize_value(q[c], params(g_idx[size_t(c)], r));
    }
  }, 16);
  return w;
}

GroupQuantized quantize_rtn(const Tensor& w, const QuantParams& p, std::string_view name) {
  if (w.ndim() != 2) fail("tensor '{}': expected a 2-D weight, got shape {}", name, shape_str(w.shape));
  const int64_t out = w.dim(0), in = w.dim(1);
  validate_quant_params(p, in, name);
  check_finite(w.data, name);
  const int64_t gs = effective_group_size(p, in), ng = group_count(p, in);
  const int maxq = max_code(p.bits);

  GroupQuantized r;
  r.bits = p.bits;
  r.group_size = p.group_size;
  r.out = out;
  r.in = in;
  r.qweight.resize(size_t(out * in));
  r.scales = Tensor({ng, out});
  r.zeros.resize(size_t(ng * out));
  r.g_idx.resize(size_t(in));
  for (int64_t c = 0; c < in; ++c) r.g_idx[size_t(c)] = int32_t(c / gs);

  parallel_for(out, [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      const float* x = w.row(row);
      for (int64_t g = 0; g < ng; ++g) {
        const GroupParams gp = find_group_params({x + g * gs, size_t(gs)}, p);
        for (int64_t c = g * gs; c < (g + 1) * gs; ++c) r.qweight[size_t(row * in + c)] = uint8_t(quantize_value(x[c], gp, maxq));
        r.scales.data[size_t(g * out + row)] = finalize_scale(gp.scale);
        r.zeros[size_t(g * out + row)] = gp.zero;
      }
    }
  }, 8);
  for (float s : r.scales.data)
    if (!std::isfinite(s)) fail("tensor '{}': a group's scale {} overflows fp16 (weights too large to store)", name, s);
  return r;
}

}  // namespace quantllm
