// The CPU calibration backend (methods/backend.h): the windows' hidden states and the current block in
// host memory, blocks run through the block interpreter over the CPU ops.
//
// Two ways to run the windows, both deterministic for any thread count:
//   chunks (GPTQ, the importance matrix): chunk_tokens of windows at a time through the threaded ops
//     (calib/runner.h), the collectors fed chunk by chunk in order;
//   per window (AWQ, whose searches re-run small samples many times): every window one task with
//     single-threaded BLAS, windows in parallel, per-window sums added in window order.
#include "calib/runner.h"
#include "core/error.h"
#include "core/threads.h"
#include "methods/backend.h"
#include "methods/checkpoints.h"
#include "quant/blas_single_thread.h"
#include "runtime/forward.h"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>

namespace quantllm {

namespace {

// --- collectors as observers of the block interpreter ---

// Accumulates the Hessian 2XᵀX/n of each requested point; stops the block after the last.
class HessianObserver final : public PointObserver {
 public:
  HessianObserver(const BlockSpec& spec, std::span<const int> points, std::map<int, HessianAccumulator>& acc,
                  bool all_experts)
      : acc_(acc), all_experts_(all_experts) {
    acc_.clear();
    for (int p : points) {
      if (!acc_.count(p)) acc_.emplace(p, HessianAccumulator(spec.points[size_t(p)].width));
      last_ = std::max(last_, p);
    }
  }
  bool observe(int point, Act x) override {
    auto it = acc_.find(point);
    if (it != acc_.end()) it->second.add_batch(x.p, x.rows, x.cols);
    return point < last_;
  }
  bool all_experts() const override { return all_experts_; }

 private:
  std::map<int, HessianAccumulator>& acc_;
  int last_ = -1;
  bool all_experts_;
};

// Σx² per channel of every point, in fixed chunk order.
class SquareSumObserver final : public PointObserver {
 public:
  explicit SquareSumObserver(std::vector<PointSums>& sums) : sums_(sums) {}
  bool observe(int point, Act x) override {
    PointSums& s = sums_[size_t(point)];
    s.sum.resize(size_t(x.cols), 0.0);
    for (int64_t r = 0; r < x.rows; ++r) {
      const float* xr = x.row(r);
      for (int64_t j = 0; j < x.cols; ++j) s.sum[size_t(j)] += double(xr[j]) * xr[j];
    }
    s.tokens += x.rows;
    return true;
  }

 private:
  std::vector<PointSums>& sums_;
};

// One window's Σ|x| per channel at every point, and its values when it is in the sample.
class WindowRecorder final : public PointObserver {
 public:
  WindowRecorder(std::vector<std::vector<double>>& sums, std::vector<Tensor>* sample, int64_t row0)
      : sums_(sums), sample_(sample), row0_(row0) {}
  bool observe(int point, Act x) override {
    auto& s = sums_[size_t(point)];
    s.assign(size_t(x.cols), 0.0);
    for (int64_t r = 0; r < x.rows; ++r) {
      const float* xr = x.row(r);
      for (int64_t j = 0; j < x.cols; ++j) s[size_t(j)] += double(std::fabs(xr[j]));
    }
    if (sample_) {
      Tensor& dst = (*sample_)[size_t(point)];
      QL_ASSERT(dst.dim(1) == x.cols);
      std::copy_n(x.p, x.numel(), dst.row(row0_));
    }
    return point + 1 < int(sums_.size());  // the block's output is not needed
  }

 private:
  std::vector<std::vector<double>>& sums_;
  std::vector<Tensor>* sample_;
  int64_t row0_;
};

// --- AWQ's window-parallel helpers ---

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

class CpuBackend final : public CalibrationBackend {
 public:
  CpuBackend(const LoadedModel& model, const CalibWindows& windows, const BackendOptions& o)
      : model_(model), c_(model.config), opt_(o), runner_(model, windows, o.chunk_tokens), T_(windows.seqlen),
        n_win_(windows.n) {}

