// AWQ over a whole model (see awq.h): the scaling groups, folding, the block-by-block driver shared by
// full AWQ quantization and the scale-only pass that other quantizers compose with.
#include "pipeline/awq.h"

#include "calib/runner.h"
#include "pipeline/checkpoints.h"
#ifdef QUANTLLM_HAVE_CUDA
#include "pipeline/cuda/cuda_methods.h"
#endif
#include "core/dtype.h"
#include "core/error.h"
#include "core/threads.h"
#include "quant/awq_search.h"
#include "quant/blas_single_thread.h"

#include <cblas.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>

namespace quantllm {

std::vector<AwqScalingGroup> awq_scaling_groups(const BlockSpec& spec) {
  std::vector<AwqScalingGroup> groups;
  for (size_t p = 0; p < spec.points.size(); ++p) {
    const Point& pt = spec.points[p];
    if (pt.source == Point::Source::None) continue;
    AwqScalingGroup g;
    g.point = int(p);
    g.source = pt.source;
    g.source_slot = pt.source_slot;
    g.layers = spec.readers(int(p));
    g.sublayer = pt.sublayer;
    g.inspect_sublayer = !pt.is_mid;
    g.label = pt.label;
    QL_ASSERT(!g.layers.empty() && (g.inspect_sublayer || g.layers.size() == 1));
    groups.push_back(std::move(g));
  }
  return groups;
}

namespace {

float round_to(float v, DType t) {
  switch (t) {
    case DType::F16: return f16_to_f32(f32_to_f16(v));
    case DType::BF16: return bf16_to_f32(f32_to_bf16(v));
    default: return v;
  }
}

}  // namespace

std::vector<float> awq_fold_prev(const BlockSpec& spec, BlockWeights& w, const AwqScalingGroup& g,
                                  std::span<const float> s, DType norm_dtype) {
  QL_ASSERT(!g.layers.empty());
  const int64_t in = spec.linears[size_t(g.layers.front())].in;
  QL_ASSERT(int64_t(s.size()) == in, "fold: {} scales for {} input channels", s.size(), in);
  for (float v : s) QL_ASSERT(std::isfinite(v) && v > 0.0f, "fold: scale {} is not positive", v);
  std::vector<float> realized(s.begin(), s.end());  // [in]
  if (!g.folds_into_linear()) {
    NormWeights& n = w.norm[size_t(g.source_slot)];
    QL_ASSERT(n.w.numel() == in);
    for (int64_t j = 0; j < in; ++j) {
      float& nw = n.w.data[size_t(j)];
      const float folded = round_to(nw / s[size_t(j)], norm_dtype);
      // The scale the stored (rounded) weight actually applies; the columns take exactly that one.
      if (folded != 0.0f && nw != 0.0f) {
        const float r = nw / folded;
        if (std::isfinite(r) && r > 0.0f) realized[size_t(j)] = r;
      }
      nw = folded;
      if (!n.b.empty()) n.b.data[size_t(j)] = round_to(n.b.data[size_t(j)] / realized[size_t(j)], norm_dtype);
    }
  } else {
    LinearWeights& p = w.linear[size_t(g.source_slot)];
    QL_ASSERT(p.w.dim(0) == in, "fold: preceding linear has {} outputs for {} inputs", p.w.dim(0), in);
    const int64_t pin = p.w.dim(1);
    for (int64_t j = 0; j < in; ++j) {
      float* row = p.w.row(j);
      for (int64_t k = 0; k < pin; ++k) row[k] /= s[size_t(j)];
      if (!p.b.empty()) p.b.data[size_t(j)] = round_to(p.b.data[size_t(j)] / s[size_t(j)], norm_dtype);
    }
  }
  return realized;
}

std::vector<float> awq_fold_scales(const BlockSpec& spec, BlockWeights& w, const AwqScalingGroup& g,
                                   std::span<const float> s, DType norm_dtype) {
  const std::vector<float> realized = awq_fold_prev(spec, w, g, s, norm_dtype);
  const int64_t in = int64_t(realized.size());
  for (int l : g.layers) {
    Tensor& lw = w.linear[size_t(l)].w;  // [out, in]
    QL_ASSERT(lw.dim(1) == in);
    for (int64_t r = 0; r < lw.dim(0); ++r) {
      float* row = lw.row(r);
      for (int64_t j = 0; j < in; ++j) row[j] *= realized[size_t(j)];
    }
  }
  return realized;
}

namespace {

constexpr int kScaleGrid = 20;        // AutoAWQ n_grid
constexpr int kClipGrid = 20;         // AutoAWQ clip n_grid
constexpr double kClipMaxShrink = 0.5;
constexpr int64_t kClipTokens = 512;  // AutoAWQ n_sample_token

// What one pass over the calibration windows saw at the points of a block.
struct BlockInputs {
  std::vector<std::vector<double>> abs_sum;  // per point: Σ|x| per channel over all tokens
  std::vector<Tensor> sample;                 // per point: inputs of the first n_search windows: [n_search·T, in]
  int64_t tokens = 0;

