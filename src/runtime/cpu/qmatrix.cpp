// Packed weight matrices: construction from a weight source (GGUF / safetensors views, GPTQ / AWQ
// repacked into GQ4) and the threaded matrix products over them (see qmatrix.h).
#include "runtime/cpu/qmatrix.h"

#include "core/dtype.h"
#include "core/error.h"
#include "core/threads.h"
#include "quant/blas_single_thread.h"
#include "quant/ggml/types.h"
#include "quant/gptq_format.h"

#include <cblas.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <numeric>

namespace quantllm::cpu {

namespace {

// Drops the pages of a read-only file mapping from this process (they stay in the page cache): after
// GPTQ / AWQ tensors are repacked their mapped originals would otherwise count twice in RSS.
void release_mapped(const TensorView& v) {
  if (!v.data || v.nbytes == 0) return;
  const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
  const uintptr_t b = (uintptr_t(v.data) + page - 1) & ~(page - 1), e = (uintptr_t(v.data) + v.nbytes) & ~(page - 1);
  if (e > b) ::madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
}

// GPTQ / AWQ groups → GQ4 rows (kernels.h), or nullptr with the reason.
std::shared_ptr<QMatrix> repack_groups(const PackedWeight& p, const std::string& name, std::string* why) {
  if (p.bits > 4) {
    if (why) *why = fmt::format("{}-bit groups have no kernel (2–4 bits do)", p.bits);
    return nullptr;
  }
  const int64_t out = p.shape[0], in = p.shape[1];
  const GroupQuantized q = unpack_groups(p, name, name);
  // Columns in group order (act-order checkpoints scatter each group's columns over the row).
  const int64_t n_groups = q.n_groups();
  std::vector<int32_t> perm(static_cast<size_t>(in));
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(), [&](int32_t a, int32_t b) { return q.g_idx[size_t(a)] < q.g_idx[size_t(b)]; });
  const int64_t G = in / n_groups;
  for (int64_t j = 0; j < in; ++j) {
    if (q.g_idx[size_t(perm[size_t(j)])] != j / G) {
      if (why) *why = "its groups are not all of one size";
      return nullptr;
    }
  }
  if (G % 64 != 0) {
    if (why) *why = fmt::format("group size {} is not a multiple of 64", G);
    return nullptr;
  }
  bool identity = true;
  for (int64_t j = 0; j < in; ++j) identity = identity && perm[size_t(j)] == j;

  auto m = std::make_shared<QMatrix>();
  m->format = GgmlType::GQ4;
  m->rows = out, m->cols = in;
  m->group_size = int(G);
  m->row_bytes = packed_row_bytes(GgmlType::GQ4, in, int(G));
  m->owned.assign(size_t(out) * m->row_bytes, 0);
  m->name = name;
  if (!identity) m->col_perm = perm;
  parallel_for(out, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      uint8_t* row = m->owned.data() + size_t(r) * m->row_bytes;
      const uint8_t* codes = q.qweight.data() + size_t(r * in);
      for (int64_t j = 0; j < in; ++j) {
        const uint8_t c = codes[perm[size_t(j)]];
        uint8_t& byte = row[(j / 64) * 32 + (j % 32)];
        byte |= (j % 64) < 32 ? c : uint8_t(c << 4);
      }
      uint8_t* groups = row + in / 2;
      for (int64_t g = 0; g < n_groups; ++g) {
        const uint16_t s = f32_to_f16(q.scales.data[size_t(g * out + r)]);  // fp16-exact by construction
        std::memcpy(groups + 4 * g, &s, 2);
        groups[4 * g + 2] = uint8_t(q.zeros[size_t(g * out + r)]);
      }
    }
  }, 16);
  m->data = m->owned.data();
  for (const TensorView* v : {&p.qweight, &p.qzeros, &p.scales, &p.g_idx}) release_mapped(*v);
  return m;
}

