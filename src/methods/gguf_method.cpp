// The "gguf" method (see registry.h): AWQ's scaling first when asked, llama.cpp's plan of a type per
// tensor (formats/gguf_plan.h), and the GGUF writer fed by llama.cpp's GGML rounder (with an importance
// matrix when given) — or, with --gptq, by the blocks GPTQ rounded (methods/gguf_gptq.cpp).
#include "core/error.h"
#include "formats/gguf_model.h"
#include "formats/gguf_target.h"
#include "methods/gguf_target_probe.h"
#include "io/imatrix.h"
#include "methods/awq.h"
#include "methods/group_methods.h"
#include "methods/imatrix.h"
#include "methods/registry.h"
#include "model/gguf_names.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>

namespace quantllm {

namespace {

GGUFPlanOptions plan_options(const QuantizeRequest& r) {
  GGUFPlanOptions po;
  po.type = r.gguf.type.empty() ? "Q4_K_M" : r.gguf.type;
  po.pure = r.gguf.pure;
  for (const auto& spec : r.gguf.tensor_types) po.tensor_types.push_back(parse_tensor_type_override(spec));
  if (!r.gguf.output_tensor_type.empty()) po.output_type = parse_ggml_type(r.gguf.output_tensor_type, "--output-tensor-type");
  if (!r.gguf.token_embedding_type.empty())
    po.token_embedding_type = parse_ggml_type(r.gguf.token_embedding_type, "--token-embedding-type");
  po.has_imatrix = !r.gguf.imatrix.empty();
  return po;
}

// The request of AWQ's scale search in front of a GGUF mix: the mix's bit width on groups of 32 (the
// K-quants' and legacy types' sub-block) unless --bits / --group-size say otherwise.
QuantizeRequest awq_scale_request(const QuantizeRequest& r, const GGUFMix& mix) {
  const ggml::QuantTraits& t = ggml::traits(mix.default_type);
  if (t.block_size == 1) fail("--awq-scale: type {} is not quantized; nothing to scale for", mix.name);
  QuantizeRequest s = r;
  s.method = "rtn";
  s.bits = r.bits.value_or(std::clamp(int(8 * t.type_size / t.block_size), 2, 8));
  s.group_size = r.group_size.value_or(32);
  return s;
}

// For each row of a GGUF matrix, the HF row it holds (llama.cpp stores q/k rows of rotary models
// permuted; every other matrix keeps HF's order).
std::vector<int64_t> file_row_order(const ModelConfig& c, const std::string& hf_name, int64_t nrows) {
  Tensor idx({nrows, 1});
  for (int64_t i = 0; i < nrows; ++i) idx.data[size_t(i)] = float(i);
  if (const int64_t heads = gguf_rope_permute_heads(c, hf_name)) idx = permute_rope_rows(idx, heads, false);
  std::vector<int64_t> order(static_cast<size_t>(nrows));
  for (int64_t i = 0; i < nrows; ++i) order[size_t(i)] = int64_t(idx.data[size_t(i)]);
  return order;
}

// --target-bpw: the importance its error estimates weigh with, when the caller has not loaded one — the
// --imatrix file, or with --gptq one computed from the calibration text (as llama-imatrix would: nsamples
// chunks of seqlen tokens).
std::optional<ImportanceMatrix> target_importance(const LoadedModel& m, const QuantizeRequest& r) {
  if (!r.gguf.imatrix.empty()) {
    ImportanceMatrix im = ImportanceMatrix::load(r.gguf.imatrix);
    check_imatrix_fits(im, m.config, r.gguf.imatrix.string());
    return im;
  }
  if (!r.gguf.gptq) return std::nullopt;
  ImatrixOptions o;
  o.ctx = r.calib.seqlen;
  o.chunks = r.calib.nsamples;
  o.device = r.device.device;
  return compute_imatrix(m, r.calib.source, o);
}

// The plan of every tensor: llama.cpp's mix rules, or with --target-bpw the measured choice.
std::vector<PlannedTensor> make_plan(const LoadedModel& m, const QuantizeRequest& r, const GGUFPlanOptions& po,
                                     const ImportanceMatrix* loaded = nullptr) {
  std::vector<PlannedTensor> plan = plan_gguf(m.config, *m.weights, po);
  if (r.gguf.target_bpw > 0) {
    if (r.calib.source.empty() || r.calib.source == "self")
      fail("--target-bpw measures each tensor's sensitivity on calibration text: pass --calib FILE");
    std::optional<ImportanceMatrix> own;
    if (!loaded) own = target_importance(m, r);
    const ImportanceMatrix* im = loaded ? loaded : own ? &*own : nullptr;
    TargetOptions t;
    t.bpw = r.gguf.target_bpw;
    t.imatrix = im;
    t.grid_types_only = r.gguf.gptq;
    // each tensor's sensitivity on at most 4 windows of at most 512 tokens (fewer with a smaller --nsamples /
    // --seqlen)
    const TargetProbe probe(m, r.calib.source, std::clamp<int64_t>(r.calib.nsamples, 1, 4),
                            std::clamp<int64_t>(r.calib.seqlen, 16, 512), t.imatrix);
    t.probe = [&](const PlannedTensor& p, ggml::GgmlType type) { return probe.kld(p, type); };
    assign_target_types(m.config, *m.weights, plan, t);
    for (auto& p : plan) p.needs_imatrix = p.needs_imatrix || (ggml::requires_imatrix(p.type) && !im);
  }
  return plan;
}

}  // namespace

void validate_gguf(const QuantizeRequest& r) {
  find_gguf_mix(r.gguf.type.empty() ? "Q4_K_M" : r.gguf.type);
  plan_options(r);
  if ((r.bits || r.group_size) && !r.awq.scale_first)
    fail("--bits and --group-size do not apply to --method gguf: the type fixes them (--type Q4_K_M, Q8_0, …)");
  if (r.awq.scale_first && !r.gguf.imatrix.empty())
    fail("--awq-scale with --imatrix: the importance matrix holds the unscaled activations; use one or the other");
  if (r.device.device != "cpu" && !r.awq.scale_first && !r.gguf.gptq)
    fail("--device applies to the calibrated methods (gptq, awq, --awq-scale, gguf --gptq); --method gguf quantizes on "
         "the CPU");
  if (r.gguf.gptq && !r.gguf.imatrix.empty())
    fail("--gptq with --imatrix: GPTQ weighs each block by the Hessians it collects itself; use one or the other");
  if (r.gguf.gptq && (r.gptq.act_order || r.gptq.static_groups))
    fail("--act-order / --static-groups do not apply to gguf --gptq: a GGML block holds contiguous columns");
  if (r.gguf.target_bpw != 0) {
    if (!r.gguf.type.empty()) fail("--target-bpw chooses every tensor's type; leave out --type");
    if (r.gguf.pure) fail("--target-bpw chooses every tensor's type; leave out --pure");
    if (!(r.gguf.target_bpw >= 1.5 && r.gguf.target_bpw <= 16))
      fail("--target-bpw {}: expected bits a weight between 1.5 and 16", r.gguf.target_bpw);
  }
  if (!r.format.empty()) fail("--format applies to --method rtn, gptq and awq; --method gguf writes a GGUF file");
  if (!r.awq.clip) fail("--awq-no-clip applies to --method awq");
  if (!r.awq.duo_scaling && !r.awq.scale_first) fail("--awq-no-duo-scaling applies to --method awq or --awq-scale");
}

QuantizePlan plan_gguf_method(const LoadedModel& m, const QuantizeRequest& r) {
  const GGUFPlanOptions po = plan_options(r);
  const GGUFMix& mix = find_gguf_mix(po.type);
  QuantizePlan plan;
  plan.method = "gguf";
  const std::vector<PlannedTensor> tensors = make_plan(m, r, po);
  plan.type = std::string(r.gguf.target_bpw > 0 ? target_label(tensors).name : mix.name);
  int64_t params = 0;
  for (const auto& p : tensors) {
    params += shape_numel(p.shape);
    plan.bytes += p.bytes;
    plan.layers.push_back({p.gguf_name, p.shape, std::string(ggml::type_name(p.type)), 0, 0, p.bytes, p.note});
  }
  plan.bits_per_weight = 8.0 * double(plan.bytes) / double(params);
  return plan;
}

QuantizeResult run_gguf(const LoadedModel& model, const QuantizeRequest& r, const ProgressCallback& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  GGUFPlanOptions po = plan_options(r);
  const GGUFMix& mix = find_gguf_mix(po.type);
  if (r.gguf.imatrix.empty() && r.gguf.target_bpw == 0) {  // before any work: the lowest-bit types need an imatrix
    for (const auto& p : plan_gguf(model.config, *model.weights, po))
      if (p.needs_imatrix)
        fail("--type {}: tensor {} would be {}, which is written only with an importance matrix: pass --imatrix "
             "FILE (quantllm imatrix makes one){}", mix.name, p.gguf_name, ggml::type_name(p.type),
             r.gguf.gptq ? "; --gptq rounds the legacy, K-quant and IQ4 types only" : "");
  }
  LoadedModel m = model;
  if (r.awq.scale_first) {
    // AWQ's scales folded into the fp32 weights that the GGUF writer then quantizes.
    const QuantizeRequest s = awq_scale_request(r, mix);
    BlockProgress bp;
    if (progress) bp = [&](int done, int total, const std::string& detail) { progress(done, total, detail); };
    auto scaled = awq_scale_weights(m, s, bp);
    m.weights = overlay_weights(m.weights, std::move(scaled));
  }
  std::optional<ImportanceMatrix> im;
  if (!r.gguf.imatrix.empty()) {
    im = ImportanceMatrix::load(r.gguf.imatrix);
    check_imatrix_fits(*im, m.config, r.gguf.imatrix.string());
  }
  const auto plan = make_plan(m, r, po, im ? &*im : nullptr);
  const GGUFMix& label = r.gguf.target_bpw > 0 ? target_label(plan) : mix;
  int64_t params = 0;
  uint64_t bytes = 0;
  for (const auto& p : plan) params += shape_numel(p.shape), bytes += p.bytes;
  if (!m.config.arch->llama_cpp_runs)
    std::fprintf(stderr, "quantllm: note: llama.cpp has no OPT architecture: this GGUF runs in quantllm only\n");
  if (m.config.n_experts > 0) {  // llama.cpp's MoE graphs (qwen3moe, llama with experts) make every block MoE
    for (int64_t i = 0; i < m.config.n_layers; ++i) {
      const auto& subs = m.config.block(i).sublayers;
      if (std::none_of(subs.begin(), subs.end(), [](const Sublayer& s) { return s.kind == SublayerKind::Moe; })) {
        std::fprintf(stderr, "quantllm: note: block %lld is dense in a mixture-of-experts model, which llama.cpp's %s "
                     "graph cannot load: this GGUF runs in quantllm only\n", (long long)i,
                     std::string(m.config.arch->gguf_arch).c_str());
        break;
      }
    }
  }
  GGUFExportOptions eo;
  eo.mix_name = std::string(label.name);
  eo.ftype = label.ftype;
  eo.imatrix = im ? &*im : nullptr;
  eo.overwrite = r.overwrite;
  if (progress) eo.progress = [&](size_t done, size_t total, const std::string& t) { progress(int64_t(done), int64_t(total), t); };
  std::map<std::string, std::vector<uint8_t>> rounded;  // gguf --gptq: HF weight name → rows, HF order
  if (r.gguf.gptq) {
    BlockProgress bp;
    if (progress) bp = [&](int done, int total, const std::string& detail) { progress(done, total, detail); };
    rounded = gptq_gguf_layers(m, r, plan, bp);
    eo.rounder = [&](const PlannedTensor& p, int64_t matrix, const float* rows, int64_t nrows, const float* im,
                     uint8_t* dst) {
      const std::string& name = p.stack.empty() ? p.hf_name : p.stack[size_t(matrix)];
      auto it = rounded.find(name);
      if (it == rounded.end()) {  // not rounded by GPTQ (F16 …): llama.cpp's quantizer, as the calibration assumed
        ggml::quantize_rows(p.type, rows, dst, nrows, p.ne[0], im);
        return;
      }
      const size_t rs = ggml::row_size(p.type, p.ne[0]);
      QL_ASSERT(it->second.size() == rs * size_t(nrows), "{}: {} bytes rounded, {} rows of {} planned", name,
                it->second.size(), nrows, rs);
      const std::vector<int64_t> order = file_row_order(m.config, name, nrows);
      for (int64_t i = 0; i < nrows; ++i) std::memcpy(dst + size_t(i) * rs, it->second.data() + size_t(order[size_t(i)]) * rs, rs);
      std::vector<uint8_t>().swap(it->second);
    };
  }
  const auto t_write = std::chrono::steady_clock::now();
  QuantizeResult res;
  res.bytes = write_gguf(m, *m.weights, plan, r.out, eo);
  res.out = r.out;
  res.method = "gguf";
  res.type = std::string(label.name);
  res.tensors = int64_t(plan.size());
  res.bits_per_weight = 8.0 * double(bytes) / double(params);
  const auto now = std::chrono::steady_clock::now();
  res.write_seconds = std::chrono::duration<double>(now - t_write).count();
  res.seconds = std::chrono::duration<double>(now - t0).count();
  return res;
}

}  // namespace quantllm