  std::vector<float> mean(int point) const {  // x̄: [in]
    const auto& s = abs_sum[size_t(point)];
    std::vector<float> m(s.size());
    for (size_t j = 0; j < s.size(); ++j) m[j] = float(s[j] / double(tokens));
    return m;
  }
};

// Observer of one window: per-channel Σ|x| of that window, and its inputs when it is in the sample.
class WindowRecorder final : public PointObserver {
 public:
  WindowRecorder(std::vector<std::vector<double>>& sums, std::vector<Tensor>* sample, int64_t row0)
      : sums_(sums), sample_(sample), row0_(row0) {}
  bool observe(int point, Act x) override {
    const int64_t in = x.cols, rows = x.rows;
    auto& s = sums_[size_t(point)];
    s.assign(size_t(in), 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = x.row(r);
      for (int64_t j = 0; j < in; ++j) s[size_t(j)] += double(std::fabs(xr[j]));
    }
    if (sample_) {
      Tensor& dst = (*sample_)[size_t(point)];
      QL_ASSERT(dst.dim(1) == in);
      std::copy_n(x.p, rows * in, dst.row(row0_));
    }
    return point + 1 < int(sums_.size());  // the block's output is not needed
  }

 private:
  std::vector<std::vector<double>>& sums_;
  std::vector<Tensor>* sample_;
  int64_t row0_;
};

// Every window of hidden [n_win·T, hidden] through block `layer` with weights w (fp32), recording
// x̄ over all windows and the inputs of the first n_search windows. One window a task with
// single-threaded BLAS; the per-window sums are added in window order.
BlockInputs observe_block(const ModelConfig& c, const BlockWeights& w, int layer, const Tensor& hidden,
                          int64_t n_win, int64_t T, int64_t n_search) {
  const BlockSpec& spec = c.block(layer);
  const size_t n_points = spec.points.size();
  BlockInputs in;
  in.sample.resize(n_points);
  for (size_t k = 0; k < n_points; ++k) in.sample[k] = Tensor({n_search * T, spec.points[k].width});
  std::vector<std::vector<std::vector<double>>> per_window(static_cast<size_t>(n_win),
                                                           std::vector<std::vector<double>>(n_points));
  {
    SingleThreadedBlas single;
    parallel_for(n_win, [&](int64_t w0, int64_t w1) {
      for (int64_t win = w0; win < w1; ++win) {
        Tensor x({T, c.hidden});
        std::copy_n(hidden.row(win * T), T * c.hidden, x.ptr());
        WindowRecorder rec(per_window[size_t(win)], win < n_search ? &in.sample : nullptr, win * T);
        block_forward(c, w, layer, x, 1, T, &rec);
      }
    });
  }
  in.abs_sum.resize(n_points);
  for (size_t k = 0; k < n_points; ++k) {
    auto& total = in.abs_sum[k];
    total.assign(size_t(spec.points[k].width), 0.0);
    for (const auto& pw : per_window) {
      QL_ASSERT(pw[k].size() == total.size());
      for (size_t j = 0; j < total.size(); ++j) total[j] += pw[k][j];
    }
  }
  in.tokens = n_win * T;
  return in;
}

// hidden ← block `layer`(hidden) with weights w, window by window (deterministic as observe_block).
void advance_block(const ModelConfig& c, const BlockWeights& w, int layer, Tensor& hidden, int64_t n_win, int64_t T) {
  SingleThreadedBlas single;
  parallel_for(n_win, [&](int64_t w0, int64_t w1) {
    for (int64_t win = w0; win < w1; ++win) {
      Tensor x({T, c.hidden});
      std::copy_n(hidden.row(win * T), T * c.hidden, x.ptr());
      block_forward(c, w, layer, x, 1, T);
      std::copy_n(x.ptr(), T * c.hidden, hidden.row(win * T));
    }
  });
}

using WindowFn = std::function<Tensor(const Tensor& xw)>;  // one window's inputs [T, in] → outputs [T, out]

// fn on each window of x: [n·T, in] → [n·T, out]. Callers hold SingleThreadedBlas.
Tensor map_windows(const Tensor& x, int64_t T, const WindowFn& fn) {
  const int64_t n = x.dim(0) / T, in = x.dim(1);
  std::vector<Tensor> outs(static_cast<size_t>(n));
  parallel_for(n, [&](int64_t w0, int64_t w1) {
    for (int64_t win = w0; win < w1; ++win) {
      Tensor xw({T, in});
      std::copy_n(x.row(win * T), T * in, xw.ptr());
      outs[size_t(win)] = fn(xw);
    }
  });
  const int64_t out = outs[0].dim(1);
  Tensor y({n * T, out});
  for (int64_t win = 0; win < n; ++win) std::copy_n(outs[size_t(win)].ptr(), T * out, y.row(win * T));
  return y;
}

// Σ (fn(x) − ref)² over every element, or Σ fn(x)² when ref is null; per-window sums in double, added
// in window order. Callers hold SingleThreadedBlas.
double sum_sq_windows(const Tensor& x, int64_t T, const Tensor* ref, const WindowFn& fn) {
  const int64_t n = x.dim(0) / T, in = x.dim(1);
  std::vector<double> part(static_cast<size_t>(n), 0.0);
  parallel_for(n, [&](int64_t w0, int64_t w1) {
    for (int64_t win = w0; win < w1; ++win) {
      Tensor xw({T, in});
      std::copy_n(x.row(win * T), T * in, xw.ptr());
      const Tensor y = fn(xw);
      const float* r = ref ? ref->row(win * T) : nullptr;
      double e = 0.0;
      for (int64_t i = 0; i < y.numel(); ++i) {
        const double d = double(y.data[size_t(i)]) - (r ? double(r[i]) : 0.0);
        e += d * d;
      }
      part[size_t(win)] = e;
    }
  });
  double total = 0.0;
  for (double p : part) total += p;
  return total;
}

constexpr int64_t kRowBlock = 64;  // rows of H resp. D per task: fixed, so sums do not depend on threads

// H = XᵀX: [in, in] for x: [tokens, in]. Callers hold SingleThreadedBlas.
Tensor gram(const Tensor& x) {
  const int64_t n = x.dim(0), in = x.dim(1);
  Tensor h({in, in});
  parallel_for((in + kRowBlock - 1) / kRowBlock, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t r0 = b * kRowBlock, m = std::min(kRowBlock, in - r0);
      // H[r0:r0+m, :] = X[:, r0:r0+m]ᵀ · X
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(m), int(in), int(n), 1.0f, x.ptr() + r0, int(in),
                  x.ptr(), int(in), 0.0f, h.row(r0), int(in));
    }
  });
  return h;
}

