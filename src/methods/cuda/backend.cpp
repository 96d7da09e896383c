// The CUDA calibration backend (see backend.h): the block's flow on the device, the collectors and GPTQ.
#include "methods/cuda/backend.h"

#include "methods/checkpoints.h"
#include "runtime/block.h"
#include "runtime/cuda/kernels.h"

#include <fmt/format.h>

#include <cstdio>

namespace quantllm {

namespace cuda {

namespace {

constexpr int64_t kMaxPartials = 4096;

// Calls fn(point, x) for every point run_block reaches.
class LambdaObserver final : public PointObserver {
 public:
  explicit LambdaObserver(std::function<bool(int, Act)> fn, bool all_experts = false)
      : fn_(std::move(fn)), all_experts_(all_experts) {}
  bool observe(int point, Act x) override { return fn_(point, x); }
  bool all_experts() const override { return all_experts_; }

 private:
  std::function<bool(int, Act)> fn_;
  bool all_experts_;
};

}  // namespace

CudaBackend::CudaBackend(const LoadedModel& model, const CalibWindows& windows, const BackendOptions& o)
    : model_(model),
      c_(model.config),
      opt_(o),
      ctx_(),
      math_(o.gpu_tf32 ? Math::TF32 : Math::FP32),
      hessian_math_(o.gpu_bf16 ? Math::BF16 : math_),
      T_(windows.seqlen),
      n_win_(windows.n),
      d_(model.config.hidden),
      cw_(0),
      plan_((reset_device_peak(), plan_memory(ctx_, model.config, windows.n, windows.seqlen, o, o.keep_mids))),
      clock_(ctx_),
      X_(ctx_, windows.n * windows.seqlen, model.config.hidden, plan_.on_device, plan_.chunk_windows * windows.seqlen,
         "calibration activations"),
      ops_(ctx_, model.config, windows.seqlen, o.gpu_bf16 ? Math::BF16 : math_),
      loader_(model, true) {
  loader_.prefetch(0);  // every driver starts at block 0: its weights are read (or generated) while embedding
  print_gpu_plan(ctx_, plan_, o);
  cw_ = plan_.chunk_windows;
  const int64_t crow = cw_ * T_;
  embed_on_device(ctx_, model, windows, X_, crow);
  h_ = DeviceArray<float>(crow * d_, "block input");
  int64_t widest = d_;  // a mid, or a MoE sub-layer's output
  for (int64_t i = 0; i < c_.n_layers; ++i) widest = std::max(widest, c_.block(i).max_point_width());
  mid_ = DeviceArray<float>(crow * widest, "block mid");
  clock_.mark("embed + upload");
}

void CudaBackend::load_block(int layer, bool check_finite) {
  layer_ = layer;
  spec_ = &c_.block(layer);
  w_ = loader_.take(layer, check_finite);
  clock_.mark("load weights");
  try {
    dw_ = DeviceBlock{};  // the previous block's matrices go back first
    dw_ = upload_block(ctx_, w_);
    ops_.bind(*spec_, dw_);
    ctx_.sync();
  } catch (...) {  // out of device memory: the page-locked host block is released all the same
    BlockPrefetcher::unpin(w_);
    throw;
  }
  BlockPrefetcher::unpin(w_);
  // From here the matrices live on the device; on the host only their row counts remain ([out, 0]:
  // awq_fold_prev checks them and folds the biases) with the norms and biases.
  for (auto& l : w_.linear)
    if (!l.w.empty()) l.w = Tensor(Shape{l.w.dim(0), 0});
  done_ = 0, pending_ = -1;
  A_.reset();
  hessians_.clear();
  clock_.mark("upload weights");
}

void CudaBackend::set_tensors(const std::map<std::string, Tensor>& tensors) {
  for (const auto& [name, t] : tensors) {
    const BlockSpec::TensorSlot r = spec_->tensor_slot(name);
    if (r.slot < 0) check_restored_tensor(*spec_, name, t.shape, {});
    // The expected shape: the host copy's, or the device matrix's for a linear weight (the host keeps [out, 0]).
    const Shape expected = r.is_norm ? (r.is_bias ? w_.norm[size_t(r.slot)].b : w_.norm[size_t(r.slot)].w).shape
                           : r.is_bias ? w_.linear[size_t(r.slot)].b.shape
                                       : Shape{dw_.linear[size_t(r.slot)].out, dw_.linear[size_t(r.slot)].in};
    check_restored_tensor(*spec_, name, t.shape, expected);
    if (r.is_norm) {
      (r.is_bias ? w_.norm[size_t(r.slot)].b : w_.norm[size_t(r.slot)].w) = t;
      upload_tensor(ctx_, t, r.is_bias ? dw_.norm[size_t(r.slot)].b : dw_.norm[size_t(r.slot)].w);
    } else if (r.is_bias) {
      w_.linear[size_t(r.slot)].b = t;
      upload_tensor(ctx_, t, dw_.linear[size_t(r.slot)].b);
    } else {
      DeviceLinear& dl = dw_.linear[size_t(r.slot)];
      QL_ASSERT(t.ndim() == 2 && t.dim(0) == dl.out && t.dim(1) == dl.in, "{}: shape {}", name, shape_str(t.shape));
      upload_tensor(ctx_, t, dl.w);
    }
  }
  ctx_.sync();
}

Tensor CudaBackend::tensor(const std::string& name) {
  const BlockSpec::TensorSlot r = spec_->tensor_slot(name);
  QL_ASSERT(r.slot >= 0, "no tensor named {} in block {}", name, layer_);
  if (r.is_norm) return r.is_bias ? w_.norm[size_t(r.slot)].b : w_.norm[size_t(r.slot)].w;
  if (r.is_bias) return w_.linear[size_t(r.slot)].b;
  const DeviceLinear& dl = dw_.linear[size_t(r.slot)];
  return Tensor({dl.out, dl.in}, to_host(ctx_, dl.w.data(), dl.out * dl.in));
}

void CudaBackend::forward_to(int upto, const std::function<void(float*, int64_t, int64_t, int64_t)>& fn) {
  if (done_ >= upto && !fn) return;
  for_chunks([&](int64_t r0, int64_t rows, int64_t ns) {
    float* x = X_.chunk(r0, rows);
    const Act xa{x, rows, d_};
    for (int s = done_; s < upto; ++s) {
      if (s == pending_ && A_) {  // its mid, kept by the mid-stage
        sublayer_residual(ops_, *spec_, s, xa, Act{A_->chunk(r0, rows), rows, A_->width()});
        continue;
      }
      const Sublayer& sl = spec_->sublayers[size_t(s)];
      const Act ha{h_.data(), rows, d_};
      sublayer_input(ops_, *spec_, s, xa, ha);
      if (sl.kind == SublayerKind::Moe) {  // the routed experts' sum, then the residual
        const Act ya{mid_.data(), rows, d_};
        sublayer_output(ops_, *spec_, s, ha, ya, step(ns));
        ops_.add(xa, ya);
        continue;
      }
      const Act ma{mid_.data(), rows, spec_->points[size_t(sl.mid)].width};
      sublayer_mix(ops_, *spec_, s, ha, ma, step(ns));
      sublayer_residual(ops_, *spec_, s, xa, ma);
    }
    if (done_ < upto) X_.commit(r0, rows);
    if (fn) fn(x, r0, rows, ns);
  });
  done_ = std::max(done_, upto);
  pending_ = -1;
  A_.reset();  // not needed again in this block: its memory goes to the Hessians of the larger inputs
}

void CudaBackend::advance() {
  forward_to(int(spec_->sublayers.size()), {});
  clock_.mark("forward");
}

void CudaBackend::observe(PointObserver& obs) {
  xs_.reserve(cw_ * T_ * d_, "block input copy");
  for_chunks([&](int64_t r0, int64_t rows, int64_t ns) {
    QL_CUDA(cudaMemcpyAsync(xs_.data(), X_.chunk(r0, rows), size_t(rows * d_) * sizeof(float), cudaMemcpyDeviceToDevice,
                            ctx_.stream()));
    run_block(ops_, *spec_, Act{xs_.data(), rows, d_}, step(ns), &obs);
  });
}

void CudaBackend::collect_hessians(std::span<const int> points, bool upstream_final) {
  for (int p : points) hessians_.erase(p), hessians_.emplace(p, DeviceHessian(ctx_, spec_->points[size_t(p)].width));
  // Adds each requested point's rows to its Hessian; stops the block after point `last`.
  auto hessian_observer = [this](const int& last) {
    return LambdaObserver(
        [this, &last](int point, Act x) {
          auto it = hessians_.find(point);
          if (it != hessians_.end() && x.rows > 0) it->second.add(ctx_, x.p, x.rows, hessian_math_, hessian_scratch_);
          return point < last;
        },
        opt_.moe_all_experts);
  };
  if (!upstream_final) {  // every point from the unquantized block
    const int last = *std::max_element(points.begin(), points.end());
    LambdaObserver obs = hessian_observer(last);
    observe(obs);
    clock_.mark("forward + Hessians");
    return;
  }
  std::vector<bool> handled(spec_->points.size(), false);
  for (int p : points) {
    const Point& pt = spec_->points[size_t(p)];
    const int s = pt.sublayer;
    QL_ASSERT(s >= done_, "true-sequential collection went back to sub-layer {} of block {}", s, layer_);
    if (handled[size_t(p)]) continue;
    if (spec_->sublayers[size_t(s)].kind == SublayerKind::Moe) {
      // Every requested point of this MoE sub-layer in one pass through it: each expert's rows observed.
      forward_to(s, {});
      int last = p;
      for (int q : points)
        if (spec_->points[size_t(q)].sublayer == s) handled[size_t(q)] = true, last = std::max(last, q);
      LambdaObserver obs = hessian_observer(last);
      for_chunks([&](int64_t r0, int64_t rows, int64_t ns) {
        sublayer_input(ops_, *spec_, s, Act{X_.chunk(r0, rows), rows, d_}, Act{h_.data(), rows, d_});
        sublayer_output(ops_, *spec_, s, Act{h_.data(), rows, d_}, Act{mid_.data(), rows, d_}, step(ns), &obs);
      });
      continue;
    }
    DeviceHessian& acc = hessians_.at(p);
    if (!pt.is_mid) {  // in-stage: the earlier sub-layers' residuals on the way
      forward_to(s, [&](float* x, int64_t, int64_t rows, int64_t) {
        sublayer_input(ops_, *spec_, s, Act{x, rows, d_}, Act{h_.data(), rows, d_});
        acc.add(ctx_, h_.data(), rows, hessian_math_, hessian_scratch_);
      });
      continue;
    }
    forward_to(s, {});  // X at s's input (a no-op after its in-stage)
    // mid-stage: an attention output is kept for the residual; a feed-forward mid is recomputed then.
    const Sublayer& sl = spec_->sublayers[size_t(s)];
    const int64_t mw = pt.width;
    if (sl.kind == SublayerKind::Attention) A_.emplace(ctx_, n_win_ * T_, mw, plan_.on_device, cw_ * T_, "attention outputs");
    for_chunks([&](int64_t r0, int64_t rows, int64_t ns) {
      sublayer_input(ops_, *spec_, s, Act{X_.chunk(r0, rows), rows, d_}, Act{h_.data(), rows, d_});
      float* m = A_ ? A_->chunk(r0, rows, false) : mid_.data();
      sublayer_mix(ops_, *spec_, s, Act{h_.data(), rows, d_}, Act{m, rows, mw}, step(ns));
      acc.add(ctx_, m, rows, hessian_math_, hessian_scratch_);
      if (A_) A_->commit(r0, rows);
    });
    pending_ = s;
  }
  clock_.mark("forward + Hessians");
}

std::vector<PointSums> CudaBackend::collect_square_sums() {
  const size_t n_points = spec_->points.size();
  std::vector<DeviceArray<double>> sums(n_points);
  std::vector<PointSums> out(n_points);
  for (size_t p = 0; p < n_points; ++p) {
    sums[p] = DeviceArray<double>(spec_->points[p].width, "importance sums");
    QL_CUDA(cudaMemsetAsync(sums[p].data(), 0, size_t(sums[p].size()) * sizeof(double), ctx_.stream()));
  }
  col_work_.reserve(k::abs_col_sum_work(cw_ * T_, spec_->max_point_width()), "statistics");
  LambdaObserver obs([&](int point, Act x) {
    k::sq_col_sum(x.p, x.rows, x.cols, sums[size_t(point)].data(), col_work_.data(), ctx_.stream());
    out[size_t(point)].tokens += x.rows;
    return true;
  });
  observe(obs);
  for (size_t p = 0; p < n_points; ++p) out[p].sum = to_host(ctx_, sums[p].data(), sums[p].size());
  clock_.mark("forward");
  return out;
}

std::vector<GptqLayerResult> CudaBackend::gptq(int point, std::span<const int> slots, const GPTQOptions& g) {
  clock_.mark("forward + Hessians");
  hessian_scratch_.release();  // every Hessian of the group is collected
  const PreparedHessian P = prepare_hessian(ctx_, hessians_.at(point), g, spec_->linear_tensor(slots.front()) + ".weight");
  hessians_.erase(point);
  clock_.mark("Cholesky");
  std::vector<GptqLayerResult> out;
  for (int slot : slots) {
    const std::string name = spec_->linear_tensor(slot) + ".weight";
    DeviceLinear& l = dw_.linear[size_t(slot)];
    DeviceArray<float> deq(l.out * l.in, "dequantized weights");
    DeviceGptqResult r = gptq_quantize_device(ctx_, l.w.data(), l.out, P, g, name, deq.data(), math_);
    l.w = std::move(deq);
    out.push_back({slot, std::move(r.q), r.stats, r.rtn_objective, P.in});
  }
  clock_.mark("GPTQ");
  return out;
}

std::vector<GPTQStats> CudaBackend::gptq_onto(int point, std::span<const int> slots, const GPTQOptions& g,
                                              const std::function<GptqGrid&(int slot)>& grid_of) {
  clock_.mark("forward + Hessians");
  hessian_scratch_.release();  // every Hessian of the group is collected
  DeviceHessian& acc = hessians_.at(point);
  const std::string first = spec_->linear_tensor(slots.front()) + ".weight";
  if (acc.rows() == 0) fail("layer '{}': no calibration inputs were observed (empty Hessian)", first);
  acc.release_scratch();
  acc.complete(ctx_);
  const int64_t in = acc.in();
  std::vector<double> h = to_host(ctx_, acc.sum(), in * in);
  for (double& v : h) v *= 2.0 / double(acc.rows());  // H = 2/n Σ xᵀx, as prepare_hessian
  hessians_.erase(point);
  clock_.mark("download");
  std::vector<GPTQStats> out;
  for (int slot : slots) {
    const std::string name = spec_->linear_tensor(slot) + ".weight";
    DeviceLinear& l = dw_.linear[size_t(slot)];
    Tensor w({l.out, l.in});
    ctx_.download(w.ptr(), l.w.data(), size_t(w.numel()) * sizeof(float));
    GptqGrid& grid = grid_of(slot);
    GPTQStats st = gptq_quantize_grid(w, h, g, grid, name);
    const Tensor q = grid.result();
    st.objective = relative_objective(w, q, h);
    ctx_.upload(l.w.data(), q.ptr(), size_t(q.numel()) * sizeof(float));
    ctx_.sync();
    out.push_back(st);
  }
  clock_.mark("GPTQ (host)");
  return out;
}

GroupQuantized CudaBackend::rtn(int slot, const QuantParams& p) {
  DeviceLinear& dl = dw_.linear[size_t(slot)];
  DeviceArray<float> deq(dl.out * dl.in, "dequantized weights");
  GroupQuantized q = rtn_quantize_device(ctx_, dl.w.data(), dl.out, dl.in, p, spec_->linear_tensor(slot) + ".weight",
                                         deq.data());
  dl.w = std::move(deq);
  return q;
}

double CudaBackend::sum_sq(const float* a, const float* b, int64_t n) {
  partials_.reserve(kMaxPartials, "partial sums");
  const int64_t np = k::sq_diff_partials(a, b, n, partials_.data(), kMaxPartials, ctx_.stream());
  double s = 0.0;
  for (double v : to_host(ctx_, partials_.data(), np)) s += v;  // in order: deterministic
  return s;
}

void CudaBackend::finish() {
  std::fprintf(stderr, "quantllm: GPU time: %s; peak GPU memory %.2f GiB\n", clock_.report().c_str(),
               double(device_peak_bytes()) / (1024.0 * 1024.0 * 1024.0));
  if (profiling()) std::fprintf(stderr, "quantllm: GPU profile: %s\n", profile_report().c_str());
}

}  // namespace cuda

std::unique_ptr<CalibrationBackend> make_cuda_calibration_backend(const LoadedModel& model, const CalibWindows& windows,
                                                                  const BackendOptions& options) {
  return std::make_unique<cuda::CudaBackend>(model, windows, options);
}

}  // namespace quantllm
