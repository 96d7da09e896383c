// GPTQ on the GPU (see gptq.h): Hessian accumulation, the damped factor of H⁻¹, the batched column loop.
#include "runtime/cuda/gptq.h"

#include "runtime/cuda/kernels.h"
#include "runtime/cuda/libs.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <string>

namespace quantllm::cuda {

namespace {

constexpr int64_t kMaxPartials = 4096;

double sum_partials(const Context& ctx, const DeviceArray<double>& part, int64_t n) {
  const std::vector<double> p = to_host(ctx, part.data(), n);
  double s = 0.0;
  for (double v : p) s += v;  // in order: deterministic
  return s;
}

// Lazy batch width: groups found inside the loop must lie in one batch or start one (gptq.h).
int64_t batch_width(int64_t gs, bool dynamic_groups) {
  if (!dynamic_groups) return 128;
  if (gs <= 128) return gs * (128 / gs);
  for (int64_t b = 128; b > 1; --b)
    if (gs % b == 0) return b;
  return 1;
}

// The factor GPTQ needs, U upper triangular with H⁻¹ = UᵀU, from one Cholesky factorization and one
// triangular inverse (the CPU's route is factor, invert, factor again). With J the reversal permutation,
// M = J H J = L Lᵀ gives H = V Vᵀ for the upper triangular V = J L J, so H⁻¹ = V⁻ᵀV⁻¹ and U = V⁻¹ = J L⁻¹ J:
// the (unique) upper Cholesky factor of H⁻¹. cuSOLVER works column-major: the lower factor of the
// symmetric M is L itself.
//
// L⁻¹ comes from cuBLAS's triangular solve L X = I a slab of kSlab columns at a time: columns
// [j0, j0 + w) of L⁻¹ are zero above row j0 and solve L[j0:, j0:] X = I[j0:, j0:j0+w], so each slab needs
// only (n − j0) × w of workspace. On one H100 this took 1.9 s where cuSOLVER's trtri took 5.9 s for the
// 128 factors of the Llama-3-8B shape (docs/benchmarks-gpu.md); QUANTLLM_GPU_INVERSE=trtri uses trtri.
constexpr int64_t kSlab = 2048;

bool use_trsm() {
  static const bool on = [] {
    const char* e = std::getenv("QUANTLLM_GPU_INVERSE");
    return !(e && std::string(e) == "trtri");
  }();
  return on;
}

struct Solver {
  const Context& ctx;
  int64_t n;
  DeviceArray<double> work, slab;
  DeviceArray<char> trtri_work;
  std::vector<char> trtri_host;
  DeviceArray<int> info{1, "cuSOLVER info"};
  Solver(const Context& c, int64_t n_, double* a) : ctx(c), n(n_) {
    int lw = 0;
    QL_CUSOLVER(cuda_libs().potrf_buffer_size(ctx.solver(), CUBLAS_FILL_MODE_LOWER, int(n), a, int(n), &lw));
    work = DeviceArray<double>(std::max(1, lw), "cuSOLVER workspace");
    if (use_trsm()) {
      slab = DeviceArray<double>(n * std::min(n, kSlab), "triangular inverse slab");
      return;
    }
    size_t dev = 0, host = 0;
    QL_CUSOLVER(cuda_libs().trtri_buffer_size(ctx.solver(), CUBLAS_FILL_MODE_LOWER, CUBLAS_DIAG_NON_UNIT, n, CUDA_R_64F, a,
                                              n, &dev, &host));
    trtri_work = DeviceArray<char>(int64_t(std::max<size_t>(1, dev)), "cuSOLVER workspace");
    trtri_host.resize(std::max<size_t>(1, host));
  }
  // m: J H J on entry (destroyed). On success hinv holds U = J L⁻¹ J in fp32, every entry finite.
  bool factor_and_invert(double* m, float* hinv) {
    QL_CUSOLVER(cuda_libs().potrf(ctx.solver(), CUBLAS_FILL_MODE_LOWER, int(n), m, int(n), work.data(), int(work.size()),
                                  info.data()));
    if (to_host(ctx, info.data(), 1)[0] != 0) return false;
    profile_mark(ctx, "chol: potrf");
    DeviceArray<int32_t> bad(1, "flag");
    QL_CUDA(cudaMemsetAsync(bad.data(), 0, sizeof(int32_t), ctx.stream()));
    if (use_trsm()) {
      QL_CUDA(cudaMemsetAsync(hinv, 0, size_t(n * n) * sizeof(float), ctx.stream()));  // U's zeros below its diagonal
      const double one = 1.0;
      for (int64_t j0 = 0; j0 < n; j0 += kSlab) {
        const int64_t w = std::min(kSlab, n - j0), rows = n - j0;
        k::identity_slab(slab.data(), rows, w, ctx.stream());
        QL_CUBLAS(cuda_libs().trsm(ctx.blas(), CUBLAS_SIDE_LEFT, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, CUBLAS_DIAG_NON_UNIT,
                                   int(rows), int(w), &one, m + j0 * n + j0, int(n), slab.data(), int(rows)));
        k::scatter_inverse_slab(slab.data(), n, j0, w, hinv, bad.data(), ctx.stream());
      }
    } else {
      QL_CUSOLVER(cuda_libs().trtri(ctx.solver(), CUBLAS_FILL_MODE_LOWER, CUBLAS_DIAG_NON_UNIT, n, CUDA_R_64F, m, n,
                                    trtri_work.data(), size_t(trtri_work.size()), trtri_host.data(), trtri_host.size(),
                                    info.data()));
      if (to_host(ctx, info.data(), 1)[0] != 0) return false;
      k::reversed_lower_to_upper_f32(m, n, hinv, bad.data(), ctx.stream());
    }
    const bool ok = to_host(ctx, bad.data(), 1)[0] == 0;
    profile_mark(ctx, "chol: inverse");
    return ok;
  }
};

}  // namespace

int64_t factorization_bytes(int64_t n) {
  return n * n * int64_t(sizeof(double) + sizeof(float)) + (use_trsm() ? n * std::min(n, kSlab) * int64_t(sizeof(double)) : 0);
}

QuantSpec quant_spec(const QuantParams& p) {
  QuantSpec q;
  q.bits = p.bits;
  q.maxq = max_code(p.bits);
  q.sym = p.sym;
  q.mse = p.mse;
  q.awq_rule = p.rule == RangeRule::kAwq;
  q.round_scale_first = p.scale_rounding == ScaleRounding::kBeforeCodes;
  return q;
}

DeviceHessian::DeviceHessian(const Context& ctx, int64_t in) : in_(in), sum_(in * in, "Hessian") {
  QL_ASSERT(in > 0);
  QL_CUDA(cudaMemsetAsync(sum_.data(), 0, size_t(in * in) * sizeof(double), ctx.stream()));
}

DeviceHessian DeviceHessian::from_host(const Context& ctx, const std::vector<double>& h, int64_t in, int64_t n) {
  QL_ASSERT(int64_t(h.size()) == in * in && n > 0);
  DeviceHessian d(ctx, in);
  std::vector<double> sum(h.size());
  for (size_t i = 0; i < h.size(); ++i) sum[i] = h[i] * double(n) / 2.0;
  ctx.upload(d.sum_.data(), sum.data(), sum.size() * sizeof(double));
  ctx.sync();
  d.rows_ = n;
  d.mirrored_ = true;  // given in full
  return d;
}

void DeviceHessian::add(const Context& ctx, const float* x, int64_t rows, Math math, HessianScratch& scratch) {
  if (rows == 0) return;
  QL_ASSERT(!mirrored_, "Hessian rows added after it was completed");
  profile_mark(ctx, "hessian: work queued before an add (forward)");
  scratch.product.reserve(in_ * in_, "Hessian chunk");
  if (math == Math::BF16) {  // the chunk rounded to bf16 once; products exact in fp32, summed in fp32
    scratch.bf16.reserve(rows * in_, "Hessian chunk (bf16)");
    k::f32_to_bf16(x, scratch.bf16.data(), rows * in_, ctx.stream());
  }
  // xᵀx is symmetric: only the tiles on and below the diagonal are computed — tile column j as one
  // product X[:, j·t:]ᵀ · X[:, j·t:(j+1)·t] — and the rest is mirrored once, in complete().
  const int64_t t = std::min(in_, kTile);
  for (int64_t c0 = 0; c0 < in_; c0 += t) {
    const int64_t nc = std::min(t, in_ - c0);
    float* c = scratch.product.data() + c0 * in_ + c0;  // [in − c0, nc] inside [in, in]
    if (math == Math::BF16)
      ctx.gemm_bf16(true, false, in_ - c0, nc, rows, 1.0f, scratch.bf16.data() + c0, in_, scratch.bf16.data() + c0, in_, 0.0f,
                    c, in_);
    else
      ctx.gemm(true, false, in_ - c0, nc, rows, 1.0f, x + c0, in_, x + c0, in_, 0.0f, c, in_, math);
  }
  profile_mark(ctx, "hessian: products");
  k::accumulate_f64_lower_tiles(sum_.data(), scratch.product.data(), in_, t, ctx.stream());
  rows_ += rows;
  profile_mark(ctx, "hessian: f64 accumulate");
}

void DeviceHessian::complete(const Context& ctx) {
  if (!mirrored_) k::mirror_lower_tiles(sum_.data(), in_, std::min(in_, kTile), ctx.stream());
  mirrored_ = true;
}

PreparedHessian prepare_hessian(const Context& ctx, DeviceHessian& acc, const GPTQOptions& opt, std::string_view name) {
  const int64_t n = acc.in();
  if (acc.rows() == 0) fail("layer '{}': no calibration inputs were observed (empty Hessian)", name);
  if (!(opt.damp_percent >= 0.0) || !std::isfinite(opt.damp_percent))
    fail("layer '{}': damping {} must be a non-negative fraction", name, opt.damp_percent);
  const double f = 2.0 / double(acc.rows());  // H = 2/n Σ xᵀx, n = rows (HessianAccumulator's default)
  PreparedHessian P;
  P.in = n;
  profile_start(ctx);

  acc.release_scratch();  // every chunk is in: from here on, at most Σ, the factor, H⁻¹ and H are held
  acc.complete(ctx);

  // Diagonal: dead inputs, act-order permutation, mean for the damping (as quant/gptq.cpp).
  std::vector<double> diag(static_cast<size_t>(n));
  QL_CUDA(cudaMemcpy2DAsync(diag.data(), sizeof(double), acc.sum(), size_t(n + 1) * sizeof(double), sizeof(double),
                            size_t(n), cudaMemcpyDeviceToHost, ctx.stream()));
  ctx.sync();
  P.dead.assign(size_t(n), 0);
  for (int64_t i = 0; i < n; ++i) {
    diag[size_t(i)] *= f;
    // Finiteness of H in fp32 (the CPU's check on h_in), from the diagonal alone: NaN inputs make their
    // diagonal entry NaN, a product that overflows fp32 makes one of its two factors' squares overflow,
    // and |H_ij| ≤ √(H_ii H_jj) keeps every other entry within the largest diagonal one.
    if (!std::isfinite(float(diag[size_t(i)])))
      fail("layer '{}': the Hessian of its calibration inputs is not finite: the activations reaching this layer are "
           "NaN/Inf, or so large (above ~1e19) that their products overflow fp32", name);
    if (diag[size_t(i)] == 0.0) {
      P.dead[size_t(i)] = 1;
      diag[size_t(i)] = 1.0;
      ++P.n_dead;
    }
  }
  P.perm.resize(size_t(n));
  std::iota(P.perm.begin(), P.perm.end(), 0);
  if (opt.act_order)
    std::stable_sort(P.perm.begin(), P.perm.end(), [&](int32_t a, int32_t b) { return diag[size_t(a)] > diag[size_t(b)]; });
  double mean_diag = 0.0;
  for (int64_t a = 0; a < n; ++a) mean_diag += diag[size_t(P.perm[size_t(a)])];
  mean_diag /= double(n);
  P.perm_dev = to_device(ctx, P.perm, "permutation");
  const std::vector<int32_t> reversed(P.perm.rbegin(), P.perm.rend());  // J·perm: M = J Hp J (see Solver)
  const DeviceArray<int32_t> reversed_dev = to_device(ctx, reversed, "permutation");
  std::vector<int32_t> identity(static_cast<size_t>(n));
  std::iota(identity.begin(), identity.end(), 0);
  P.identity_dev = to_device(ctx, identity, "permutation");
  P.dead_dev = to_device(ctx, P.dead, "dead inputs");
  profile_mark(ctx, "chol: mirror, diagonal, order");

  // Damping schedule: the requested fraction, then ×10 (from 0: 1e-3) while ≤ 1. The factor's fp64
  // buffer and the solver's workspace go before H is made in fp32.
  double damp = opt.damp_percent;
  P.hinv = DeviceArray<float>(n * n, "H⁻¹ factor");
  {
    DeviceArray<double> u(n * n, "Cholesky factor");
    Solver solver(ctx, n, u.data());
    profile_mark(ctx, "chol: buffers");
    for (;;) {
      k::permute_hessian(acc.sum(), reversed_dev.data(), P.dead_dev.data(), n, f, damp * mean_diag, u.data(), ctx.stream());
      profile_mark(ctx, "chol: permute");
      if (solver.factor_and_invert(u.data(), P.hinv.data())) break;
      const double next = damp == 0.0 ? 1e-3 : damp * 10.0;
      if (next > 1.0 + 1e-9 || damp >= 1.0)
        fail("Hessian of '{}' is not positive definite even with damping {} (fraction of the mean diagonal {})", name, damp,
             mean_diag);
      damp = next;
    }
  }
  P.damp_used = damp;
  profile_mark(ctx, "chol: to f32, release");
  // H as accumulated, in fp32, for the objective.
  P.h = DeviceArray<float>(n * n, "Hessian (fp32)");
  k::f64_to_f32(acc.sum(), P.h.data(), n * n, f, ctx.stream());
  acc.release();
  profile_mark(ctx, "chol: H in f32");
  return P;
}

std::vector<double> relative_objectives_device(const Context& ctx, const float* w, std::span<const float* const> wqs,
                                               int64_t out, int64_t in, const float* h, Math math) {
  DeviceArray<float> d(out * in, "objective"), e(out * in, "objective");
  DeviceArray<double> part(kMaxPartials, "partial sums");
  // E = W·H ([out, in]); Σ W ⊙ E = tr(W H Wᵀ).
  ctx.gemm(false, false, out, in, in, 1.0f, w, in, h, in, 0.0f, e.data(), in, math);
  const double den = sum_partials(ctx, part, k::dot_partials(w, e.data(), out * in, part.data(), kMaxPartials, ctx.stream()));
  std::vector<double> r;
  for (const float* wq : wqs) {
    k::sub(w, wq, d.data(), out * in, ctx.stream());
    ctx.gemm(false, false, out, in, in, 1.0f, d.data(), in, h, in, 0.0f, e.data(), in, math);
    const double num = sum_partials(ctx, part, k::dot_partials(d.data(), e.data(), out * in, part.data(), kMaxPartials, ctx.stream()));
    r.push_back(den == 0.0 ? (num == 0.0 ? 0.0 : std::numeric_limits<double>::infinity()) : num / den);
  }
  return r;
}

GroupQuantized rtn_quantize_device(const Context& ctx, const float* w, int64_t out, int64_t in, const QuantParams& p,
                                   std::string_view name, float* deq) {
  validate_quant_params(p, in, name);
  const int64_t gs = effective_group_size(p, in), ng = group_count(p, in);
  DeviceArray<uint8_t> codes(out * in, "codes");
  DeviceArray<float> scale(ng * out, "scales");
  DeviceArray<int32_t> zero(ng * out, "zeros");
  k::rtn(w, out, in, gs, quant_spec(p), true, codes.data(), scale.data(), zero.data(), deq, ctx.stream());
  GroupQuantized r;
  r.bits = p.bits;
  r.group_size = p.group_size;
  r.out = out;
  r.in = in;
  r.qweight = to_host(ctx, codes.data(), out * in);
  r.scales = Tensor({ng, out}, to_host(ctx, scale.data(), ng * out));
  r.zeros = to_host(ctx, zero.data(), ng * out);
  r.g_idx.resize(size_t(in));
  for (int64_t c = 0; c < in; ++c) r.g_idx[size_t(c)] = int32_t(c / gs);
  for (float s : r.scales.data)
    if (!std::isfinite(s)) fail("tensor '{}': a group's scale {} overflows fp16 (weights too large to store)", name, s);
  return r;
}

DeviceGptqResult gptq_quantize_device(const Context& ctx, const float* w, int64_t out, const PreparedHessian& H,
                                      const GPTQOptions& opt, std::string_view name, float* deq, Math objective_math) {
  const auto t_start = std::chrono::steady_clock::now();
  const int64_t in = H.in;
  validate_quant_params(opt.quant, in, name);
  const int64_t gs = effective_group_size(opt.quant, in), ng = group_count(opt.quant, in);
  const bool grouped = opt.quant.group_size != -1;
  const bool static_groups = opt.static_groups && grouped;
  const bool dynamic = grouped && !static_groups;
  const QuantSpec qs = quant_spec(opt.quant);
  cudaStream_t s = ctx.stream();
  profile_start(ctx);

  DeviceArray<float> wp(out * in, "GPTQ weights");  // processing order, dead columns zeroed
  k::permute_columns(w, H.perm_dev.data(), H.dead_dev.data(), out, in, wp.data(), s);
  DeviceArray<float> scale(ng * out, "scales");
  DeviceArray<int32_t> zero(ng * out, "zeros");
  if (!dynamic) {
    // Static groups: every group's parameters from the dead-zeroed W in original order; one group per
    // row: from W before the dead inputs are zeroed (the reference's order of events).
    if (grouped) {
      DeviceArray<float> wz(out * in, "GPTQ weights");
      k::permute_columns(w, H.identity_dev.data(), H.dead_dev.data(), out, in, wz.data(), s);
      k::group_params(wz.data(), out, in, gs, qs, scale.data(), zero.data(), s);
    } else {
      k::group_params(w, out, in, gs, qs, scale.data(), zero.data(), s);
    }
  }
  const int64_t bw = batch_width(gs, dynamic);
  DeviceArray<uint8_t> codes(out * in, "codes");
  DeviceArray<float> err(out * bw, "GPTQ batch errors");
  DeviceArray<double> loss(out, "GPTQ loss");
  QL_CUDA(cudaMemsetAsync(loss.data(), 0, size_t(out) * sizeof(double), s));
  DeviceArray<float> fixed_scale;
  DeviceArray<int32_t> fixed_zero;
  if (!dynamic) {  // the kernel reads the fixed parameters while the outputs keep them too
    fixed_scale = DeviceArray<float>(ng * out, "scales");
    fixed_zero = DeviceArray<int32_t>(ng * out, "zeros");
    QL_CUDA(cudaMemcpyAsync(fixed_scale.data(), scale.data(), size_t(ng * out) * sizeof(float), cudaMemcpyDeviceToDevice, s));
    QL_CUDA(cudaMemcpyAsync(fixed_zero.data(), zero.data(), size_t(ng * out) * sizeof(int32_t), cudaMemcpyDeviceToDevice, s));
  }
  profile_mark(ctx, "gptq: setup");
  for (int64_t i1 = 0; i1 < in; i1 += bw) {
    const int64_t nb = std::min(bw, in - i1), i2 = i1 + nb;
    k::GptqBlock a{};
    a.w = wp.data();
    a.hinv = H.hinv.data();
    a.out = out;
    a.in = in;
    a.i1 = i1;
    a.nb = nb;
    a.gs = gs;
    a.grouped_dynamic = dynamic;
    a.perm = H.perm_dev.data();
    a.fixed_scale = fixed_scale.data();
    a.fixed_zero = fixed_zero.data();
    a.q = qs;
    a.codes = codes.data();
    a.scale = scale.data();
    a.zero = zero.data();
    a.err = err.data();
    a.loss = loss.data();
    k::gptq_block(a, s);
    // Lazy batch update: W[:, i2:] −= Err · Hinv[i1:i2, i2:] (plain fp32, as the CPU's sgemm).
    if (i2 < in)
      ctx.gemm(false, false, out, in - i2, nb, -1.0f, err.data(), nb, H.hinv.data() + i1 * in + i2, in, 1.0f,
               wp.data() + i2, in, Math::FP32);
  }
  wp.release();
  err.release();
  profile_mark(ctx, "gptq: column loop");

  DeviceGptqResult res;
  GPTQStats& st = res.stats;
  st.damp_percent_used = H.damp_used;
  st.dead_inputs = H.n_dead;
  for (double l : to_host(ctx, loss.data(), out)) st.loss += l;

  DeviceArray<int32_t> bad(1, "flag");
  QL_CUDA(cudaMemsetAsync(bad.data(), 0, sizeof(int32_t), s));
  const std::vector<float> raw_scales = to_host(ctx, scale.data(), ng * out);
  k::finalize_scales(scale.data(), ng * out, bad.data(), s);
  if (to_host(ctx, bad.data(), 1)[0] != 0) {
    float worst = 0.0f;
    for (float v : raw_scales) worst = std::max(worst, std::fabs(v));
    fail("layer '{}': a group's scale {} overflows fp16 (weights too large to store)", name, worst);
  }

  GroupQuantized& q = res.q;
  q.bits = opt.quant.bits;
  q.group_size = opt.quant.group_size;
  q.out = out;
  q.in = in;
  q.qweight = to_host(ctx, codes.data(), out * in);
  q.scales = Tensor({ng, out}, to_host(ctx, scale.data(), ng * out));
  q.zeros = to_host(ctx, zero.data(), ng * out);
  q.g_idx.resize(size_t(in));
  for (int64_t p = 0; p < in; ++p) {
    const int64_t col = H.perm[size_t(p)];
    q.g_idx[size_t(col)] = !grouped ? 0 : int32_t(static_groups ? col / gs : p / gs);
  }
  const DeviceArray<int32_t> g_idx = to_device(ctx, q.g_idx, "g_idx");
  k::dequantize(codes.data(), scale.data(), zero.data(), g_idx.data(), out, in, deq, s);
  profile_mark(ctx, "gptq: results to host, dequantize");
  if (opt.report_objective) {
    DeviceArray<float> rtn(out * in, "RTN weights");
    k::rtn(w, out, in, gs, qs, true, nullptr, nullptr, nullptr, rtn.data(), s);
    const float* wqs[] = {deq, rtn.data()};
    const std::vector<double> obj = relative_objectives_device(ctx, w, wqs, out, in, H.h.data(), objective_math);
    st.objective = obj[0];
    res.rtn_objective = obj[1];
  }
  profile_mark(ctx, "gptq: objectives");
  ctx.sync();
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  return res;
}

}  // namespace quantllm::cuda