// The kernel table for a matrix: the 32-weight-block SIMD kernels take blocks in pairs (and AVX-512's
// decoded-row tile, which MXFP4 goes through, 64 codes a step), so rows of an odd number of blocks use
// the reference kernels.
const Kernels& kernels_of(const QMatrix& w) {
  if ((w.format == GgmlType::Q8_0 || w.format == GgmlType::Q4_0 || w.format == GgmlType::IQ4_NL ||
       w.format == GgmlType::MXFP4) &&
      w.cols % 64 != 0)
    return kernels_scalar();
  return kernels();
}

// Quantized activations of `rows` rows (kernels.h, ActRow), reused between calls.
struct ActBuffer {
  std::vector<int8_t> q;
  std::vector<float> d, dsum16, dexp, xperm, xsum;
  std::vector<uint32_t> pairs;  // bf16 prompts
  std::vector<ActRow> rows;
};

}  // namespace

std::optional<GgmlType> kernel_type(uint32_t ggml_type) {
  for (GgmlType t : kKernelTypes)
    if (t != GgmlType::GQ4 && uint32_t(t) == ggml_type) return t;
  return std::nullopt;
}

RowParams QMatrix::params() const {
  RowParams p{cols, group_size};
  if (group_size > 0 && (group_size & (group_size - 1)) == 0) p.group_shift = __builtin_ctz(unsigned(group_size));
  else if (group_size == cols) p.group_shift = 63;
  return p;
}

std::shared_ptr<const QMatrix> make_qmatrix(const WeightSource& src, const std::string& name,
                                            std::shared_ptr<const void> keep_alive, std::string* why) {
  const std::optional<PackedWeight> p = src.packed(name);
  if (!p) {
    if (why) *why = "the source keeps no packed form of it";
    return nullptr;
  }
  QL_ASSERT(p->shape.size() == 2, "{}: packed weight of shape {}", name, shape_str(p->shape));
  if (p->kind != PackedWeight::Kind::Ggml) {
    auto m = repack_groups(*p, name, why);
    return m;
  }
  const auto f = kernel_type(p->ggml_type);
  if (!f) {
    const auto* t = ggml::find_type(p->ggml_type);
    if (why) *why = fmt::format("type {} has no kernel", t ? std::string(t->name) : std::to_string(p->ggml_type));
    return nullptr;
  }
  auto m = std::make_shared<QMatrix>();
  m->format = *f;
  m->rows = p->shape[0], m->cols = p->shape[1];
  m->row_bytes = packed_row_bytes(*f, m->cols);
  QL_ASSERT(p->nbytes == m->bytes(), "{}: {} bytes stored, {} rows of {} bytes expected", name, p->nbytes, m->rows,
            m->row_bytes);
  m->data = p->data;
  m->keep_alive = std::move(keep_alive);
  m->name = name;
  if (p->rope_heads > 0) {  // hf row h·hd + j·hd/2 + i is stored as row h·hd + 2i + j
    const int64_t hd = m->rows / p->rope_heads, half = hd / 2;
    QL_ASSERT(m->rows % p->rope_heads == 0 && hd % 2 == 0);
    m->row_map.resize(size_t(m->rows));
    for (int64_t h = 0; h < p->rope_heads; ++h)
      for (int64_t i = 0; i < half; ++i)
        for (int64_t j = 0; j < 2; ++j) m->row_map[size_t(h * hd + j * half + i)] = int32_t(h * hd + 2 * i + j);
  }
  return m;
}

void qmatrix_row(const QMatrix& w, int64_t r, float* out) {
  QL_ASSERT(r >= 0 && r < w.rows);
  const uint8_t* row = w.row(r);
  if (w.format != GgmlType::GQ4) {
    ggml::dequantize_rows(w.format, row, out, 1, w.cols);
    return;
  }
  const uint8_t* groups = row + w.cols / 2;
  for (int64_t j = 0; j < w.cols; ++j) {
    const uint8_t byte = row[(j / 64) * 32 + (j % 32)];
    const int q = (j % 64) < 32 ? (byte & 15) : (byte >> 4);
    const int64_t g = j / w.group_size;
    uint16_t s;
    std::memcpy(&s, groups + 4 * g, 2);
    out[w.col_perm.empty() ? j : w.col_perm[size_t(j)]] = f16_to_f32(s) * float(q - int(groups[4 * g + 2]));
  }
}

