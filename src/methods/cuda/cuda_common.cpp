// Shared pieces of the GPU drivers (see cuda_common.h).
#include "methods/cuda/cuda_common.h"

#include "runtime/cuda/gptq.h"
#include "runtime/cuda/kernels.h"

#include <fmt/format.h>

#include <set>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace quantllm::cuda {

BlockPrefetcher::~BlockPrefetcher() {
  if (pending_.valid()) {
    pending_.wait();
    try {
      BlockWeights w = pending_.get();
      unpin(w);
    } catch (...) {  // a load error of a block nobody asked for any more
    }
  }
}

BlockWeights BlockPrefetcher::load(int layer, bool check) const {
  BlockWeights w = load_block(model_.config, *model_.weights, layer);
  if (check) check_block_finite(model_.config, w, layer);
  for (auto& l : w.linear)
    if (!l.w.empty() && cudaHostRegister(l.w.ptr(), size_t(l.w.numel()) * sizeof(float), cudaHostRegisterDefault) != cudaSuccess) {
      (void)cudaGetLastError();  // not pinned: the upload is merely slower
    }
  return w;
}

void BlockPrefetcher::unpin(BlockWeights& w) {
  for (auto& l : w.linear)
    if (!l.w.empty() && cudaHostUnregister(l.w.ptr()) != cudaSuccess) (void)cudaGetLastError();
}

void BlockPrefetcher::prefetch(int layer) {
  if (pending_.valid() || layer >= int(model_.config.n_layers)) return;
  next_ = layer;
  pending_checked_ = check_;
  pending_ = std::async(std::launch::async, [this, layer, check = check_] { return load(layer, check); });
}

BlockWeights BlockPrefetcher::take(int layer, bool check_this) {
  const bool check = check_ && check_this;
  BlockWeights w;
  if (pending_.valid() && next_ == layer) {
    w = pending_.get();  // rethrows a load error of that block
    if (check && !pending_checked_) check_block_finite(model_.config, w, layer);
  } else {
    if (pending_.valid()) {
      try {
        BlockWeights stale = pending_.get();
        unpin(stale);
      } catch (...) {
      }
    }
    w = load(layer, check);
  }
  if (layer + 1 < int(model_.config.n_layers)) {
    next_ = layer + 1;
    // The next block is checked as this one was (a driver asks the same of every block; take() checks
    // a block that was prefetched unchecked if it is asked to).
    pending_checked_ = check;
    pending_ = std::async(std::launch::async, [this, l = layer + 1, check] { return load(l, check); });
  } else {
    next_ = -1;
  }
  return w;
}

MemoryPlan plan_memory(const Context& ctx, const ModelConfig& c, int64_t n_windows, int64_t T,
                       const BackendOptions& opt, bool keep_attention) {
  MemoryPlan p;
  p.chunk_windows = std::clamp<int64_t>(opt.gpu_chunk_tokens / T, 1, n_windows);
  const int64_t rows = n_windows * T, crow = p.chunk_windows * T;
  const int64_t f = sizeof(float);
  // The largest of every block (MoE models start dense, or not).
  // Per chunk: h, the residual and one more row of the hidden size; per sub-layer its mid twice (the
  // mid and a gate or the attention output kept), and attention's k and v; a MoE sub-layer: its output, the
  // router's logits and an expert's input, mid, gate and output (at most every row each).
  int64_t per_row = 0, attention_mid = 0;
  // One block's weights; the Hessians a true-sequential group holds at once (a MoE: one per expert) in f64;
  // the largest input's factorization work (see `hessian` below); the largest
  // layer's GPTQ work (weights, dequantized, objective) — 4 copies of [out, in].
  int64_t block = 0, max_in = 0, max_layer = 0, held_hessians = 0;
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const BlockSpec& spec = c.block(i);
    int64_t row = 3 * c.hidden;
    for (const Sublayer& s : spec.sublayers) {
      if (s.kind == SublayerKind::Moe) {
        const int64_t width = spec.points[size_t(s.experts.front().mid)].width;
        row += c.hidden + int64_t(s.experts.size()) + 2 * c.hidden + 3 * width;
        continue;
      }
      const int64_t mid = spec.points[size_t(s.mid)].width;
      row += 2 * mid;
      if (s.qkv >= 0) row += spec.linears[size_t(s.qkv)].out;          // Phi's fused outputs before the split
      if (s.gate_up >= 0) row += spec.linears[size_t(s.gate_up)].out;
      if (s.kind == SublayerKind::Attention) {
        row += 2 * c.kv_dim();
        attention_mid = std::max(attention_mid, mid);
      }
    }
    per_row = std::max(per_row, row);
    int64_t bytes = 0;
    for (const LinearSlot& l : spec.linears) {
      const int64_t n = l.in * l.out;
      bytes += n * f;
      max_in = std::max(max_in, l.in);
      max_layer = std::max(max_layer, n);
    }
    block = std::max(block, bytes);
    for (const auto& group : spec.sequential_groups(true)) {
      std::set<int> points;
      for (int slot : group) points.insert(spec.linears[size_t(slot)].input);
      int64_t h = 0;
      for (int pt : points) h += spec.points[size_t(pt)].width * spec.points[size_t(pt)].width * 8;
      held_hessians = std::max(held_hessians, h);
    }
  }
  p.activation_bytes = size_t(rows * c.hidden * f + (keep_attention ? rows * attention_mid * f : 0));
  const int64_t chunk = crow * per_row * f;
  const int64_t scores = std::max<int64_t>(int64_t(256) << 20, c.n_heads * T * T * f);
  // While collecting, one fp32 chunk product shared by the held Hessians (and, under bf16, the chunk in
  // bf16); while factoring (the product released), what prepare_hessian holds.
  const int64_t collecting = max_in * max_in * 4 + (opt.gpu_bf16 ? crow * max_in * 2 : 0);
  const int64_t hessian = held_hessians + std::max(collecting, factorization_bytes(max_in));
  p.working_bytes = size_t(chunk + scores + block + hessian + 4 * max_layer * f);
  const size_t free_b = ctx.free_memory();
  p.on_device = !opt.gpu_activations_on_host &&
                double(p.activation_bytes + p.working_bytes) <= 0.92 * double(free_b);
  return p;
}

