// --target-bpw: per-tensor types from measured rounding error per byte (see gguf_target.h).
#include "formats/gguf_target.h"

#include "core/error.h"
#include "core/threads.h"
#include "quant/ggml/gptq_grid.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <queue>

namespace quantllm {

using ggml::GgmlType;

namespace {

// One candidate of one tensor: its bytes and estimated error.
struct Option {
  GgmlType type;
  double bytes, err;
};

// Σ_rows Σ_j im_j (x − x̂)² of `rows` rows of n weights quantized to `type` (im null: unit importance).
double rounding_error(GgmlType type, const float* x, int64_t rows, int64_t n, const float* im, const float* quant_im) {
  std::vector<uint8_t> q(ggml::row_size(type, n) * size_t(rows));
  ggml::quantize_rows(type, x, q.data(), rows, n, quant_im);
  std::vector<float> y(size_t(rows * n));
  ggml::dequantize_rows(type, q.data(), y.data(), rows, n);
  double e = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j) {
      const double d = double(x[r * n + j]) - double(y[size_t(r * n + j)]);
      e += (im ? double(im[j]) : 1.0) * d * d;
    }
  return e;
}

// Every `step`-th row of an [nrows, n] matrix, at most kSampleRows of them, and the factor to the whole.
std::vector<float> sample_rows(const Tensor& t, int64_t n, int64_t max_rows, double& scale) {
  const int64_t nrows = t.numel() / n, s = std::min(nrows, std::max<int64_t>(1, max_rows));
  std::vector<float> out(size_t(s * n));
  for (int64_t k = 0; k < s; ++k) std::copy_n(t.ptr() + (k * nrows / s) * n, n, out.begin() + k * n);
  scale = double(nrows) / double(s);
  return out;
}

bool is_fixed(const PlannedTensor& p, bool probed) {
  return !ggml::traits(p.type).is_quantized || (!probed && p.gguf_name == "output.weight") || p.note.starts_with("--");
}

// The lower convex hull of a tensor's options (ascending bytes): the steps a greedy fill takes in order.
std::vector<Option> hull(std::vector<Option> o) {
  std::sort(o.begin(), o.end(), [](const Option& a, const Option& b) { return a.bytes < b.bytes; });
  std::vector<Option> h;
  for (const Option& c : o) {
    if (!h.empty() && c.err >= h.back().err) continue;  // more bytes for no less error
    if (!h.empty() && c.bytes == h.back().bytes) h.pop_back();
    // drop the last point while it lies on or above the segment from the one before it to c
    while (h.size() >= 2) {
      const Option &a = h[h.size() - 2], &b = h.back();
      const double s_ab = (a.err - b.err) / (b.bytes - a.bytes), s_ac = (a.err - c.err) / (c.bytes - a.bytes);
      if (s_ac >= s_ab) h.pop_back();
      else break;
    }
    h.push_back(c);
  }
  return h;
}

}  // namespace

std::vector<GgmlType> target_candidates(int64_t n, const TargetOptions& opt) {
  std::vector<GgmlType> all;
  if (opt.imatrix && !opt.grid_types_only)
    all = {GgmlType::IQ2_XXS, GgmlType::IQ2_XS, GgmlType::IQ2_S, GgmlType::IQ3_XXS};
  for (GgmlType t : {GgmlType::Q2_K, GgmlType::IQ3_S, GgmlType::Q3_K, GgmlType::IQ4_XS, GgmlType::Q4_K, GgmlType::Q5_K,
                     GgmlType::Q6_K, GgmlType::Q8_0, GgmlType::IQ4_NL, GgmlType::Q4_0, GgmlType::Q5_0})
    all.push_back(t);
  std::vector<GgmlType> out;
  for (GgmlType t : all) {
    const auto& tr = ggml::traits(t);
    if (n % tr.block_size != 0) continue;
    if (opt.grid_types_only && !ggml::gptq_grid_supports(t)) continue;
    // the 32-blocks only where no 256-block type fits (llama.cpp's fallbacks)
    if (tr.block_size == 32 && t != GgmlType::Q8_0 && n % 256 == 0) continue;
    out.push_back(t);
  }
  std::sort(out.begin(), out.end(), [](GgmlType a, GgmlType b) {
    const auto &x = ggml::traits(a), &y = ggml::traits(b);
    return x.type_size * y.block_size < y.type_size * x.block_size;
  });
  return out;
}