namespace {

// Float weights against many rows with the level's fp32 tile (Kernels::float_tile): groups of 64
// weight rows as four 16-row panels, 512 columns at a time (128 KB of panels and 24 KB of activations
// stay in L2/L1), each panel against the activation rows twelve at a time.
void float_gemm_tiled(const Kernels& k, const QMatrix& w, const float* x, int64_t rows, float* y, const float* bias) {
  constexpr int64_t kPanel = 16, kPanels = 4, kKBlock = 512;
  const int64_t out = w.rows, in = w.cols, group = kPanel * kPanels;
  const FloatPanelFn make_panel = k.float_panel[w.format];
  const RowParams rp = w.params();
  parallel_for((out + group - 1) / group, [&](int64_t g0, int64_t g1) {
    std::vector<float> panels(static_cast<size_t>(kPanels * kPanel * kKBlock));
    const uint8_t* ptrs[kPanel];
    const float* xs[kFloatTileRows];
    for (int64_t g = g0; g < g1; ++g) {
      const int64_t r0 = g * group, np = std::min(kPanels, (out - r0 + kPanel - 1) / kPanel);
      for (int64_t k0 = 0; k0 < in; k0 += kKBlock) {
        const int64_t kn = std::min(kKBlock, in - k0);
        for (int64_t p = 0; p < np; ++p) {
          const int64_t rr = r0 + p * kPanel, nr = std::min(kPanel, out - rr);
          for (int64_t i = 0; i < nr; ++i) ptrs[i] = w.row(rr + i);
          make_panel(ptrs, int(nr), rp, k0, kn, panels.data() + p * kPanel * kn);
        }
        for (int64_t t0 = 0; t0 < rows; t0 += kFloatTileRows) {
          const int na = int(std::min<int64_t>(kFloatTileRows, rows - t0));
          for (int a = 0; a < na; ++a) xs[a] = x + (t0 + a) * in + k0;
          for (int64_t p = 0; p < np; p += 2) {  // two panels (32 rows) a tile
            const int64_t rr = r0 + p * kPanel;
            k.float_tile(panels.data() + p * kPanel * kn, int(std::min(2 * kPanel, out - rr)), xs, na, kn,
                         y + t0 * out + rr, out, k0 > 0);
          }
        }
      }
      if (bias)
        for (int64_t t = 0; t < rows; ++t)
          for (int64_t r = r0; r < std::min(out, r0 + group); ++r) y[t * out + r] += bias[r];
    }
  });
}

// Prompts with bf16 products (Bf16Kernels): the activations rounded to bf16 once, then groups of 64
// weight rows and 512 columns as four 16-row panels of exact codes (or bf16 weights), two panels
// against six tokens a tile.
void bf16_gemm(const Bf16Kernels& bk, const QMatrix& w, const float* x, int64_t rows, float* y, const float* bias,
               ActBuffer& buf) {
  constexpr int64_t kPanel = 16, kPanels = 4, kKBlock = 512;
  const int64_t out = w.rows, in = w.cols, group = kPanel * kPanels;
  const RowParams rp = w.params();
  const bool plain = w.format == GgmlType::BF16;
  const int gsize = w.format == GgmlType::Q6_K ? 16 : 32;
  buf.pairs.resize(size_t(rows * in / 2));
  buf.xsum.resize(size_t(rows * in / 16));
  parallel_for(rows, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) bk.act(x + t * in, in, buf.pairs.data() + t * in / 2, buf.xsum.data() + t * in / 16);
  }, std::max<int64_t>(1, 16384 / in));
  parallel_for((out + group - 1) / group, [&](int64_t g0, int64_t g1) {
    std::vector<uint32_t> pp(static_cast<size_t>(kPanels * kPanel * kKBlock / 2));
    std::vector<float> al(static_cast<size_t>(kPanels * kPanel * kKBlock / 16)), be(al.size());
    const uint8_t* ptrs[kPanel];
    const uint32_t* xs[kBf16TileRows];
    const float* xsums[kBf16TileRows];
    for (int64_t g = g0; g < g1; ++g) {
      const int64_t r0 = g * group, np = std::min(kPanels, (out - r0 + kPanel - 1) / kPanel);
      for (int64_t k0 = 0; k0 < in; k0 += kKBlock) {
        const int64_t kn = std::min(kKBlock, in - k0);
        for (int64_t p = 0; p < np; ++p) {
          const int64_t rr = r0 + p * kPanel, nr = std::min(kPanel, out - rr);
          for (int64_t i = 0; i < nr; ++i) ptrs[i] = w.row(rr + i);
          bk.panel[w.format](ptrs, int(nr), rp, k0, kn, pp.data() + p * kPanel * kn / 2,
                                  al.data() + p * kPanel * kn / 16, be.data() + p * kPanel * kn / 16);
        }
        for (int64_t t0 = 0; t0 < rows; t0 += kBf16TileRows) {
          const int na = int(std::min<int64_t>(kBf16TileRows, rows - t0));
          for (int a = 0; a < na; ++a) {
            xs[a] = buf.pairs.data() + (t0 + a) * in / 2 + k0 / 2;
            xsums[a] = buf.xsum.data() + (t0 + a) * in / 16 + k0 / 16;
          }
          for (int64_t p = 0; p < np; p += 2) {
            const int64_t rr = r0 + p * kPanel;
            bk.tile(pp.data() + p * kPanel * kn / 2, al.data() + p * kPanel * kn / 16, be.data() + p * kPanel * kn / 16,
                    int(std::min(2 * kPanel, out - rr)), xs, xsums, na, kn, gsize, plain, y + t0 * out + rr, out, k0 > 0);
          }
        }
      }
      if (bias)
        for (int64_t t = 0; t < rows; ++t)
          for (int64_t r = r0; r < std::min(out, r0 + group); ++r) y[t * out + r] += bias[r];
    }
  });
}

