// The method registry (see registry.h) and the group-wise methods' run and plan: quantize the model with
// rtn / gptq / awq and write the GPTQ or AWQ directory.
#include "methods/registry.h"

#include "core/error.h"
#include "core/threads.h"
#include "formats/quantized_model.h"
#include "methods/estimate.h"
#include "methods/group_methods.h"

#include <fmt/format.h>

#include <chrono>

namespace quantllm {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

uint64_t path_bytes(const std::filesystem::path& p) {
  uint64_t total = 0;
  std::error_code ec;
  if (std::filesystem::is_regular_file(p, ec)) return std::filesystem::file_size(p, ec);
  for (const auto& e : std::filesystem::recursive_directory_iterator(p, ec))
    if (e.is_regular_file(ec)) total += e.file_size(ec);
  return total;
}

HfQuantFormat format_of(const QuantizeRequest& r) { return hf_quant_format(r.format, group_method(r)); }

void validate_group(const QuantizeRequest& r) {
  const int bits = r.bits.value_or(4);
  if (bits < 2 || bits > 8) fail("--bits must be between 2 and 8, got {}", bits);
  if (!(r.gptq.damp > 0) || r.gptq.damp > 1) fail("--damp must be in (0, 1], got {}", r.gptq.damp);
  if (r.awq.scale_first && r.method == "awq")
    fail("--awq-scale composes AWQ scaling with --method gptq or rtn; --method awq scales already");
  if (!r.awq.clip && r.method != "awq") fail("--awq-no-clip applies to --method awq");
  if (!r.awq.duo_scaling && r.method != "awq" && !r.awq.scale_first)
    fail("--awq-no-duo-scaling applies to --method awq or --awq-scale");
  if (r.method == "awq" && r.mse)
    fail("--mse does not apply to --method awq (AWQ searches each group's clipping range itself)");
  if (r.method == "awq" && r.gptq.act_order)
    fail("--act-order is a GPTQ option; --method awq quantizes groups of contiguous columns");
  const HfQuantFormat format = format_of(r);
  if (format == HfQuantFormat::AwqGemm && (bits != 4 || r.gptq.act_order))
    fail("--format awq_gemm stores 4-bit weights in contiguous groups (no --act-order)");
  if (!r.gguf.imatrix.empty()) fail("--imatrix applies to --method gguf");
}

QuantizeResult run_group(const LoadedModel& m, const QuantizeRequest& r, const ProgressCallback& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const RunEstimate est = estimate_group_method(m, r);
  const double avail = available_memory_bytes();
  if (r.device.device == "cpu" && avail > 0 && est.peak_bytes > avail)
    fail("{} {}-bit with {} × {} calibration tokens needs about {} of memory, {} is available (--dry-run itemizes "
         "it); lower --nsamples or --seqlen", r.method, quant_params(r).bits, r.calib.nsamples, r.calib.seqlen,
         format_bytes(uint64_t(est.peak_bytes)), format_bytes(uint64_t(avail)));
  BlockProgress bp;
  if (progress) bp = [&](int done, int total, const std::string& detail) { progress(done, total, detail); };
  // Written as it goes: each block's shard as soon as the block is final (formats/quantized_dir_writer.h).
  const QuantizedModel qm = quantize_group_method(m, r, bp, format_of(r));
  QuantizeResult res;
  res.write_seconds = qm.finish_seconds;
  res.out = r.out;
  res.method = r.method;
  // Size and bits per weight of the quantized layers (codes + scales + zeros + g_idx).
  const QuantParams qp = quant_params(r);
  int64_t params = 0;
  size_t qbytes = 0;
  for (int64_t i = 0; i < m.config.n_layers; ++i) {
    const BlockSpec& spec = m.config.block(i);
    for (const LinearSlot& l : spec.linears) {
      if (!l.quantized) continue;
      const int64_t groups = qp.group_size > 0 ? (l.in + qp.group_size - 1) / qp.group_size : 1;
      params += l.in * l.out;
      qbytes += packed_layer_bytes(l.in, l.out, groups, qp.bits);
    }
  }
  res.bits_per_weight = params ? 8.0 * double(qbytes) / double(params) : 0;
  res.bytes = path_bytes(r.out);
  res.layers = qm.stats;
  res.seconds = seconds_since(t0);
  return res;
}

QuantizePlan plan_group(const LoadedModel& m, const QuantizeRequest& r) {
  const ModelConfig& c = m.config;
  const QuantParams p = quant_params(r);
  validate_layers(c, p);
  QuantizePlan plan;
  plan.method = r.method;
  double params = 0, bytes = 0;
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const BlockSpec& spec = c.block(i);
    for (size_t l = 0; l < spec.linears.size(); ++l) {
      if (!spec.linears[l].quantized) continue;
      const int64_t in = spec.linears[l].in, out = spec.linears[l].out;
      const int64_t groups = group_count(p, in);
      // codes, fp16 scales, packed zeros, g_idx (what save_quantized writes)
      const double b = double(packed_layer_bytes(in, out, groups, p.bits));
      params += double(in * out);
      bytes += b;
      plan.layers.push_back({spec.linear_tensor(int(l)), {out, in}, fmt::format("{}-bit", p.bits), p.bits, groups,
                             uint64_t(b), ""});
    }
  }
  plan.bytes = uint64_t(bytes);
  plan.bits_per_weight = 8 * bytes / params;
  const RunEstimate est = estimate_group_method(m, r);
  plan.memory = est.memory;
  plan.peak_bytes = est.peak_bytes;
  plan.available_bytes = available_memory_bytes();
  plan.flops = est.flops;
  plan.matmul_flops_per_second = measure_matmul_rate();
  plan.seconds_estimate = est.flops / plan.matmul_flops_per_second;
  return plan;
}

}  // namespace

const std::vector<MethodEntry>& method_registry() {
  static const std::vector<MethodEntry> table = {
      {"rtn", "round-to-nearest integer groups (no calibration)", "-", "AWQ scaling (--awq-scale)",
       "int-N groups, nearest", "GPTQ directory", false, validate_group, run_group, plan_group},
      {"gptq", "GPTQ: Hessian-aware integer groups (Frantar et al. 2022)", "Hessians XᵀX",
       "AWQ scaling (--awq-scale)", "int-N groups, GPTQ", "GPTQ directory", true, validate_group, run_group,
       plan_group},
      {"awq", "AWQ: activation-aware scaling, clipped integer groups (Lin et al. 2024)", "Σ|x| and a search sample",
       "AWQ scaling", "int-N groups, clipped", "AWQ (GEMM) directory", true, validate_group, run_group, plan_group},
      {"gguf", "llama.cpp's GGUF types and mixes, byte for byte", "- (an importance matrix file)",
       "AWQ scaling (--awq-scale)", "GGML blocks", "GGUF file", false, validate_gguf, run_gguf, plan_gguf_method},
      {"fp8", "float8 e4m3 weights, one scale per output channel (vLLM's FP8 W8A16)", "-", "-", "fp8 e4m3, nearest",
       "compressed-tensors (float-quantized)", false, validate_fp8, run_fp8, plan_fp8},
  };
  return table;
}

const MethodEntry& find_method(std::string_view name) {
  std::string known;
  for (const auto& m : method_registry()) {
    if (m.name == name) return m;
    known += (known.empty() ? "" : ", ") + std::string(m.name);
  }
  fail("--method '{}' is not known (known: {})", name, known);
}

bool needs_calibration(const QuantizeRequest& r) {
  return find_method(r.method).always_calibrated || r.awq.scale_first || (r.method == "gguf" && r.gguf.gptq);
}

}  // namespace quantllm