  const ModelConfig& config() const override { return c_; }

  void load_block(int layer, bool check_finite) override {
    layer_ = layer;
    spec_ = &c_.block(layer);
    w_ = runner_.load(layer);
    if (check_finite) check_block_finite(c_, w_, layer);
    hessians_.clear();
    sample_.clear();
  }

  void set_tensors(const std::map<std::string, Tensor>& t) override { apply_block_tensors(*spec_, w_, t); }
  Tensor tensor(const std::string& name) override { return block_tensor(*spec_, w_, name); }

  void advance() override {
    if (!opt_.per_window) {
      runner_.advance(layer_, w_);
      return;
    }
    // hidden ← block(hidden), window by window (deterministic as collect_abs_sums).
    Tensor& hidden = runner_.hidden();
    const int64_t T = T_, d = c_.hidden;
    SingleThreadedBlas single;
    parallel_for(n_win_, [&](int64_t w0, int64_t w1) {
      for (int64_t win = w0; win < w1; ++win) {
        Tensor x({T, d});
        std::copy_n(hidden.row(win * T), T * d, x.ptr());
        block_forward(c_, w_, layer_, x, 1, T);
        std::copy_n(x.ptr(), T * d, hidden.row(win * T));
      }
    });
  }

  void collect_hessians(std::span<const int> points, bool) override {
    // Every call runs the windows from the block's input: the inputs seen through the layers of this
    // block quantized so far.
    HessianObserver obs(*spec_, points, hessians_, opt_.moe_all_experts);
    runner_.observe(layer_, w_, obs);
  }

  int64_t hessian_tokens(int point) override { return hessians_.at(point).n_samples(); }

  std::vector<PointSums> collect_square_sums() override {
    std::vector<PointSums> sums(spec_->points.size());
    SquareSumObserver obs(sums);
    runner_.observe(layer_, w_, obs);
    return sums;
  }

  std::vector<PointSums> collect_abs_sums(int64_t n_search) override {
    const size_t n_points = spec_->points.size();
    const int64_t T = T_, d = c_.hidden;
    sample_.assign(n_points, Tensor());
    for (size_t k = 0; k < n_points; ++k) sample_[k] = Tensor({n_search * T, spec_->points[k].width});
    std::vector<std::vector<std::vector<double>>> per_window(static_cast<size_t>(n_win_),
                                                             std::vector<std::vector<double>>(n_points));
    const Tensor& hidden = runner_.hidden();
    {
      SingleThreadedBlas single;
      parallel_for(n_win_, [&](int64_t w0, int64_t w1) {
        for (int64_t win = w0; win < w1; ++win) {
          Tensor x({T, d});
          std::copy_n(hidden.row(win * T), T * d, x.ptr());
          WindowRecorder rec(per_window[size_t(win)], win < n_search ? &sample_ : nullptr, win * T);
          block_forward(c_, w_, layer_, x, 1, T, &rec);
        }
      });
    }
    std::vector<PointSums> sums(n_points);
    for (size_t k = 0; k < n_points; ++k) {
      auto& total = sums[k].sum;
      total.assign(size_t(spec_->points[k].width), 0.0);
      for (const auto& pw : per_window) {
        QL_ASSERT(pw[k].size() == total.size());
        for (size_t j = 0; j < total.size(); ++j) total[j] += pw[k][j];
      }
      sums[k].tokens = n_win_ * T;
    }
    return sums;
  }