// Float weights against many rows: panels widened to fp32, single-threaded sgemm per panel.
void float_gemm(const QMatrix& w, const float* x, int64_t rows, float* y, const float* bias) {
  constexpr int64_t kPanel = 64;
  const int64_t out = w.rows, in = w.cols;
  const int64_t n_panels = (out + kPanel - 1) / kPanel;
  SingleThreadedBlas one_thread;
  parallel_for(n_panels, [&](int64_t p0, int64_t p1) {
    std::vector<float> panel(size_t(kPanel * in));
    for (int64_t pi = p0; pi < p1; ++pi) {
      const int64_t r0 = pi * kPanel, nr = std::min(kPanel, out - r0);
      for (int64_t r = 0; r < nr; ++r) qmatrix_row(w, r0 + r, panel.data() + r * in);
      if (bias)
        for (int64_t t = 0; t < rows; ++t) std::copy_n(bias + r0, nr, y + t * out + r0);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(rows), int(nr), int(in), 1.0f, x, int(in), panel.data(),
                  int(in), bias ? 1.0f : 0.0f, y + r0, int(out));
    }
  });
}

// x [rows, w.cols] itself, or for act-order GQ4 its columns in the packed order (kept in buf.xperm).
const float* in_packed_column_order(const QMatrix& w, const float* x, int64_t rows, ActBuffer& buf) {
  if (w.col_perm.empty()) return x;
  const int64_t in = w.cols;
  buf.xperm.resize(size_t(rows * in));
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t j = 0; j < in; ++j) buf.xperm[size_t(t * in + j)] = x[t * in + w.col_perm[size_t(j)]];
  return buf.xperm.data();
}

