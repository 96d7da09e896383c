// AWQ's pieces of the CUDA calibration backend (see backend.h): the statistics pass with its search
// sample, w̄, the scale search's candidates evaluated on the device, the folding (the preceding op's norm
// and biases on the host, whose dtype rounding decides the realized scales — awq_groups.h
// awq_fold_prev — the matrices on the device), and the clipping search with the quantization. The
// choices are the CPU's up to summation order.
#include "methods/cuda/backend.h"

#include "runtime/block.h"
#include "runtime/cuda/awq.h"
#include "runtime/cuda/kernels.h"

namespace quantllm::cuda {

namespace {

// Calls fn(point, x) for every point run_block reaches.
class LambdaObserver final : public PointObserver {
 public:
  explicit LambdaObserver(std::function<bool(int, Act)> fn) : fn_(std::move(fn)) {}
  bool observe(int point, Act x) override { return fn_(point, x); }

 private:
  std::function<bool(int, Act)> fn_;
};

}  // namespace

std::vector<PointSums> CudaBackend::collect_abs_sums(int64_t n_search) {
  const size_t n_points = spec_->points.size();
  n_search_ = n_search;
  const int64_t ns_rows = n_search * T_;
  std::vector<DeviceArray<double>> abs_sum(n_points);
  sample_.resize(n_points);
  for (size_t p = 0; p < n_points; ++p) {
    const int64_t width = spec_->points[p].width;
    sample_[p].reserve(ns_rows * width, "AWQ search sample");
    abs_sum[p] = DeviceArray<double>(width, "AWQ statistics");
    QL_CUDA(cudaMemsetAsync(abs_sum[p].data(), 0, size_t(width) * sizeof(double), ctx_.stream()));
  }
  col_work_.reserve(k::abs_col_sum_work(cw_ * T_, spec_->max_point_width()), "statistics");
  int64_t s0 = 0;  // the chunk's first window
  LambdaObserver obs([&](int point, Act x) {
    const int64_t in = x.cols, ns = x.rows / T_;
    k::abs_col_sum(x.p, x.rows, in, abs_sum[size_t(point)].data(), col_work_.data(), ctx_.stream());
    if (s0 < n_search) {
      const int64_t keep = std::min(n_search - s0, ns) * T_;
      QL_CUDA(cudaMemcpyAsync(sample_[size_t(point)].data() + s0 * T_ * in, x.p, size_t(keep * in) * sizeof(float),
                              cudaMemcpyDeviceToDevice, ctx_.stream()));
    }
    if (point + 1 == int(n_points)) s0 += ns;  // the block's output is not needed
    return point + 1 < int(n_points);
  });
  observe(obs);
  std::vector<PointSums> out(n_points);
  for (size_t p = 0; p < n_points; ++p) {
    out[p].sum = to_host(ctx_, abs_sum[p].data(), spec_->points[p].width);
    out[p].tokens = n_win_ * T_;
  }
  clock_.mark("forward");
  return out;
}

std::vector<float> CudaBackend::awq_weight_mean(const AwqScalingGroup& g, const QuantParams& p) {
  // Column sums of the group-normalized magnitudes (quant/awq_search.h awq_weight_mean).
  const int64_t in_w = spec_->points[size_t(g.point)].width;
  wsum_.reserve(spec_->max_point_width(), "AWQ statistics");
  QL_CUDA(cudaMemsetAsync(wsum_.data(), 0, size_t(in_w) * sizeof(double), ctx_.stream()));
  int64_t rows = 0;
  for (int l : g.layers) {
    const DeviceLinear& dl = dw_.linear[size_t(l)];
    norm_buf_.reserve(dl.out * dl.in, "AWQ weight statistics");
    k::awq_weight_norm(dl.w.data(), dl.out, dl.in, effective_group_size(p, dl.in), norm_buf_.data(), ctx_.stream());
    col_work_.reserve(k::abs_col_sum_work(dl.out, dl.in), "statistics");
    k::abs_col_sum(norm_buf_.data(), dl.out, dl.in, wsum_.data(), col_work_.data(), ctx_.stream());
    rows += dl.out;
  }
  const std::vector<double> sums = to_host(ctx_, wsum_.data(), in_w);
  std::vector<float> w_mean(static_cast<size_t>(in_w));
  for (int64_t j = 0; j < in_w; ++j) w_mean[size_t(j)] = float(sums[size_t(j)] / double(rows));
  return w_mean;
}

std::function<double(std::span<const float>)> CudaBackend::awq_objective(const AwqScalingGroup& g,
                                                                         const QuantParams& ps) {
  const int64_t ns_rows = n_search_ * T_, in_w = spec_->points[size_t(g.point)].width;
  ref_.reserve(ns_rows * d_, "AWQ reference");
  y_.reserve(ns_rows * d_, "AWQ candidate output");
  // The output the search inspects, for the sample x [ns_rows, in] → out [ns_rows, hidden].
  auto inspect = [this, g, ns_rows, in_w](float* out) {
    const Act x{sample_[size_t(g.point)].data(), ns_rows, in_w};
    if (g.inspect_sublayer) {
      sublayer_output(ops_, *spec_, g.sublayer, x, Act{out, ns_rows, d_}, step(n_search_));
      return;
    }
    const int slots[] = {g.layers.front()};
    const Act outs[] = {Act{out, ns_rows, d_}};
    ops_.linears(slots, x, outs);
  };
  inspect(ref_.data());
  const double n_out = double(ns_rows) * double(d_);
  auto cand = std::make_shared<std::vector<DeviceArray<float>>>(spec_->linears.size());
  for (int l : g.layers) (*cand)[size_t(l)] = DeviceArray<float>(dw_.linear[size_t(l)].out * dw_.linear[size_t(l)].in, "AWQ candidate");
  auto s_dev = std::make_shared<DeviceArray<float>>(in_w, "AWQ scales");
  const QuantSpec qs = quant_spec(ps);
  return [this, g, inspect, cand, s_dev, qs, ps, ns_rows, n_out](std::span<const float> sc) {
    ctx_.upload(s_dev->data(), sc.data(), sc.size() * sizeof(float));
    for (int l : g.layers) {
      DeviceLinear& dl = dw_.linear[size_t(l)];
      k::awq_pseudo_quantize_scaled(dl.w.data(), s_dev->data(), dl.out, dl.in, effective_group_size(ps, dl.in), qs,
                                    (*cand)[size_t(l)].data(), ctx_.stream());
      std::swap(dl.w, (*cand)[size_t(l)]);
    }
    inspect(y_.data());
    for (int l : g.layers) std::swap(dw_.linear[size_t(l)].w, (*cand)[size_t(l)]);
    return sum_sq(y_.data(), ref_.data(), ns_rows * d_) / n_out;
  };
}

std::vector<float> CudaBackend::awq_fold(const AwqScalingGroup& g, std::span<const float> s, DType norm_dtype) {
  const int64_t ns_rows = n_search_ * T_, in_w = spec_->points[size_t(g.point)].width;
  const std::vector<float> realized = awq_fold_prev(*spec_, w_, g, s, norm_dtype);
  const DeviceArray<float> r_dev = to_device(ctx_, realized, "AWQ scales");
  if (!g.folds_into_linear()) {
    const NormWeights& n = w_.norm[size_t(g.source_slot)];
    DeviceNorm& dn = dw_.norm[size_t(g.source_slot)];
    upload_tensor(ctx_, n.w, dn.w);
    upload_tensor(ctx_, n.b, dn.b);
  } else {  // the preceding linear's rows ÷ s (the requested scales, as awq_fold_scales divides)
    DeviceLinear& pl = dw_.linear[size_t(g.source_slot)];
    const std::vector<float> req(s.begin(), s.end());
    const DeviceArray<float> s_req = to_device(ctx_, req, "AWQ scales");
    k::scale_rows(pl.w.data(), s_req.data(), pl.out, pl.in, ctx_.stream());
    upload_tensor(ctx_, w_.linear[size_t(g.source_slot)].b, pl.b);
  }
  for (int l : g.layers) {
    DeviceLinear& dl = dw_.linear[size_t(l)];
    k::scale_cols(dl.w.data(), r_dev.data(), dl.out, dl.in, false, ctx_.stream());
  }
  // The group's inputs are x / s from now on.
  k::scale_cols(sample_[size_t(g.point)].data(), r_dev.data(), ns_rows, in_w, true, ctx_.stream());
  ctx_.sync();
  clock_.mark("scale search");
  return realized;
}

AwqLayerResult CudaBackend::awq_clip_quantize(int slot, bool clip, const QuantParams& p, const QuantParams& ps) {
  const int64_t ns_rows = n_search_ * T_;
  const std::string name = spec_->linear_tensor(slot) + ".weight";
  DeviceLinear& dl = dw_.linear[size_t(slot)];
  const float* x = sample_[size_t(spec_->linears[size_t(slot)].input)].data();
  DeviceArray<float> deq(dl.out * dl.in, "dequantized weights");
  DeviceArray<float> clipped(dl.out * dl.in, "AWQ clipped weights");
  QL_CUDA(cudaMemcpyAsync(clipped.data(), dl.w.data(), size_t(dl.out * dl.in) * sizeof(float), cudaMemcpyDeviceToDevice,
                          ctx_.stream()));
  if (clip) {
    const DeviceArray<float> max_val = awq_search_clip_device(ctx_, dl.w.data(), dl.out, dl.in, x, ns_rows, ps);
    k::awq_apply_clip(clipped.data(), max_val.data(), dl.out, dl.in, effective_group_size(ps, dl.in), ctx_.stream());
  }
  GroupQuantized q = rtn_quantize_device(ctx_, clipped.data(), dl.out, dl.in, p, name, deq.data());
  // tr((W−Q) H (W−Q)ᵀ) / tr(W H Wᵀ) over the sample: Σ (x·(W−Q)ᵀ)² / Σ (x·Wᵀ)².
  DeviceArray<float> diff(dl.out * dl.in, "AWQ error"), out_y(ns_rows * dl.out, "AWQ error");
  k::sub(dl.w.data(), deq.data(), diff.data(), dl.out * dl.in, ctx_.stream());
  ctx_.gemm(false, true, ns_rows, dl.out, dl.in, 1.0f, x, dl.in, diff.data(), dl.in, 0.0f, out_y.data(), dl.out, math_);
  const double num = sum_sq(out_y.data(), nullptr, ns_rows * dl.out);
  ctx_.gemm(false, true, ns_rows, dl.out, dl.in, 1.0f, x, dl.in, dl.w.data(), dl.in, 0.0f, out_y.data(), dl.out, math_);
  const double den = sum_sq(out_y.data(), nullptr, ns_rows * dl.out);
  dl.w = std::move(deq);
  clock_.mark("clip + quantize");
  return {std::move(q), den > 0 ? num / den : 0.0};
}

}  // namespace quantllm::cuda