  std::vector<GptqLayerResult> gptq(int point, std::span<const int> slots, const GPTQOptions& g) override {
    // H once for every layer reading this point, and the accumulator released (each is in² × 8 bytes).
    auto it = hessians_.find(point);
    QL_ASSERT(it != hessians_.end(), "no Hessian collected for point {}", point);
    if (it->second.n_samples() == 0)
      fail("layer '{}': no calibration inputs were observed (empty Hessian)", spec_->linear_tensor(slots.front()));
    const int64_t in = it->second.in();
    const std::vector<double> h = it->second.hessian();
    hessians_.erase(it);
    std::vector<GptqLayerResult> out;
    for (int slot : slots) {
      const std::string name = spec_->linear_tensor(slot) + ".weight";
      Tensor& lw = w_.linear[size_t(slot)].w;
      GPTQResult r = gptq_quantize(lw, h, g, name);
      // The same objective for plain rounding, so the report shows what GPTQ gained per layer.
      const double rtn_err = relative_objective(lw, quantize_rtn(lw, g.quant, name).dequantize(), h);
      lw = r.q.dequantize();
      out.push_back({slot, std::move(r.q), r.stats, rtn_err, in});
    }
    return out;
  }

  std::vector<GPTQStats> gptq_onto(int point, std::span<const int> slots, const GPTQOptions& g,
                                   const std::function<GptqGrid&(int slot)>& grid_of) override {
    auto it = hessians_.find(point);
    QL_ASSERT(it != hessians_.end(), "no Hessian collected for point {}", point);
    if (it->second.n_samples() == 0)
      fail("layer '{}': no calibration inputs were observed (empty Hessian)", spec_->linear_tensor(slots.front()));
    const std::vector<double> h = it->second.hessian();
    hessians_.erase(it);
    std::vector<GPTQStats> out;
    for (int slot : slots) {
      Tensor& lw = w_.linear[size_t(slot)].w;
      GptqGrid& grid = grid_of(slot);
      GPTQStats st = gptq_quantize_grid(lw, h, g, grid, spec_->linear_tensor(slot) + ".weight");
      Tensor q = grid.result();
      st.objective = relative_objective(lw, q, h);
      lw = std::move(q);
      out.push_back(st);
    }
    return out;
  }

  GroupQuantized rtn(int slot, const QuantParams& p) override {
    Tensor& lw = w_.linear[size_t(slot)].w;
    GroupQuantized q = quantize_rtn(lw, p, spec_->linear_tensor(slot) + ".weight");
    lw = q.dequantize();
    return q;
  }

  std::vector<float> awq_weight_mean(const AwqScalingGroup& g, const QuantParams& p) override {
    std::vector<const Tensor*> ws;
    for (int l : g.layers)
      if (spec_->linears[size_t(l)].quantized) ws.push_back(&w_.linear[size_t(l)].w);
    return quantllm::awq_weight_mean(ws, p.group_size, spec_->prefix + g.label);
  }

  std::function<double(std::span<const float>)> awq_objective(const AwqScalingGroup& g, const QuantParams& ps) override {
    const Tensor& xs = sample_.at(size_t(g.point));  // [n_search·T, in]
    auto single = std::make_shared<SingleThreadedBlas>();  // for the whole search
    if (!g.inspect_sublayer && xs.dim(0) > xs.dim(1)) {
      // One linear inspected alone: its output error is the quadratic form tr(D H Dᵀ), D = Q − W,
      // H = XᵀX of the sample — the same number as running the sample, at out·in² instead of
      // tokens·out·in per candidate (cheaper when the sample has more tokens than inputs).
      const Tensor* lw = &w_.linear[size_t(g.layers.front())].w;
      auto h = std::make_shared<Tensor>(gram(xs));
      const double n_out = double(xs.dim(0)) * double(lw->dim(0));
      return [single, h, lw, ps, n_out](std::span<const float> s) {
        return quadratic_error(awq_pseudo_quantize_scaled(*lw, s, ps), *lw, *h) / n_out;
      };
    }
    auto inspect = [this, g](const BlockWeights& w, const Tensor& xw) {
      if (g.inspect_sublayer) return sublayer_output(c_, w, layer_, g.sublayer, xw, 1, T_);
      Tensor y;
      linear(xw, w.linear[size_t(g.layers.front())], y);
      return y;
    };
    auto ref = std::make_shared<Tensor>(map_windows(xs, T_, [&](const Tensor& xw) { return inspect(w_, xw); }));
    auto cand = std::make_shared<BlockWeights>(w_);
    const double n_out = double(ref->numel());
    return [this, single, ref, cand, inspect, g, ps, n_out, &xs](std::span<const float> s) {
      for (int l : g.layers)
        if (spec_->linears[size_t(l)].quantized)  // a MoE router keeps its weights: it is not quantized
          cand->linear[size_t(l)].w = awq_pseudo_quantize_scaled(w_.linear[size_t(l)].w, s, ps);
      return sum_sq_windows(xs, T_, ref.get(), [&](const Tensor& xw) { return inspect(*cand, xw); }) / n_out;
    };
  }

