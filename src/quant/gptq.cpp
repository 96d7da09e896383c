// GPTQ: Hessian accumulation, damped Cholesky of the inverse, and the blocked column loop with error
// feedback (see gptq.h for the algorithm, precision and determinism notes).
#include "quant/gptq.h"

#include "core/threads.h"
#include "quant/blas_single_thread.h"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

// LAPACK (Fortran symbols; OpenBLAS provides them, Debian ships no lapacke.h with it).
extern "C" {
void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info, size_t uplo_len);
void dpotri_(const char* uplo, const int* n, double* a, const int* lda, int* info, size_t uplo_len);
}

namespace quantllm {

namespace {

constexpr int64_t kRowChunk = 64;       // output rows per task of the column loop
constexpr int64_t kHessianTile = 64;    // rows of H per task of the accumulator
constexpr int64_t kHessianKChunk = 256; // input rows per fp32 product before summing into double

bool potrf_upper_rowmajor(double* a, int64_t n) {
  // Row-major upper = column-major lower: 'L' leaves U (A = UᵀU) in the row-major upper triangle.
  const int nn = int(n);
  int info = 0;
  dpotrf_("L", &nn, a, &nn, &info, 1);
  return info == 0;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// Hessian

HessianAccumulator::HessianAccumulator(int64_t in) : in_(in), sum_(size_t(in * in), 0.0) { QL_ASSERT(in > 0); }

void HessianAccumulator::add_batch(const float* x, int64_t rows, int64_t in, int64_t n_samples) {
  QL_ASSERT(in == in_, "Hessian of width {} fed rows of width {}", in_, in);
  QL_ASSERT(rows >= 0);
  if (rows == 0) return;
  n_ += n_samples < 0 ? rows : n_samples;
  rows_ += rows;
  SingleThreadedBlas single;
  const int64_t tiles = (in + kHessianTile - 1) / kHessianTile;
  // Tile t owns rows [i0, i1) of the upper triangle: C = X[:, i0:i1]ᵀ · X[:, i0:in].
  parallel_for(tiles, [&](int64_t t0, int64_t t1) {
    std::vector<float> c;
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t i0 = t * kHessianTile, i1 = std::min(in, i0 + kHessianTile), m = i1 - i0, nc = in - i0;
      c.assign(size_t(m * nc), 0.0f);
      for (int64_t r0 = 0; r0 < rows; r0 += kHessianKChunk) {
        const int64_t k = std::min(kHessianKChunk, rows - r0);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(m), int(nc), int(k), 1.0f, x + r0 * in + i0, int(in),
                    x + r0 * in + i0, int(in), 0.0f, c.data(), int(nc));
        for (int64_t i = 0; i < m; ++i) {
          double* dst = sum_.data() + (i0 + i) * in + i0;
          const float* src = c.data() + i * nc;
          for (int64_t j = i; j < nc; ++j) dst[j] += double(src[j]);
        }
      }
    }
  });
}

std::vector<double> HessianAccumulator::hessian() const {
  std::vector<double> h(sum_.size(), 0.0);
  if (n_ == 0) return h;
  const double f = 2.0 / double(n_);
  for (int64_t i = 0; i < in_; ++i)
    for (int64_t j = i; j < in_; ++j) h[size_t(i * in_ + j)] = h[size_t(j * in_ + i)] = f * sum_[size_t(i * in_ + j)];
  return h;
}

// ---------------------------------------------------------------------------------------------------
// Linear algebra helpers

bool upper_cholesky_of_inverse(std::span<const double> h, int64_t n, std::vector<double>& u) {
  QL_ASSERT(int64_t(h.size()) == n * n);
  SingleThreadedBlas single;  // OpenBLAS's threaded potrf splits the work differently per thread count
  u.assign(h.begin(), h.end());
  if (!potrf_upper_rowmajor(u.data(), n)) return false;
  const int nn = int(n);
  int info = 0;
  dpotri_("L", &nn, u.data(), &nn, &info, 1);  // H⁻¹ into the row-major upper triangle
  if (info != 0) return false;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j) u[size_t(j * n + i)] = u[size_t(i * n + j)];
  if (!potrf_upper_rowmajor(u.data(), n)) return false;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < i; ++j) u[size_t(i * n + j)] = 0.0;
  for (double v : u)
    if (!std::isfinite(v)) return false;
  return true;
}