// Σ_t ‖(q − w)·x_t‖² = tr(D H Dᵀ) with D = q − w: [out, in], H: [in, in]. Callers hold SingleThreadedBlas.
double quadratic_error(const Tensor& q, const Tensor& w, const Tensor& h) {
  const int64_t out = w.dim(0), in = w.dim(1);
  const int64_t nb = (out + kRowBlock - 1) / kRowBlock;
  std::vector<double> part(static_cast<size_t>(nb), 0.0);
  parallel_for(nb, [&](int64_t b0, int64_t b1) {
    std::vector<float> d, e;
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t r0 = b * kRowBlock, m = std::min(kRowBlock, out - r0);
      d.resize(size_t(m * in));
      e.resize(size_t(m * in));
      for (int64_t k = 0; k < m * in; ++k) d[size_t(k)] = q.data[size_t(r0 * in + k)] - w.data[size_t(r0 * in + k)];
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(m), int(in), int(in), 1.0f, d.data(), int(in),
                  h.ptr(), int(in), 0.0f, e.data(), int(in));
      double acc = 0.0;
      for (int64_t k = 0; k < m * in; ++k) acc += double(d[size_t(k)]) * double(e[size_t(k)]);
      part[size_t(b)] = acc;
    }
  });
  double total = 0.0;
  for (double p : part) total += p;
  return total;
}