  std::vector<float> awq_fold(const AwqScalingGroup& g, std::span<const float> s, DType norm_dtype) override {
    const std::vector<float> realized = awq_fold_scales(*spec_, w_, g, s, norm_dtype);
    // The group's inputs are x / s from now on (AutoAWQ's apply_scale on input_feat): its point's sample,
    // and for a MoE also each expert's (its routed rows of that point).
    std::set<int> points = {g.point};
    for (int l : g.layers) points.insert(spec_->linears[size_t(l)].input);
    for (int p : points) {
      Tensor& xs = sample_.at(size_t(p));
      const int64_t in_w = xs.dim(1);
      QL_ASSERT(in_w == int64_t(realized.size()));
      parallel_for(xs.dim(0), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          float* xr = xs.row(r);
          for (int64_t j = 0; j < in_w; ++j) xr[j] /= realized[size_t(j)];
        }
      }, 64);
    }
    return realized;
  }

  AwqLayerResult awq_clip_quantize(int slot, bool clip, const QuantParams& p, const QuantParams& ps) override {
    const std::string name = spec_->linear_tensor(slot) + ".weight";
    Tensor& lw = w_.linear[size_t(slot)].w;
    const Tensor& x = sample_.at(size_t(spec_->linears[size_t(slot)].input));
    Tensor clipped = lw;
    if (clip) awq_apply_clip(clipped, awq_search_clip(clipped, x, ps, name));
    GroupQuantized q = quantize_rtn(clipped, p, name);
    Tensor wq = q.dequantize();
    // tr((W−Q) H (W−Q)ᵀ) / tr(W H Wᵀ) with H = XᵀX over the search sample; W the folded fp32 weight.
    Tensor diff = lw;
    for (size_t k = 0; k < diff.data.size(); ++k) diff.data[k] -= wq.data[k];
    double num, den;
    {
      SingleThreadedBlas single;
      num = sum_sq_windows(x, T_, nullptr, [&](const Tensor& xw) { Tensor y; linear(xw, diff, y); return y; });
      den = sum_sq_windows(x, T_, nullptr, [&](const Tensor& xw) { Tensor y; linear(xw, lw, y); return y; });
    }
    lw = std::move(wq);
    return {std::move(q), den > 0 ? num / den : 0.0};
  }

 private:
  const LoadedModel& model_;
  const ModelConfig& c_;
  BackendOptions opt_;
  BlockRunner runner_;  // the windows' hidden states at the current block's input
  int64_t T_, n_win_;
  int layer_ = -1;
  const BlockSpec* spec_ = nullptr;
  BlockWeights w_;
  std::map<int, HessianAccumulator> hessians_;
  std::vector<Tensor> sample_;  // AWQ: per point, the values of the first windows [n_search·T, width]
};

}  // namespace

std::unique_ptr<CalibrationBackend> make_cpu_calibration_backend(const LoadedModel& model, const CalibWindows& windows,
                                                                 const BackendOptions& options) {
  return std::make_unique<CpuBackend>(model, windows, options);
}

}  // namespace quantllm
