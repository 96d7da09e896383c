// Memory and time estimates of group-wise runs (see estimate.h).
#include "methods/estimate.h"

#include "core/threads.h"
#include "formats/quantized_model.h"
#include "quant/blas_single_thread.h"
#include "runtime/forward.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <fstream>
#include <set>
#include <sstream>

namespace quantllm {

RunEstimate estimate_group_method(const LoadedModel& model, const QuantizeRequest& opt) {
  const ModelConfig& c = model.config;
  const QuantMethod method = group_method(opt);
  const bool awq_scale = opt.awq.scale_first;
  const bool calibrated = method != QuantMethod::RTN || awq_scale;
  const double N = calibrated ? double(opt.calib.nsamples) * double(opt.calib.seqlen) : 0.0;  // tokens
  const double T = double(opt.calib.seqlen);
  const double chunk = std::max(1.0, std::floor(double(opt.device.chunk_tokens) / T)) * T;
  const double C = std::min(chunk, N);
  const double d = double(c.hidden);
  // The largest block (MoE models may start with dense ones).
  int64_t largest = 0;
  double block_params = 0, max_in = 0;
  for (int64_t i = 0; i < c.n_layers; ++i) {
    double params = 0;
    for (const LinearSlot& l : c.block(i).linears) params += double(l.in) * double(l.out);
    if (params > block_params) block_params = params, largest = i;
  }
  const BlockSpec& spec = c.block(largest);
  for (const LinearSlot& l : spec.linears) max_in = std::max(max_in, double(l.in));
  // The Hessians a true-sequential group holds at once (a MoE: one per expert).
  double held_hessians = 0;
  for (const auto& group : spec.sequential_groups(true)) {
    std::set<int> points;
    for (int slot : group) points.insert(spec.linears[size_t(slot)].input);
    double h = 0;
    for (int pt : points) h += double(spec.points[size_t(pt)].width) * double(spec.points[size_t(pt)].width);
    held_hessians = std::max(held_hessians, h);
  }
  // Per token of a forward chunk: x, h and the residual; each sub-layer's input linears' outputs
  // (attention: q, k, v) or, for a feed-forward, its intermediate three times (gate, up and the
  // activation; OPT: fc1 and its ReLU). AWQ's search sample: every point's values and each sub-layer's
  // mid as the reference output.
  double chunk_row = 3 * d, sample_row = 0;
  for (const Sublayer& s : spec.sublayers) {
    if (s.kind == SublayerKind::Moe) {  // router logits, an expert's input, gate, up, output (at most every row)
      const double mid = double(spec.points[size_t(s.experts.front().mid)].width);
      chunk_row += double(s.experts.size()) + 2 * d + 2 * mid;
      sample_row += d;
      continue;
    }
    const double mid = double(spec.points[size_t(s.mid)].width);
    if (s.kind == SublayerKind::Ffn) chunk_row += 3 * mid;
    else
      for (const int l : s.in_linears) chunk_row += double(spec.linears[size_t(l)].out);
    sample_row += mid;
  }
  for (const Point& p : spec.points) sample_row += double(p.width);
  double file_bytes = 0;  // a generated (synth:) source maps no file
  if (model.weights->mapped())
    for (const auto& n : model.weights->names()) file_bytes += double(model.weights->stored_bytes(n));

  RunEstimate e;
  e.memory.emplace_back("checkpoint pages (memory-mapped)", file_bytes);
  e.memory.emplace_back("program, libraries, thread buffers", 64.0 * (1 << 20));
  e.memory.emplace_back("one block in fp32, and the copy being quantized", 2 * 4 * block_params);
  if (calibrated) {
    e.memory.emplace_back("calibration hidden states [tokens, hidden] fp32", 4 * N * d);
    e.memory.emplace_back("one forward chunk's activations", 4 * C * chunk_row);
    e.memory.emplace_back("token embeddings while embedding the windows", 4 * double(c.vocab) * d);
  }
  if (method == QuantMethod::GPTQ)
    e.memory.emplace_back("Hessians of a sequential group and GPTQ's workspace (fp64)",
                          8 * (held_hessians + 2 * max_in * max_in));  // + H permuted, its factor
  if (method == QuantMethod::AWQ || awq_scale) {
    const double S = std::min(N, std::max(T, std::floor(double(opt.awq.search_tokens) / T) * T));
    e.memory.emplace_back("AWQ search sample: the linear inputs and reference outputs", 4 * S * sample_row);
  }
  // A finished block's codes (a byte each), fp32 scales, int32 zeros and g_idx and their packed copy
  // while its shard is written in the background, next to the block being quantized: at most two blocks'
  // (the output is streamed, formats/quantized_dir_writer.h).
  double block_codes = 0;
  const QuantParams qp = quant_params(opt);
  for (int64_t i = 0; i < c.n_layers; ++i) {
    double codes = 0;
    for (const LinearSlot& l : c.block(i).linears)
      if (l.quantized) {
        // (the options are checked after the estimate: a group size of 0 must not divide here)
        const double groups = qp.group_size > 0 ? std::ceil(double(l.in) / double(qp.group_size)) : 1.0;
        const double raw = double(l.in) * double(l.out) + 8 * groups * double(l.out) + 4 * double(l.in);
        codes += raw + double(packed_layer_bytes(l.in, l.out, int64_t(groups), qp.bits));
      }
    block_codes = std::max(block_codes, codes);
  }
  e.memory.emplace_back("quantized blocks in flight: the one being built, the one being written", 2 * block_codes);
  for (const auto& [what, bytes] : e.memory) e.peak_bytes += bytes;

  // Arithmetic: a forward pass over all tokens costs 2·params + attention per token and block.
  const double attn = 4 * T / 2 * double(c.q_dim());  // scores and values, causal half
  const double fwd = N * (2 * block_params + attn);
  const double blocks = double(c.n_layers);
  std::set<int> inputs;
  double gptq = 0, hess = 0;
  for (const LinearSlot& l : spec.linears) {
    const double in = double(l.in), out = double(l.out);
    gptq += 2 * in * in * in + 4 * out * in * in;  // inverse, Cholesky; error feedback (RTN comparison too)
    if (inputs.insert(l.input).second) hess += 2 * N * in * in;
  }
  double per_block = 0;
  if (method == QuantMethod::GPTQ) per_block += (opt.gptq.true_sequential ? 3.0 : 2.0) * fwd + hess + gptq;
  if (method == QuantMethod::AWQ || awq_scale) {
    const double S = std::min(N, double(opt.awq.search_tokens));
    // Observation pass and advance; 20 grid points over the group outputs; 11 clip candidates a layer.
    per_block += 2 * fwd + 20 * S * 2 * block_params + 11 * 512 * 2 * block_params * 2;
  }
  e.flops = per_block * blocks;
  return e;
}

double measure_matmul_rate() {
  // Windows of 512 tokens through a 512×1536 layer, one product per thread, as linear() runs them.
  const int m = 256, k = 512, n = 1536, threads = std::max(1, num_threads());
  std::vector<float> a(size_t(m) * k, 0.5f), b(size_t(k) * n, 0.25f);
  std::vector<std::vector<float>> out(size_t(threads), std::vector<float>(size_t(m) * n));
  SingleThreadedBlas single;
  int reps = 0;
  const auto t0 = std::chrono::steady_clock::now();
  double secs = 0;
  while (secs < 0.1) {
    parallel_for(threads, [&](int64_t t0_, int64_t t1_) {
      for (int64_t t = t0_; t < t1_; ++t)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f,
                    out[size_t(t)].data(), n);
    }, 1);
    ++reps;
    secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  return 2.0 * m * n * k * threads * reps / secs;
}

double available_memory_bytes() {
  std::ifstream f("/proc/meminfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("MemAvailable:", 0) == 0) {
      std::istringstream ss(line.substr(13));
      double kb = 0;
      ss >> kb;
      return kb * 1024;
    }
  }
  return 0;
}

}  // namespace quantllm
