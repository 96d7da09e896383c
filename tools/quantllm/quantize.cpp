// quantllm quantize: every flag binds a field of the public QuantizeRequest (include/quantllm/quantize.h);
// the library checks and runs it (rtn / gptq / awq to a Hugging Face directory, gguf to one .gguf file),
// and this file prints the result or the --dry-run plan.
#include "commands.h"
#include "common.h"
#include "quantllm/quantize.h"
#include "quantllm/util.h"

#include <fmt/format.h>

#include <sys/resource.h>

namespace quantllm::cli {

namespace {

struct QuantizeArgs {
  QuantizeRequest r;
  int bits = 4, group_size = 128, threads = 0;
  std::string gpu_precision = "tf32", model, out;
  bool no_true_sequential = false, awq_no_clip = false, awq_no_duo = false, dry_run = false, json = false;
};

void print_group_plan(const QuantizeArgs& a, const QuantizePlan& p) {
  if (a.json) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& l : p.layers)
      rows.push_back({{"layer", l.name}, {"shape", l.shape}, {"bits", l.bits}, {"groups", l.groups}, {"bytes", l.bytes}});
    nlohmann::json mem = nlohmann::json::object();
    for (const auto& [what, b] : p.memory) mem[what] = uint64_t(b);
    print_json({{"method", p.method}, {"layers", rows}, {"quantized_bytes", p.bytes},
                {"bits_per_weight", p.bits_per_weight}, {"memory", mem}, {"peak_bytes", uint64_t(p.peak_bytes)},
                {"available_bytes", uint64_t(p.available_bytes)}, {"flops", p.flops},
                {"matmul_flops_per_second", p.matmul_flops_per_second}, {"seconds_estimate", p.seconds_estimate}});
    return;
  }
  for (const auto& l : p.layers)
    fmt::print("{:<44} {:<11} {}-bit {:>4} groups {:>10}\n", l.name, shape_text(l.shape), l.bits, l.groups,
               format_bytes(l.bytes));
  fmt::print("{} layers, {} quantized ({:.2f} bits per weight)\n", p.layers.size(), format_bytes(p.bytes),
             p.bits_per_weight);
  fmt::print("memory at the peak, estimated: {} ({} available)\n", format_bytes(uint64_t(p.peak_bytes)),
             p.available_bytes > 0 ? format_bytes(uint64_t(p.available_bytes)) : std::string("unknown"));
  for (const auto& [what, b] : p.memory) fmt::print("  {:>10}  {}\n", format_bytes(uint64_t(b)), what);
  fmt::print("time, estimated: {} ({:.1f} TFLOP at {:.0f} GFLOP/s, the fp32 matmul rate measured now with {} threads)\n",
             format_duration(p.seconds_estimate), p.flops / 1e12, p.matmul_flops_per_second / 1e9, num_threads());
}

void print_gguf_plan(const QuantizeArgs& a, const QuantizePlan& p) {
  if (a.json) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& l : p.layers)
      rows.push_back({{"tensor", l.name}, {"shape", l.shape}, {"type", l.type}, {"bytes", l.bytes}, {"note", l.note}});
    print_json({{"type", p.type}, {"tensors", rows}, {"bytes", p.bytes}, {"bits_per_weight", p.bits_per_weight}});
    return;
  }
  for (const auto& l : p.layers)
    fmt::print("{:<28} {:<14} {:<7} {:>12}  {}\n", l.name, shape_text(l.shape), l.type, format_bytes(l.bytes), l.note);
  fmt::print("{} tensors, {} ({:.2f} bits per weight), type {}\n", p.layers.size(), format_bytes(p.bytes),
             p.bits_per_weight, p.type);
}

// The process's peak resident memory so far (bytes), as the kernel counts it.
uint64_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return uint64_t(u.ru_maxrss) * 1024;  // Linux: KiB
}