// The output a scaling group's search inspects, for one window xw: [T, in of the group] → [T, hidden].
Tensor inspect(const ModelConfig& c, const BlockWeights& w, int layer, const AwqScalingGroup& g, const Tensor& xw,
               int64_t T) {
  if (g.inspect_sublayer) return sublayer_output(c, w, layer, g.sublayer, xw, 1, T);
  Tensor y;
  linear(xw, w.linear[size_t(g.layers.front())], y);
  return y;
}

enum class AwqMode { kQuantize, kScaleOnly };


// The block-by-block driver. kQuantize fills qm (layers, replaced norms/biases, stats); kScaleOnly
// fills `scaled` with every tensor folding changed. Both return through the out-parameters.
void run_awq(const Model& model, const GroupMethodOptions& opt, const CalibWindows& windows, AwqMode mode,
             QuantizedModel* qm, std::map<std::string, Tensor>* scaled, const BlockProgress& progress) {
  const ModelConfig& c = model.config;
  const WeightSource& src = *model.weights;
  QuantParams p = opt.quant;
  if (mode == AwqMode::kQuantize) p.rule = RangeRule::kAwq;  // AutoAWQ's pseudo_quantize_tensor ranges
  QuantParams ps = p;                                         // inside the searches: fp32 scales, plain ranges
  ps.scale_rounding = ScaleRounding::kAfterCodes;
  ps.mse = false;

  BlockRunner runner(model, windows, opt.chunk_tokens);  // embeds the windows; hidden() is block i's input
  const int64_t T = windows.seqlen, n_win = windows.n;
  const int64_t n_search = std::clamp<int64_t>(opt.awq_search_tokens / T, 1, n_win);
  const int n_blocks = int(c.n_layers);
  BlockCheckpoints ckpt(model, opt, mode == AwqMode::kQuantize ? "awq" : "awq-scale", &windows);

  for (int i = 0; i < n_blocks; ++i) {
    const auto t_block = std::chrono::steady_clock::now();
    BlockWeights w = load_block(c, src, i);
    if (i < ckpt.done()) {
      // Finished by an interrupted run: its folded tensors and quantized layers, run forward.
      BlockResult r = ckpt.load(i);
      const BlockWeights wq = restore_awq_block(c, i, r, w, p, qm, scaled);
      advance_block(c, wq, i, runner.hidden(), n_win, T);
      if (progress) progress(i + 1, n_blocks, fmt::format("block {}/{}: restored", i + 1, n_blocks));
      continue;
    }
    BlockResult saved;  // what this block produces, for the checkpoint
    check_block_finite(c, w, i);
    const BlockSpec& spec = c.block(i);
    BlockInputs in = observe_block(c, w, i, runner.hidden(), n_win, T, n_search);
    std::string detail = fmt::format("block {}/{}: awq", i + 1, n_blocks);

    // --- scale search and folding, group by group on the (already folded) block ---
    std::vector<bool> scaled_linear(spec.linears.size(), false);
    for (const AwqScalingGroup& g : awq_scaling_groups(spec)) {
      const std::string name = spec.prefix + g.label;  // "model.layers.3.attn.qkv"
      Tensor& xs = in.sample[size_t(g.point)];          // [n_search·T, in]
      std::vector<const Tensor*> ws;
      for (int l : g.layers) ws.push_back(&w.linear[size_t(l)].w);
      const std::vector<float> w_mean = awq_weight_mean(ws, p.group_size, name);
      const std::vector<float> x_mean = in.mean(g.point);
      AwqScaleResult best;
      {
        SingleThreadedBlas single;
        if (!g.inspect_sublayer && xs.dim(0) > xs.dim(1)) {
          // One linear inspected alone: its output error is the quadratic form tr(D H Dᵀ), D = Q − W,
          // H = XᵀX of the sample — the same number as running the sample, at out·in² instead of
          // tokens·out·in per candidate (cheaper when the sample has more tokens than inputs).
          const Tensor& lw = w.linear[size_t(g.layers.front())].w;
          const Tensor h = gram(xs);
          const double n_out = double(xs.dim(0)) * double(lw.dim(0));
          best = awq_search_scale(
              x_mean, w_mean,
              [&](std::span<const float> s) {
                return quadratic_error(awq_pseudo_quantize_scaled(lw, s, ps), lw, h) / n_out;
              },
              name, kScaleGrid);
        } else {
          const Tensor ref = map_windows(xs, T, [&](const Tensor& xw) { return inspect(c, w, i, g, xw, T); });
          BlockWeights cand = w;
          const double n_out = double(ref.numel());
          best = awq_search_scale(
              x_mean, w_mean,
              [&](std::span<const float> s) {
                for (int l : g.layers) cand.linear[size_t(l)].w = awq_pseudo_quantize_scaled(w.linear[size_t(l)].w, s, ps);
                return sum_sq_windows(xs, T, &ref, [&](const Tensor& xw) { return inspect(c, cand, i, g, xw, T); }) /
                       n_out;
              },
              name, kScaleGrid);
        }
      }
      const std::vector<std::string> prev = prev_op_tensors(spec, g);
      const DType dt = stored_dtype(src, g.folds_into_linear() ? prev.back() : prev.front());
      const std::vector<float> realized = awq_fold_scales(spec, w, g, best.scales, dt);
      // The group's inputs are x / s from now on (AutoAWQ's apply_scale on input_feat).
      const int64_t in_w = xs.dim(1);
      parallel_for(xs.dim(0), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          float* xr = xs.row(r);
          for (int64_t j = 0; j < in_w; ++j) xr[j] /= realized[size_t(j)];
        }
      }, 64);
      for (int l : g.layers) scaled_linear[size_t(l)] = true;
      if (g.folds_into_linear()) scaled_linear[size_t(g.source_slot)] = true;
      for (const auto& n : prev) {
        const bool is_weight = n.ends_with(".weight") && g.folds_into_linear();
        if (is_weight) continue;  // a linear's weight: recorded below with the linears
        const Tensor& t = block_tensor(spec, w, n);
        if (mode == AwqMode::kQuantize) qm->replaced[n] = t;
        else (*scaled)[n] = t;
        saved.tensors[n] = t;
      }
      detail += fmt::format(" {} a={:.2f}", g.label, best.ratio);
    }

    // --- clipping (not q/k, as AutoAWQ: their errors pass through the softmax) and quantization ---
    BlockWeights wq = w;  // the block as it will run: folded, quantized
    for (size_t l = 0; l < spec.linears.size(); ++l) {
      const LinearSlot& slot = spec.linears[l];
      const std::string name = spec.linear_tensor(int(l));
      const Tensor& lw = w.linear[l].w;
      if (mode == AwqMode::kScaleOnly) {
        wq.linear[l].w = quantize_rtn(lw, p, name + ".weight").dequantize();
        if (scaled_linear[l]) saved.tensors[name + ".weight"] = (*scaled)[name + ".weight"] = lw;
        continue;
      }
      const auto t0 = std::chrono::steady_clock::now();
      const Tensor& x = in.sample[size_t(slot.input)];
      Tensor clipped = lw;
      if (slot.role != Role::Q && slot.role != Role::K) {
        const Tensor max_val = awq_search_clip(clipped, x, ps, name + ".weight", kClipGrid, kClipMaxShrink, kClipTokens);
        awq_apply_clip(clipped, max_val);
      }
      GroupQuantized q = quantize_rtn(clipped, p, name + ".weight");
      wq.linear[l].w = q.dequantize();
      // tr((W−Q) H (W−Q)ᵀ) / tr(W H Wᵀ) with H = XᵀX over the search sample; W the folded fp32 weight.
      Tensor diff = lw;
      for (size_t k = 0; k < diff.data.size(); ++k) diff.data[k] -= wq.linear[l].w.data[k];
      double num, den;
      {
        SingleThreadedBlas single;
        const LinearWeights dl{diff, {}}, fl{lw, {}};
        num = sum_sq_windows(x, T, nullptr, [&](const Tensor& xw) { Tensor y; linear(xw, dl, y); return y; });
        den = sum_sq_windows(x, T, nullptr, [&](const Tensor& xw) { Tensor y; linear(xw, fl, y); return y; });
      }
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      qm->stats[name] = saved.stats[name] = LayerStats{.relative_error = den > 0 ? num / den : 0.0, .seconds = secs};
      if (ckpt.enabled()) saved.layers[name] = q;
      qm->layers[name] = std::move(q);
    }

    advance_block(c, wq, i, runner.hidden(), n_win, T);
    ckpt.save(i, saved);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_block).count();
    if (progress) progress(i + 1, n_blocks, fmt::format("{} ({:.1f}s)", detail, secs));
  }
}