double relative_objective(const Tensor& w, const Tensor& wq, std::span<const double> h) {
  QL_ASSERT(w.ndim() == 2 && w.shape == wq.shape);
  const int64_t out = w.dim(0), in = w.dim(1);
  QL_ASSERT(int64_t(h.size()) == in * in);
  const int64_t chunks = (out + kRowChunk - 1) / kRowChunk;
  std::vector<double> num(size_t(chunks), 0.0), den(size_t(chunks), 0.0);
  SingleThreadedBlas single;
  parallel_for(chunks, [&](int64_t c0, int64_t c1) {
    std::vector<double> a, y;
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t r0 = c * kRowChunk, m = std::min(kRowChunk, out - r0);
      for (int pass = 0; pass < 2; ++pass) {  // pass 0: E = W − Wq, pass 1: W
        a.resize(size_t(m * in));
        for (int64_t i = 0; i < m * in; ++i) {
          const size_t k = size_t(r0 * in + i);
          a[size_t(i)] = pass == 0 ? double(w.data[k]) - double(wq.data[k]) : double(w.data[k]);
        }
        y.assign(size_t(m * in), 0.0);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(m), int(in), int(in), 1.0, a.data(), int(in), h.data(),
                    int(in), 0.0, y.data(), int(in));
        double s = 0.0;
        for (int64_t i = 0; i < m * in; ++i) s += a[size_t(i)] * y[size_t(i)];
        (pass == 0 ? num : den)[size_t(c)] = s;
      }
    }
  });
  const double n = std::accumulate(num.begin(), num.end(), 0.0), d = std::accumulate(den.begin(), den.end(), 0.0);
  if (d == 0.0) return n == 0.0 ? 0.0 : std::numeric_limits<double>::infinity();
  return n / d;
}

// ---------------------------------------------------------------------------------------------------
// GPTQ