void print_result(const QuantizeArgs& a, const QuantizeResult& res) {
  const std::string& method = a.r.method;
  if (method == "gguf") {
    if (a.json)
      print_json({{"out", a.out}, {"seconds", res.seconds}, {"bytes", res.bytes}, {"bits_per_weight", res.bits_per_weight},
                  {"method", "gguf"}, {"type", res.type}, {"peak_rss_bytes", peak_rss_bytes()}});
    else
      fmt::print("wrote {} ({}, {} tensors, {:.2f} bits per weight) in {}\n", a.out, format_bytes(res.bytes), res.tensors,
                 res.bits_per_weight, format_duration(res.seconds));
    return;
  }
  if (a.json) {
    nlohmann::json layers = nlohmann::json::object();
    for (const auto& [name, s] : res.layers)
    {
      layers[name] = {{"relative_error", s.relative_error}, {"rtn_relative_error", s.rtn_relative_error},
                      {"damp", s.damp}, {"seconds", s.seconds}, {"dead_inputs", s.dead_inputs}};
      if (s.tokens >= 0) layers[name]["tokens"] = s.tokens, layers[name]["rtn_fallback"] = s.rtn_fallback;
    }
    print_json({{"out", a.out}, {"seconds", res.seconds}, {"bytes", res.bytes}, {"bits_per_weight", res.bits_per_weight},
                {"method", method}, {"layers", layers}, {"peak_rss_bytes", peak_rss_bytes()}});
    return;
  }
  fmt::print(stderr, "quantllm: written to {} (blocks as they finished; the rest in {:.1f}s)\n", a.out, res.write_seconds);
  if (!res.layers.empty()) {
    double err_sum = 0, expert_err = 0, expert_rtn = 0;
    int64_t experts = 0, expert_fallbacks = 0;
    fmt::print(stderr, "layer-wise relative error tr((W-Q)H(W-Q)^T)/tr(WHW^T), {} vs round-to-nearest:\n", method);
    for (const auto& [name, s] : res.layers) {
      err_sum += s.relative_error;
      if (s.tokens >= 0) {  // a MoE expert: summarized below (a 128-expert model has thousands)
        ++experts;
        expert_fallbacks += s.rtn_fallback;
        if (!s.rtn_fallback) expert_err += s.relative_error, expert_rtn += s.rtn_relative_error;
        continue;
      }
      if (s.rtn_relative_error > 0)
        fmt::print(stderr, "  {:<48} {:.3e}  rtn {:.3e}\n", name, s.relative_error, s.rtn_relative_error);
      else
        fmt::print(stderr, "  {:<48} {:.3e}\n", name, s.relative_error);
    }
    if (experts > 0) {
      const double n = double(std::max<int64_t>(1, experts - expert_fallbacks));
      fmt::print(stderr, "  {} expert layers: mean {:.3e}  rtn {:.3e}; {} rounded to nearest (too few tokens)\n",
                 experts, expert_err / n, expert_rtn / n, expert_fallbacks);
    }
    fmt::print(stderr, "  mean {:.3e}\n", err_sum / double(res.layers.size()));
  }
  fmt::print("wrote {} ({}, {:.2f} bits per weight in quantized layers) in {}\n", a.out, format_bytes(res.bytes),
             res.bits_per_weight, format_duration(res.seconds));
}

}  // namespace