// The activation rows the kernels read for x [rows, in]: x itself (float formats) or its 8-bit
// quantization by k.quantize_act, kept in buf.
const ActRow* prepare_acts(const Kernels& k, bool float_acts, const float* x, int64_t rows, int64_t in,
                           const std::string& name, ActBuffer& buf) {
  buf.rows.assign(size_t(rows), ActRow{});
  if (float_acts) {
    for (int64_t t = 0; t < rows; ++t) buf.rows[size_t(t)].x = x + t * in;
    return buf.rows.data();
  }
  QL_ASSERT(in % 32 == 0, "{}: {} columns, not a multiple of 32", name, in);
  buf.q.resize(size_t(rows * in));
  buf.d.resize(size_t(rows * in / kActBlock));
  buf.dsum16.resize(size_t(rows * in / 16));
  buf.dexp.resize(size_t(rows * in / 4));
  parallel_for(rows, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t)
      k.quantize_act(x + t * in, in, buf.q.data() + t * in, buf.d.data() + t * in / kActBlock,
                     buf.dsum16.data() + t * in / 16, buf.dexp.data() + t * in / 4);
  }, std::max<int64_t>(1, 16384 / in));
  for (int64_t t = 0; t < rows; ++t)
    buf.rows[size_t(t)] = ActRow{buf.q.data() + t * in, buf.d.data() + t * in / kActBlock,
                                 buf.dsum16.data() + t * in / 16, buf.dexp.data() + t * in / 4, nullptr};
  return buf.rows.data();
}

// Generation (rows ≤ kMaxActRows): every job's weight rows streamed once against activations
// quantized once for all of them (the jobs share kernels, activation kind and column order).
void generation_pass(std::span<const QMatmulJob> jobs, const float* x, int64_t rows) {
  const QMatrix& w0 = *jobs[0].w;
  const Kernels& k = kernels_of(w0);
  const bool fa = float_acts(w0.format);
  const int64_t in = w0.cols;
  thread_local ActBuffer caller_buf;
  ActBuffer& buf = caller_buf;
  x = in_packed_column_order(w0, x, rows, buf);
  const ActRow* acts = prepare_acts(k, fa, x, rows, in, w0.name, buf);
  // The threads split the bytes of all matrices: part p takes the rows that start in its byte range.
  std::vector<size_t> first_byte(jobs.size() + 1, 0);
  for (size_t j = 0; j < jobs.size(); ++j) first_byte[j + 1] = first_byte[j] + jobs[j].w->bytes();
  const size_t total = first_byte.back();
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(num_threads(), int64_t(total / 16384)));
  parallel_for(parts, [&](int64_t p0, int64_t p1) {
    const size_t lo = total * size_t(p0) / size_t(parts), hi = total * size_t(p1) / size_t(parts);
    float tmp[kMaxActRows];
    for (size_t j = 0; j < jobs.size(); ++j) {
      const QMatrix& w = *jobs[j].w;
      const size_t b = first_byte[j], rb = w.row_bytes;
      // rows r with b + r·rb in [lo, hi)
      const auto first_row_at = [&](size_t byte) {
        return byte <= b ? int64_t(0) : std::min<int64_t>(w.rows, int64_t((byte - b + rb - 1) / rb));
      };
      const int64_t r0 = first_row_at(lo), r1 = first_row_at(hi);
      const DotFn dot = k.dot[w.format];
      const GemvFn gemv = k.gemv[w.format];
      const RowParams rp = w.params();
      const int64_t out = w.rows;
      float* y = jobs[j].y;
      const float* bias = jobs[j].bias;
      if (rows == 1 && gemv) {  // the whole range in one call (same numbers as dot row by row)
        gemv(w.data, w.row_bytes, w.row_map.empty() ? nullptr : w.row_map.data(), r0, r1, acts[0], rp, y);
        if (bias)
          for (int64_t r = r0; r < r1; ++r) y[r] += bias[r];
        continue;
      }
      for (int64_t r = r0; r < r1; ++r) {
        dot(w.row(r), acts, int(rows), rp, tmp);
        for (int64_t t = 0; t < rows; ++t) y[t * out + r] = tmp[t] + (bias ? bias[r] : 0.0f);
      }
    }
  }, 1);
}


}  // namespace