double assign_target_types(const ModelConfig& c, const WeightSource& w, std::vector<PlannedTensor>& plan,
                           const TargetOptions& opt) {
  int64_t params = 0;
  double fixed = 0;
  std::vector<size_t> free_idx;
  for (size_t i = 0; i < plan.size(); ++i) {
    PlannedTensor& p = plan[i];
    params += shape_numel(p.shape);
    if (!opt.probe && p.gguf_name == "output.weight" && ggml::traits(p.type).is_quantized && !p.note.starts_with("--")) {
      p.type = opt.bpw < 3.2 ? GgmlType::Q5_K : GgmlType::Q6_K;  // llama.cpp's head rule
      if (p.ne[0] % 256 != 0) p.type = GgmlType::Q8_0;
    }
    if (is_fixed(p, bool(opt.probe))) {
      p.bytes = ggml::row_size(p.type, p.ne[0]) * size_t(shape_numel(p.shape) / p.ne[0]);
      fixed += double(p.bytes);
    } else {
      free_idx.push_back(i);
    }
  }
  const double budget = opt.bpw * double(params) / 8.0 - fixed;

  // Measure every free tensor at every candidate type (tensors in parallel; each quantization serial).
  std::vector<std::vector<Option>> steps(free_idx.size());
  std::vector<std::string> errors(free_idx.size());
  parallel_for(int64_t(free_idx.size()), [&](int64_t lo, int64_t hi) {
    for (int64_t k = lo; k < hi; ++k) {
      const PlannedTensor& p = plan[free_idx[size_t(k)]];
      const int64_t n = p.ne[0];
      const bool embd = p.gguf_name == "token_embd.weight";
      std::vector<float> imat;
      if (opt.imatrix && opt.imatrix->has(p.gguf_name)) imat = opt.imatrix->values(p.gguf_name);
      const int64_t n_mat = p.stack.empty() ? 1 : int64_t(p.stack.size());
      // each matrix's share of the calibration tokens: 1 for dense tensors; an expert's routed count
      // times the experts a token takes over all routed counts (the fraction of tokens that reach it)
      std::vector<double> share(size_t(n_mat), 1.0);
      if (n_mat > 1) {
        const double top_k = double(std::max<int64_t>(1, c.n_experts_used));
        const ImatrixEntry* e = nullptr;
        if (opt.imatrix && opt.imatrix->has(p.gguf_name)) e = &opt.imatrix->entries.at(p.gguf_name);
        double total = 0;
        if (e)
          for (int64_t cnt : e->counts) total += double(cnt);
        for (int64_t m = 0; m < n_mat; ++m)
          share[size_t(m)] = total > 0 ? double(e->counts[size_t(m)]) * top_k / total : top_k / double(n_mat);
      }
      const std::vector<GgmlType> cand = target_candidates(n, opt);
      std::vector<Option> opts;
      for (GgmlType t : cand) opts.push_back({t, double(ggml::row_size(t, n)) * double(shape_numel(p.shape) / n), 0.0});
      for (int64_t m = 0; m < n_mat; ++m) {
        const Tensor t = w.load(p.stack.empty() ? p.hf_name : p.stack[size_t(m)]);
        double scale = 1;
        const std::vector<float> x = sample_rows(t, n, std::max<int64_t>(1, kSampleRows / n_mat), scale);
        const int64_t rows = int64_t(x.size()) / n;
        const float* im = imat.empty() ? nullptr : imat.data() + m * n;
        for (Option& o : opts) {
          if (ggml::requires_imatrix(o.type) && !im) {
            o.err = INFINITY;
            continue;
          }
          o.err += share[size_t(m)] * scale * rounding_error(o.type, x.data(), rows, n, im, im);
        }
      }
      if (embd && !opt.probe)
        for (Option& o : opts) o.err /= double(c.vocab);
      std::vector<Option> finite;
      for (const Option& o : opts)
        if (std::isfinite(o.err)) finite.push_back(o);
      if (finite.empty()) errors[size_t(k)] = p.gguf_name;
      steps[size_t(k)] = hull(std::move(finite));
    }
  }, 1);
  for (const auto& e : errors)
    if (!e.empty()) fail("--target-bpw: no type fits tensor {} (row length not a multiple of 32?)", e);

  // The gains: one probe a tensor (sequential; each runs the whole model on its threads).
  if (opt.probe) {
    for (size_t k = 0; k < free_idx.size(); ++k) {
      auto& s = steps[k];
      size_t at_probe = 0;  // Q3_K where it is a step, else the step nearest the middle
      for (size_t i = 0; i < s.size(); ++i)
        if (s[i].type == GgmlType::Q3_K) at_probe = i + 1;
      at_probe = at_probe ? at_probe - 1 : s.size() / 2;
      const double kl = opt.probe(plan[free_idx[k]], s[at_probe].type);
      const double gain = s[at_probe].err > 0 ? std::max(kl, 0.0) / s[at_probe].err : 0.0;
      for (Option& o : s) o.err *= gain;
    }
  }

  // Greedy fill: cheapest everywhere, then the steps with the largest error decrease per byte.
  std::vector<size_t> at(free_idx.size(), 0);
  double used = 0;
  for (const auto& s : steps) used += s.front().bytes;
  if (used > budget)
    fail("--target-bpw {}: below what this model reaches with these types ({:.3f} bits a weight)", opt.bpw,
         8.0 * (used + fixed) / double(params));
  using Item = std::pair<double, size_t>;  // (slope of the next step, tensor)
  std::priority_queue<Item> heap;
  auto push = [&](size_t k) {
    const auto& s = steps[k];
    if (at[k] + 1 < s.size())
      heap.push({(s[at[k]].err - s[at[k] + 1].err) / (s[at[k] + 1].bytes - s[at[k]].bytes), k});
  };
  for (size_t k = 0; k < steps.size(); ++k) push(k);
  while (!heap.empty()) {
    const size_t k = heap.top().second;
    heap.pop();
    const double extra = steps[k][at[k] + 1].bytes - steps[k][at[k]].bytes;
    if (used + extra > budget) continue;  // this tensor stays; smaller steps elsewhere may still fit
    used += extra;
    ++at[k];
    push(k);
  }
  for (size_t k = 0; k < steps.size(); ++k) {
    PlannedTensor& p = plan[free_idx[k]];
    const Option& o = steps[k][at[k]];
    p.type = o.type;
    p.fallback = false;
    p.bytes = ggml::row_size(p.type, p.ne[0]) * size_t(shape_numel(p.shape) / p.ne[0]);
    p.note = opt.probe ? fmt::format("target: predicted KL {:.3g}", o.err) : fmt::format("target: error {:.4g}", o.err);
  }
  return 8.0 * (used + fixed) / double(params);
}

const GGUFMix& target_label(const std::vector<PlannedTensor>& plan) {
  std::map<GgmlType, size_t> bytes;
  for (const auto& p : plan)
    if (ggml::traits(p.type).is_quantized) bytes[p.type] += p.bytes;
  GgmlType top = GgmlType::Q4_K;
  size_t most = 0;
  for (const auto& [t, b] : bytes)
    if (b > most) most = b, top = t;
  const GGUFMix* label = nullptr;
  for (const auto& m : gguf_mixes())  // the first mix of that type, a medium one (Q3_K_M) if there is one
    if (m.default_type == top && (!label || m.name.ends_with("_M"))) label = &m;
  return label ? *label : find_gguf_mix("Q4_K_M");
}

}  // namespace quantllm