// Serves replaced tensors over a base source.
class OverlayWeights final : public WeightSource {
 public:
  OverlayWeights(std::shared_ptr<const WeightSource> base, std::map<std::string, Tensor> replaced)
      : base_(std::move(base)), replaced_(std::move(replaced)) {
    for (const auto& [name, t] : replaced_) {
      if (!base_->has(name)) fail("AWQ overlay: tensor '{}' is not in the model", name);
      if (base_->shape(name) != t.shape)
        fail("AWQ overlay: tensor '{}' has shape {} in the model, {} replaced", name, shape_str(base_->shape(name)),
             shape_str(t.shape));
    }
  }
  bool has(const std::string& n) const override { return base_->has(n); }
  Shape shape(const std::string& n) const override { return base_->shape(n); }
  Tensor load(const std::string& n) const override {
    auto it = replaced_.find(n);
    return it != replaced_.end() ? it->second : base_->load(n);
  }
  std::vector<std::string> names() const override { return base_->names(); }
  std::string format(const std::string& n) const override { return base_->format(n); }
  size_t stored_bytes(const std::string& n) const override { return base_->stored_bytes(n); }

 private:
  std::shared_ptr<const WeightSource> base_;
  std::map<std::string, Tensor> replaced_;
};

}  // namespace

DType stored_dtype(const WeightSource& src, const std::string& name) {
  if (!src.has(name)) return DType::F32;
  return dtype_from_name(src.format(name)).value_or(DType::F32);
}