void qmatmul(const QMatrix& w, const float* x, int64_t rows, float* y, const float* bias) {
  if (rows <= kMaxActRows) {  // generation: stream W once
    const QMatmulJob job{&w, y, bias};
    generation_pass(std::span<const QMatmulJob>(&job, 1), x, rows);
    return;
  }
  const int64_t out = w.rows, in = w.cols;
  const bool fa = float_acts(w.format);
  // The caller's buffers; references, because a thread_local named inside the worker lambdas below
  // would be each worker's own (empty) instance.
  thread_local ActBuffer caller_buf;
  ActBuffer& buf = caller_buf;
  x = in_packed_column_order(w, x, rows, buf);
  if (rows > kMaxActRows) {  // prompts: bf16 or fp32 tiles where the level has them
    // Not for BF16 checkpoints: they are the reference weights, and rounding the activations to bf16
    // would move their perplexity away from transformers' (the fp32 tiles keep it within 1e-5).
    const Bf16Kernels* bk = bf16_kernels();
    if (bk && !fa && bk->panel[w.format] && in % 256 == 0 && kernels_of(w).isa == Isa::Avx512) {
      bf16_gemm(*bk, w, x, rows, y, bias, buf);
      return;
    }
    const Kernels& kt = kernels_of(w);
    if (kt.float_tile && kt.float_panel[w.format] && (fa || in % 256 == 0)) {
      float_gemm_tiled(kt, w, x, rows, y, bias);
      return;
    }
    if (fa) {
      float_gemm(w, x, rows, y, bias);
      return;
    }
  }
  const Kernels& k = kernels_of(w);
  const RowParams rp = w.params();
  const ActRow* acts = prepare_acts(k, fa, x, rows, in, w.name, buf);
  // Prompt: each weight row decoded once (DecodedRow) per product, panels of kPanel rows against all
  // rows of x in tiles of 4 × 4.
  constexpr int64_t kPanel = 16;
  const int64_t n_panels = (out + kPanel - 1) / kPanel;
  const DecodeFn decode = k.decode[w.format];
  const GemmTileFn tile = k.gemm_tile[w.format];
  parallel_for(n_panels, [&](int64_t p0, int64_t p1) {
    std::vector<uint8_t> u(static_cast<size_t>(kPanel * in));
    std::vector<float> alpha(static_cast<size_t>(kPanel * in / 4)), beta(static_cast<size_t>(kPanel * in / 16));
    DecodedRow dec[kPanel];
    for (int64_t r = 0; r < kPanel; ++r)
      dec[r] = DecodedRow{u.data() + r * in, alpha.data() + r * in / 4, beta.data() + r * in / 16};
    for (int64_t pi = p0; pi < p1; ++pi) {
      const int64_t r0 = pi * kPanel, r1 = std::min(out, r0 + kPanel);
      for (int64_t r = r0; r < r1; ++r) decode(w.row(r), rp, dec[r - r0]);
      for (int64_t t0 = 0; t0 < rows; t0 += kMaxActRows) {
        const int na = int(std::min<int64_t>(kMaxActRows, rows - t0));
        for (int64_t r = r0; r < r1; r += kMaxActRows) {
          const int nr = int(std::min<int64_t>(kMaxActRows, r1 - r));
          tile(dec + (r - r0), nr, acts + t0, na, in, y + t0 * out + r, out);
        }
      }
      if (bias)
        for (int64_t t = 0; t < rows; ++t)
          for (int64_t r = r0; r < r1; ++r) y[t * out + r] += bias[r];
    }
  });
}

void qmatmul_many(std::span<const QMatmulJob> jobs, const float* x, int64_t rows) {
  QL_ASSERT(!jobs.empty());
  const QMatrix& w0 = *jobs[0].w;
  // One pass needs one activation quantization for all: the same kernel table, the same kind of
  // activations, the same column order. Otherwise (and for prompts) one qmatmul each.
  bool fused = rows <= kMaxActRows && jobs.size() > 1;
  for (const QMatmulJob& j : jobs) {
    QL_ASSERT(j.w->cols == w0.cols, "{}: {} columns, {} has {}", j.w->name, j.w->cols, w0.name, w0.cols);
    fused = fused && &kernels_of(*j.w) == &kernels_of(w0) &&
            float_acts(j.w->format) == float_acts(w0.format) && j.w->col_perm == w0.col_perm;
  }
  if (!fused) {
    for (const QMatmulJob& j : jobs) qmatmul(*j.w, x, rows, j.y, j.bias);
    return;
  }
  generation_pass(jobs, x, rows);
}

}  // namespace quantllm::cpu