namespace {

// Everything the per-chunk column loop reads.
struct Plan {
  int64_t out, in, gs, ng;
  int maxq;
  int block_size;
  bool grouped, static_groups;
  QuantParams quant;
  std::vector<int64_t> perm;      // processing position → original column
  std::vector<float> hinv;        // [in, in] upper Cholesky factor of the damped, permuted H⁻¹
  const Tensor* w_orig;           // [out, in] as given
  const Tensor* w_dead_zeroed;    // [out, in] with dead columns zeroed
  GptqGrid* grid = nullptr;       // rounds instead of the integer groups (gs = its width)
};

// Results written by the chunks (disjoint rows).
struct Output {
  std::vector<uint8_t> codes;     // [out, in] original column order
  std::vector<float> scales;      // [ng, out] fp32 scales as used by the loop
  std::vector<int32_t> zeros;     // [ng, out]
  std::vector<double> chunk_loss; // per row chunk
};

void run_chunk(const Plan& P, int64_t r0, int64_t m, Output& O, double& loss) {
  const int64_t in = P.in, bs = P.block_size;
  // W: [m, in] in processing order.
  std::vector<float> W(size_t(m * in));
  for (int64_t r = 0; r < m; ++r) {
    const float* src = P.w_dead_zeroed->row(r0 + r);
    for (int64_t p = 0; p < in; ++p) W[size_t(r * in + p)] = src[P.perm[size_t(p)]];
  }
  // Row parameters: [m] for the current group (non-static), or per group (static / whole row).
  std::vector<GroupParams> cur(static_cast<size_t>(m));
  std::vector<GroupParams> fixed;  // [ng, m] for static groups and group_size −1
  if (!P.grouped || P.static_groups) {
    fixed.resize(size_t(P.ng * m));
    const Tensor& src = P.grouped ? *P.w_dead_zeroed : *P.w_orig;  // the reference's order of events
    for (int64_t r = 0; r < m; ++r)
      for (int64_t g = 0; g < P.ng; ++g) {
        const GroupParams gp = find_group_params({src.row(r0 + r) + g * P.gs, size_t(P.gs)}, P.quant);
        fixed[size_t(g * m + r)] = gp;
        O.scales[size_t(g * P.out + r0 + r)] = gp.scale;
        O.zeros[size_t(g * P.out + r0 + r)] = gp.zero;
      }
  }
  std::vector<float> err(size_t(m * bs)), catch_up, group_vals(size_t(P.gs));
  loss = 0.0;
  for (int64_t i1 = 0; i1 < in; i1 += bs) {
    const int64_t i2 = std::min(in, i1 + bs), nb = i2 - i1;
    std::fill(err.begin(), err.end(), 0.0f);  // err: [m, bs]
    for (int64_t p = i1; p < i2; ++p) {
      if (P.grouped && !P.static_groups && p % P.gs == 0) {
        // Parameters of group p/gs from its columns with all earlier feedback applied. Columns past the
        // block still lack this block's feedback so far: add it to a copy.
        const int64_t g_end = p + P.gs, spill = std::max<int64_t>(0, g_end - i2);
        if (spill > 0) {
          catch_up.resize(size_t(m * spill));
          for (int64_t r = 0; r < m; ++r)
            std::copy_n(W.data() + r * in + i2, spill, catch_up.data() + r * spill);
          if (p > i1)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(m), int(spill), int(p - i1), -1.0f, err.data(),
                        int(bs), P.hinv.data() + i1 * in + i2, int(in), 1.0f, catch_up.data(), int(spill));
        }
        const int64_t g = p / P.gs, inside = P.gs - spill;
        for (int64_t r = 0; r < m; ++r) {
          std::copy_n(W.data() + r * in + p, inside, group_vals.data());
          if (spill > 0) std::copy_n(catch_up.data() + r * spill, spill, group_vals.data() + inside);
          if (P.grid) {
            P.grid->fit(r0 + r, p, group_vals);
            continue;
          }
          const GroupParams gp = find_group_params(group_vals, P.quant);
          cur[size_t(r)] = gp;
          O.scales[size_t(g * P.out + r0 + r)] = gp.scale;
          O.zeros[size_t(g * P.out + r0 + r)] = gp.zero;
        }
      }
      const float* hrow = P.hinv.data() + p * in;  // Hinv[p, :]
      const float d = hrow[p];
      const int64_t col = P.perm[size_t(p)];
      const int64_t fixed_group = !P.grouped ? 0 : (P.static_groups ? col / P.gs : -1);
      for (int64_t r = 0; r < m; ++r) {
        float* wr = W.data() + r * in;
        const float wv = wr[p];
        float q;
        if (P.grid) {
          q = P.grid->round(r0 + r, col, wv);
        } else {
          const GroupParams& gp = fixed_group >= 0 ? fixed[size_t(fixed_group * m + r)] : cur[size_t(r)];
          const int32_t code = quantize_value(wv, gp, P.maxq);
          q = dequantize_value(code, gp);
          O.codes[size_t((r0 + r) * in + col)] = uint8_t(code);
        }
        const float e = (wv - q) / d;
        loss += double((wv - q) * (wv - q) / (d * d)) / 2.0;
        err[size_t(r * bs + (p - i1))] = e;
        for (int64_t j = p + 1; j < i2; ++j) wr[j] -= e * hrow[j];
      }
    }
    // Lazy batch update: W[:, i2:] −= Err · Hinv[i1:i2, i2:].
    if (i2 < in)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(m), int(in - i2), int(nb), -1.0f, err.data(), int(bs),
                  P.hinv.data() + i1 * in + i2, int(in), 1.0f, W.data() + i2, int(in));
  }
}