std::vector<std::string> prev_op_tensors(const BlockSpec& spec, const AwqScalingGroup& g) {
  std::vector<std::string> names;
  if (!g.folds_into_linear()) {
    const std::string n = spec.norm_tensor(g.source_slot);
    names.push_back(n + ".weight");
    if (spec.norms[size_t(g.source_slot)].kind == NormKind::LayerNorm) names.push_back(n + ".bias");
  } else {
    names.push_back(spec.linear_tensor(g.source_slot) + ".weight");
    if (spec.linears[size_t(g.source_slot)].bias) names.push_back(spec.linear_tensor(g.source_slot) + ".bias");
  }
  return names;
}


void validate_awq_options(const ModelConfig& c, const GroupMethodOptions& opt) {
  validate_layers(c, opt.quant);
  if (opt.awq_search_tokens < 1) fail("AWQ search sample of {} tokens: need at least 1", opt.awq_search_tokens);
}

BlockWeights restore_awq_block(const ModelConfig& c, int block, BlockResult& r, BlockWeights& w, const QuantParams& p,
                               QuantizedModel* qm, std::map<std::string, Tensor>* scaled) {
  QL_ASSERT((qm != nullptr) != (scaled != nullptr));
  const BlockSpec& spec = c.block(block);
  apply_block_tensors(spec, w, r.tensors);
  BlockWeights wq = w;
  for (size_t l = 0; l < spec.linears.size(); ++l) {
    const std::string name = spec.linear_tensor(int(l));
    if (scaled) {  // scale-only: the next block saw these weights rounded to the nearest grid point
      wq.linear[l].w = quantize_rtn(w.linear[l].w, p, name + ".weight").dequantize();
      continue;
    }
    auto it = r.layers.find(name);
    if (it == r.layers.end()) fail("--resume: block {} checkpoint lacks layer {}", block, name);
    wq.linear[l].w = it->second.dequantize();
    qm->layers[name] = std::move(it->second);
  }
  for (auto& [n, t] : r.tensors) (qm ? qm->replaced : *scaled)[n] = std::move(t);
  if (qm)
    for (auto& [n, st] : r.stats) qm->stats[n] = st;
  return wq;
}