void PhaseClock::mark(const std::string& phase) {
  ctx_.sync();
  const auto now = std::chrono::steady_clock::now();
  const double s = std::chrono::duration<double>(now - t_).count();
  t_ = now;
  for (auto& [name, total] : totals_)
    if (name == phase) {
      total += s;
      return;
    }
  totals_.emplace_back(phase, s);
}

std::string PhaseClock::report() const {
  std::string r;
  for (const auto& [name, total] : totals_) r += fmt::format("{}{} {:.2f}s", r.empty() ? "" : ", ", name, total);
  return r;
}

void embed_on_device(const Context& ctx, const LoadedModel& model, const CalibWindows& windows, ActivationStore& X,
                     int64_t chunk_rows) {
  const ModelConfig& c = model.config;
  const ArchSpec& a = *c.arch;
  for (int32_t id : windows.tokens)
    if (id < 0 || id >= c.vocab) fail("token id {} is outside the vocabulary (size {})", id, c.vocab);
  const int64_t T = windows.seqlen, rows_all = windows.n * T, e = c.word_embed_proj_dim, d = c.hidden;
  std::vector<float> host_table = model.weights->load(std::string(a.embed_tokens) + ".weight").data;
  if (a.embed_scale_sqrt_hidden) {  // Gemma: × √hidden in fp32, the same product as the CPU's embed()
    const float scale = float(std::sqrt(double(c.hidden)));
    for (float& v : host_table) v *= scale;
  }
  const DeviceArray<float> table = to_device(ctx, host_table, "embeddings");
  DeviceArray<float> positions, project_in, tmp;
  if (a.pos == PosKind::Learned) {
    if (T > c.max_positions) fail("sequence of {} positions exceeds the model's {} learned positions", T, c.max_positions);
    positions = to_device(ctx, model.weights->load(std::string(a.embed_positions) + ".weight").data, "positions");
  }
  const bool project = e != d && !a.project_in.empty();
  if (project) {
    project_in = to_device(ctx, model.weights->load(std::string(a.project_in) + ".weight").data, "project_in");
    tmp = DeviceArray<float>(chunk_rows * e, "embeddings");
  }
  DeviceArray<int32_t> tok(chunk_rows, "tokens");
  for (int64_t r0 = 0; r0 < rows_all; r0 += chunk_rows) {
    const int64_t rows = std::min(chunk_rows, rows_all - r0);
    ctx.upload(tok.data(), windows.tokens.data() + r0, size_t(rows) * sizeof(int32_t));
    float* x = X.chunk(r0, rows, false);
    if (!project) {
      k::embed_rows(table.data(), tok.data(), rows, e, positions.data(), T, a.position_offset, x, ctx.stream());
    } else {
      // OPT-350m: x = embed · project_inᵀ (fp32 products, as the CPU), then the positions.
      k::embed_rows(table.data(), tok.data(), rows, e, nullptr, T, 0, tmp.data(), ctx.stream());
      ctx.gemm(false, true, rows, d, e, 1.0f, tmp.data(), e, project_in.data(), e, 0.0f, x, d, Math::FP32);
      if (!positions.empty()) k::add_positions(x, positions.data(), rows, d, T, a.position_offset, ctx.stream());
    }
    X.commit(r0, rows);
  }
  ctx.sync();
}

void print_gpu_plan(const Context& ctx, const MemoryPlan& plan, const BackendOptions& opt) {
  constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
  std::fprintf(stderr,
               "quantllm: GPU %s (%.1f GiB): activations %.2f GiB in %s memory, ~%.2f GiB working, %lld windows a "
               "chunk, %s products\n",
               ctx.device_name().c_str(), double(ctx.total_memory()) / kGiB, double(plan.activation_bytes) / kGiB,
               plan.on_device ? "device" : "pinned host", double(plan.working_bytes) / kGiB,
               (long long)plan.chunk_windows,
               opt.gpu_bf16 ? "bf16 forward and Hessian products, tf32 GPTQ" : opt.gpu_tf32 ? "tf32" : "fp32");
}

}  // namespace quantllm::cuda