// What both GPTQ entry points do before the column loop: checks, dead inputs (W's columns zeroed into
// w_zeroed), the act-order permutation, the damping schedule and the upper Cholesky factor of H⁻¹.
// P's out, in, block_size, perm, hinv and w_* are set; the rounding fields are the caller's.
void prepare_plan(const Tensor& w, std::span<const double> h_in, const GPTQOptions& opt, std::string_view name, Plan& P,
                  Tensor& w_zeroed, GPTQStats& stats) {
  if (w.ndim() != 2) fail("layer '{}': expected a 2-D weight, got shape {}", name, shape_str(w.shape));
  const int64_t out = w.dim(0), in = w.dim(1);
  if (int64_t(h_in.size()) != in * in)
    fail("layer '{}': Hessian has {} elements, expected [{}, {}] for weight {}", name, h_in.size(), in, in, shape_str(w.shape));
  if (opt.block_size < 1) fail("layer '{}': GPTQ block size {} must be positive", name, opt.block_size);
  if (!(opt.damp_percent >= 0.0) || !std::isfinite(opt.damp_percent))
    fail("layer '{}': damping {} must be a non-negative fraction", name, opt.damp_percent);
  check_finite(w.data, name);
  // A Hessian built from finite activations is finite and positive semidefinite, and the damping
  // schedule below always makes it positive definite; a non-finite one is the only way the pipeline
  // reaches a Hessian that no damping can rescue, so it is refused here with its cause.
  for (size_t i = 0; i < h_in.size(); ++i)
    if (!std::isfinite(h_in[i]))
      fail("layer '{}': the Hessian of its calibration inputs is not finite ({} at [{}, {}]): the activations reaching "
           "this layer are NaN/Inf, or so large (above ~1e19) that their products overflow fp32",
           name, h_in[i], int64_t(i) / in, int64_t(i) % in);

  P.out = out;
  P.in = in;
  P.block_size = opt.block_size;
  P.w_orig = &w;

  // Dead inputs: H[i,i] = 1 and W[:, i] = 0 (the diagonal taken apart; H itself is not copied).
  std::vector<double> diag(static_cast<size_t>(in));
  w_zeroed = w;
  for (int64_t i = 0; i < in; ++i) {
    diag[size_t(i)] = h_in[size_t(i * in + i)];
    if (diag[size_t(i)] == 0.0) {
      ++stats.dead_inputs;
      diag[size_t(i)] = 1.0;
      for (int64_t r = 0; r < out; ++r) w_zeroed.data[size_t(r * in + i)] = 0.0f;
    }
  }
  P.w_dead_zeroed = &w_zeroed;
  P.perm.resize(size_t(in));
  std::iota(P.perm.begin(), P.perm.end(), int64_t{0});
  if (opt.act_order)
    std::stable_sort(P.perm.begin(), P.perm.end(),
                     [&](int64_t a, int64_t b) { return diag[size_t(a)] > diag[size_t(b)]; });
  // H permuted (in² × 8 bytes; with the factor, the only two such matrices made here).
  std::vector<double> hp(size_t(in * in));
  std::vector<double> hp_diag(static_cast<size_t>(in));
  double mean_diag = 0.0;
  for (int64_t a = 0; a < in; ++a) {
    const int64_t ra = P.perm[size_t(a)];
    for (int64_t b = 0; b < in; ++b) hp[size_t(a * in + b)] = h_in[size_t(ra * in + P.perm[size_t(b)])];
    hp[size_t(a * in + a)] = hp_diag[size_t(a)] = diag[size_t(ra)];
    mean_diag += hp_diag[size_t(a)];
  }
  mean_diag /= double(in);

  // Damping schedule: the requested fraction, then ×10 (from 0: 1e-3) while ≤ 1 (100% of the mean diagonal),
  // added to the permuted H's diagonal in place.
  std::vector<double> u;
  double damp = opt.damp_percent;
  for (;;) {
    for (int64_t a = 0; a < in; ++a) hp[size_t(a * in + a)] = hp_diag[size_t(a)] + damp * mean_diag;
    if (upper_cholesky_of_inverse(hp, in, u)) break;
    const double next = damp == 0.0 ? 1e-3 : damp * 10.0;
    if (next > 1.0 + 1e-9 || damp >= 1.0)
      fail("Hessian of '{}' is not positive definite even with damping {} (fraction of the mean diagonal {})", name, damp,
           mean_diag);
    damp = next;
  }
  stats.damp_percent_used = damp;
  std::vector<double>().swap(hp);
  P.hinv.assign(u.begin(), u.end());
  std::vector<double>().swap(u);
}