QuantizedModel quantize_awq(const Model& model, const GroupMethodOptions& opt, const CalibWindows& windows,
                            const BlockProgress& progress) {
  validate_awq_options(model.config, opt);
  if (opt.quant.mse) fail("--mse does not apply to --method awq (AWQ searches each group's clipping range itself)");
  if (opt.act_order) fail("--act-order is a GPTQ option; --method awq quantizes groups of contiguous columns");
  if (opt.awq_scale) fail("--awq-scale composes AWQ scaling with --method gptq; --method awq scales already");
  QuantizedModel qm;
  qm.base = &model;
  qm.method = QuantMethod::AWQ;
  qm.params = opt.quant;
  qm.params.rule = RangeRule::kAwq;
  qm.act_order = false;
  qm.static_groups = false;
  qm.true_sequential = true;
  if (opt.device == ComputeDevice::CUDA) {
#ifdef QUANTLLM_HAVE_CUDA
    run_awq_cuda(model, opt, windows, false, &qm, nullptr, progress);
    return qm;
#else
    fail("--device cuda: this build has no CUDA backend (configure with -DQUANTLLM_CUDA=ON)");
#endif
  }
  run_awq(model, opt, windows, AwqMode::kQuantize, &qm, nullptr, progress);
  return qm;
}

QuantizedModel quantize_awq(const Model& model, const GroupMethodOptions& opt, const BlockProgress& progress) {
  validate_awq_options(model.config, opt);
  const CalibWindows windows = calibration_windows(model, opt.calib);
  return quantize_awq(model, opt, windows, progress);
}

std::map<std::string, Tensor> awq_scale_weights(const Model& model, const GroupMethodOptions& opt,
                                                const BlockProgress& progress) {
  validate_awq_options(model.config, opt);
  const CalibWindows windows = calibration_windows(model, opt.calib);
  std::map<std::string, Tensor> scaled;
  if (opt.device == ComputeDevice::CUDA) {
#ifdef QUANTLLM_HAVE_CUDA
    run_awq_cuda(model, opt, windows, true, nullptr, &scaled, progress);
    return scaled;
#else
    fail("--device cuda: this build has no CUDA backend (configure with -DQUANTLLM_CUDA=ON)");
#endif
  }
  run_awq(model, opt, windows, AwqMode::kScaleOnly, nullptr, &scaled, progress);
  return scaled;
}

std::unique_ptr<WeightSource> overlay_weights(std::shared_ptr<const WeightSource> base,
                                              std::map<std::string, Tensor> replaced) {
  return std::make_unique<OverlayWeights>(std::move(base), std::move(replaced));
}

}  // namespace quantllm