void register_quantize(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& runners) {
  auto a = std::make_shared<QuantizeArgs>();
  QuantizeRequest& r = a->r;
  auto* q = app.add_subcommand("quantize", "Quantize a Hugging Face checkpoint (rtn, gptq, awq, gguf)");
  std::vector<std::string> methods;
  for (const auto& [name, summary] : quantize_methods()) methods.push_back(name);
  q->add_option("--model", a->model, "Hugging Face model directory")->required();
  q->add_option("--out", a->out, "output directory (rtn/gptq/awq) or .gguf file")->required();
  q->add_option("--method", r.method, "rtn | gptq | awq | gguf | fp8")->required()->check(CLI::IsMember(methods));
  q->add_option("--bits", a->bits, "bits per weight, 2..8")->capture_default_str();
  q->add_option("--group-size", a->group_size, "input columns per group, or -1 for one group per row")
      ->capture_default_str();
  q->add_flag("--sym", r.sym, "symmetric (no zero point)");
  q->add_flag("--act-order,--desc-act", r.gptq.act_order, "GPTQ: quantize columns in order of decreasing Hessian diagonal");
  q->add_flag("--static-groups", r.gptq.static_groups, "GPTQ with act-order: group parameters fixed before quantizing");
  q->add_flag("--mse", r.mse, "search each group's range for the least squared error");
  q->add_option("--damp", r.gptq.damp, "GPTQ damping, fraction of the mean Hessian diagonal")->capture_default_str();
  q->add_option("--block-size", r.gptq.block_size, "GPTQ lazy-batch block size")->capture_default_str();
  q->add_flag("--true-sequential", r.gptq.true_sequential, "GPTQ: q/k/v, then o, then gate/up, then down (default)");
  q->add_flag("--no-true-sequential", a->no_true_sequential, "GPTQ: all layers of a block from the same inputs");
  q->add_flag("--awq-scale", r.awq.scale_first, "gptq/rtn/gguf: fold AWQ's activation-aware scales into the weights first");
  q->add_option("--awq-search-tokens", r.awq.search_tokens, "AWQ: calibration tokens of the scale and clip searches")
      ->capture_default_str();
  q->add_option("--awq-act-floor", r.awq.act_floor,
                "AWQ: raise each channel's mean |activation| to this fraction of the mean in the scale search (0: AutoAWQ's)")
      ->capture_default_str();
  q->add_flag("--awq-no-clip", a->awq_no_clip, "awq: no clipping-range search (AutoAWQ's apply_clip=False)");
  q->add_flag("--awq-no-duo-scaling", a->awq_no_duo, "AWQ scales from activation magnitudes alone (duo_scaling=False)");
  q->add_option("--moe-calibration", r.moe.calibration,
                "gptq on MoE models: routed (each expert from its routed tokens; too few → RTN) | all-experts")
      ->check(CLI::IsMember({"routed", "all-experts"}))
      ->capture_default_str();
  q->add_option("--moe-min-tokens", r.moe.min_tokens, "routed: experts with fewer calibration tokens are rounded to nearest")
      ->capture_default_str();
  q->add_option("--calib", r.calib.source, "calibration text file, or 'self' to sample text from the model");
  q->add_option("--nsamples", r.calib.nsamples, "calibration windows")->capture_default_str();
  q->add_option("--seqlen", r.calib.seqlen, "tokens per calibration window")->capture_default_str();
  q->add_option("--seed", r.calib.seed, "seed of the window draw")->capture_default_str();
  q->add_option("--format", r.format, "gptq | gptq_v2 | awq_gemm | compressed-tensors");
  q->add_option("--type", r.gguf.type, "GGUF type or mix (Q4_K_M, Q8_0, …)");
  q->add_option("--imatrix", r.gguf.imatrix, "importance matrix file (GGUF)");
  q->add_flag("--gptq", r.gguf.gptq,
              "GGUF: GPTQ's Hessian error feedback into the GGML blocks (calibrated with --calib; Q2_K-Q8_0, IQ4)");
  q->add_option("--target-bpw", r.gguf.target_bpw,
                "GGUF: choose each tensor's type for this many bits a weight (measured error per byte) instead of --type");
  q->add_option("--tensor-type", r.gguf.tensor_types, "GGUF: REGEX=TYPE override (repeatable)");
  q->add_option("--output-tensor-type", r.gguf.output_tensor_type, "GGUF: type of output.weight");
  q->add_option("--token-embedding-type", r.gguf.token_embedding_type, "GGUF: type of token_embd.weight");
  q->add_flag("--pure", r.gguf.pure, "GGUF: every quantizable tensor gets the mix's default type");
  q->add_option("--device", r.device.device, "where gptq / awq calibrate and search: cpu | cuda (one GPU)")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  q->add_option("--gpu-precision", a->gpu_precision,
                "cuda: matrix products with tf32 operands on tensor cores, or plain fp32; bf16: the forward "
                "passes' linear layers and the Hessians' products with bf16 operands, fp32 accumulation (GPTQ in tf32)")
      ->check(CLI::IsMember({"tf32", "fp32", "bf16"}))
      ->capture_default_str();
  q->add_option("--threads", a->threads, "threads (0 = all cores)");
  q->add_flag("--force", r.overwrite, "overwrite an existing output");
  q->add_flag("--resume", r.resume, "gptq/awq: continue an interrupted run from its last finished block (OUT.resume)");
  q->add_flag("--dry-run", a->dry_run, "print the plan and exit");
  q->add_flag("--json", a->json, "print one JSON object on stdout");
  runners.emplace_back(q, [a, q] {
    QuantizeRequest& r = a->r;
    r.model = a->model;
    r.out = a->out;
    if (q->count("--bits")) r.bits = a->bits;
    if (q->count("--group-size")) r.group_size = a->group_size;
    if (a->no_true_sequential) r.gptq.true_sequential = false;
    if (a->awq_no_clip) r.awq.clip = false;
    if (a->awq_no_duo) r.awq.duo_scaling = false;
    if (q->count("--target-bpw") && !q->count("--type")) r.gguf.type.clear();  // no mix: the target chooses
    if (q->count("--awq-act-floor") && r.method != "awq" && !r.awq.scale_first)
      throw Error("--awq-act-floor applies to --method awq or --awq-scale");
    r.device.gpu_tf32 = a->gpu_precision != "fp32";
    r.device.gpu_bf16 = a->gpu_precision == "bf16";
    apply_threads(a->threads);
    if (a->dry_run) {
      const QuantizePlan p = plan(r);
      if (r.method == "gguf") print_gguf_plan(*a, p);
      else print_group_plan(*a, p);
      return;
    }
    const std::string label =
        r.method == "gguf" ? (r.gguf.target_bpw > 0 ? fmt::format("gguf {} bpw", r.gguf.target_bpw)
                                                    : fmt::format("gguf {}", r.gguf.type))
                           : fmt::format("{} {}-bit", r.method, r.bits.value_or(4));
    Progress bar(label, 1);
    const QuantizeResult res = quantize(r, bar.callback());
    bar.finish();
    print_result(*a, res);
  });
}

}  // namespace quantllm::cli