// The column loop over every row chunk, in parallel; returns the reference's loss.
double run_chunks(const Plan& P, Output& O) {
  const int64_t chunks = (P.out + kRowChunk - 1) / kRowChunk;
  O.chunk_loss.assign(size_t(chunks), 0.0);
  SingleThreadedBlas single;
  parallel_for(chunks, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t r0 = c * kRowChunk;
      run_chunk(P, r0, std::min(kRowChunk, P.out - r0), O, O.chunk_loss[size_t(c)]);
    }
  });
  double loss = 0.0;
  for (double l : O.chunk_loss) loss += l;
  return loss;
}

}  // namespace

GPTQResult gptq_quantize(const Tensor& w, std::span<const double> h_in, const GPTQOptions& opt, std::string_view name) {
  const auto t_start = std::chrono::steady_clock::now();
  Plan P;
  Tensor w_zeroed;
  GPTQStats stats;
  if (w.ndim() == 2) validate_quant_params(opt.quant, w.dim(1), name);
  prepare_plan(w, h_in, opt, name, P, w_zeroed, stats);
  const int64_t out = P.out, in = P.in;
  P.gs = effective_group_size(opt.quant, in);
  P.ng = group_count(opt.quant, in);
  P.maxq = max_code(opt.quant.bits);
  P.grouped = opt.quant.group_size != -1;
  P.static_groups = opt.static_groups && P.grouped;
  P.quant = opt.quant;

  Output O;
  O.codes.assign(size_t(out * in), 0);
  O.scales.assign(size_t(P.ng * out), 0.0f);
  O.zeros.assign(size_t(P.ng * out), 0);
  stats.loss = run_chunks(P, O);

  GPTQResult res;
  GroupQuantized& q = res.q;
  q.bits = opt.quant.bits;
  q.group_size = opt.quant.group_size;
  q.out = out;
  q.in = in;
  q.qweight = std::move(O.codes);
  q.zeros = std::move(O.zeros);
  q.scales = Tensor({P.ng, out});
  for (size_t i = 0; i < O.scales.size(); ++i) {
    q.scales.data[i] = finalize_scale(O.scales[i]);
    if (!std::isfinite(q.scales.data[i]))
      fail("layer '{}': a group's scale {} overflows fp16 (weights too large to store)", name, O.scales[i]);
  }
  q.g_idx.resize(size_t(in));
  for (int64_t p = 0; p < in; ++p) {
    const int64_t col = P.perm[size_t(p)];
    q.g_idx[size_t(col)] = !P.grouped ? 0 : int32_t(P.static_groups ? col / P.gs : p / P.gs);
  }
  if (opt.report_objective) stats.objective = relative_objective(w, q.dequantize(), h_in);
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  res.stats = stats;
  return res;
}

GPTQStats gptq_quantize_grid(const Tensor& w, std::span<const double> h, const GPTQOptions& opt, GptqGrid& grid,
                             std::string_view name) {
  const auto t_start = std::chrono::steady_clock::now();
  if (opt.act_order || opt.static_groups)
    fail("layer '{}': GPTQ onto GGML blocks takes the columns in order (no act-order or static groups)", name);
  Plan P;
  Tensor w_zeroed;
  GPTQStats stats;
  prepare_plan(w, h, opt, name, P, w_zeroed, stats);
  P.gs = grid.width();
  QL_ASSERT(P.gs > 0 && P.in % P.gs == 0, "layer '{}': {} columns are not whole groups of {}", name, P.in, P.gs);
  P.ng = P.in / P.gs;
  P.grouped = true;
  P.static_groups = false;
  P.grid = &grid;
  std::vector<double> diag(static_cast<size_t>(P.in));
  for (int64_t i = 0; i < P.in; ++i) diag[size_t(i)] = h[size_t(i * P.in + i)];
  grid.start(diag);
  Output O;
  stats.loss = run_chunks(P, O);
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  return stats;
}

GPTQResult gptq_quantize(const Tensor& w, const HessianAccumulator& h, const GPTQOptions& options, std::string_view name) {
  if (h.n_samples() == 0) fail("layer '{}': no calibration inputs were observed (empty Hessian)", name);
  const std::vector<double> hm = h.hessian();
  return gptq_quantize(w, hm, options, name);
}

}  // namespace quantllm
