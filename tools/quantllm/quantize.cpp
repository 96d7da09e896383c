// quantllm quantize: RTN / GPTQ / AWQ to a Hugging Face directory, or GGUF to one .gguf file.
#include "commands.h"
#include "common.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/progress.h"
#include "core/threads.h"
#include "export/gguf_export.h"
#include "methods/awq.h"
#include "methods/estimate.h"
#include "methods/group_methods.h"
#include "methods/imatrix.h"

#include <fmt/format.h>

#include <chrono>

namespace quantllm::cli {

namespace {

struct QuantizeArgs {
  std::string model, out, method, calib, type, imatrix, format, device = "cpu", gpu_precision = "tf32";
  int bits = 4, group_size = 128, block_size = 128, threads = 0;
  bool sym = false, act_order = false, static_groups = false, mse = false, force = false, json = false;
  bool true_sequential = true, no_true_sequential = false, dry_run = false, awq_scale = false, pure = false;
  bool bits_given = false, group_size_given = false, resume = false;
  std::string output_tensor_type, token_embedding_type;
  double damp = 0.01;
  int64_t nsamples = 128, seqlen = 512;
  uint64_t seed = 0;
  std::vector<std::string> tensor_types;
};

uint64_t dir_bytes(const std::filesystem::path& p) {
  uint64_t total = 0;
  std::error_code ec;
  if (std::filesystem::is_regular_file(p, ec)) return std::filesystem::file_size(p, ec);
  for (const auto& e : std::filesystem::recursive_directory_iterator(p, ec))
    if (e.is_regular_file(ec)) total += e.file_size(ec);
  return total;
}

// --dry-run of rtn/gptq/awq: the layers and their storage, the memory the run needs and its time.
void dry_run_group_method(const QuantizeArgs& a, const GroupMethodOptions& o) {
  Model m = open_model(a.model);
  const ModelConfig& c = m.config;
  validate_layers(c, o.quant);
  nlohmann::json rows = nlohmann::json::array();
  double params = 0, bytes = 0;
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const BlockSpec& spec = c.block(i);
    for (size_t l = 0; l < spec.linears.size(); ++l) {
      const int64_t in = spec.linears[l].in, out = spec.linears[l].out;
      const int64_t groups = group_count(o.quant, in);
      // codes, fp16 scales, packed zeros, g_idx (what save_quantized writes)
      const double b = double(packed_layer_bytes(in, out, groups, a.bits));
      params += double(in * out);
      bytes += b;
      rows.push_back({{"layer", spec.linear_tensor(int(l))}, {"shape", Shape{out, in}}, {"bits", a.bits},
                      {"groups", groups}, {"bytes", uint64_t(b)}});
    }
  }
  const RunEstimate est = estimate_group_method(m, o);
  const double rate = measure_matmul_rate();
  const double secs = est.flops / rate;
  const double avail = available_memory_bytes();
  if (a.json) {
    nlohmann::json mem = nlohmann::json::object();
    for (const auto& [what, b] : est.memory) mem[what] = uint64_t(b);
    print_json({{"method", a.method}, {"layers", rows}, {"quantized_bytes", uint64_t(bytes)},
                {"bits_per_weight", 8 * bytes / params}, {"memory", mem}, {"peak_bytes", uint64_t(est.peak_bytes)},
                {"available_bytes", uint64_t(avail)}, {"flops", est.flops}, {"matmul_flops_per_second", rate},
                {"seconds_estimate", secs}});
    return;
  }
  for (const auto& r : rows)
    fmt::print("{:<44} {:<11} {}-bit {:>4} groups {:>10}\n", r["layer"].get<std::string>(),
               shape_str(r["shape"].get<Shape>()), a.bits, r["groups"].get<int64_t>(),
               format_bytes(r["bytes"].get<uint64_t>()));
  fmt::print("{} layers, {} quantized ({:.2f} bits per weight)\n", rows.size(), format_bytes(uint64_t(bytes)),
             8 * bytes / params);
  fmt::print("memory at the peak, estimated: {} ({} available)\n", format_bytes(uint64_t(est.peak_bytes)),
             avail > 0 ? format_bytes(uint64_t(avail)) : std::string("unknown"));
  for (const auto& [what, b] : est.memory) fmt::print("  {:>10}  {}\n", format_bytes(uint64_t(b)), what);
  fmt::print("time, estimated: {} ({:.1f} TFLOP at {:.0f} GFLOP/s, the fp32 matmul rate measured now with {} threads)\n",
             format_duration(secs), est.flops / 1e12, rate / 1e9, num_threads());
}

// --device / --gpu-precision into the options; refuses a CUDA run this build or machine cannot do.
void apply_device(const QuantizeArgs& a, GroupMethodOptions& o) {
  o.device = a.device == "cuda" ? Device::CUDA : Device::CPU;
  o.gpu_tf32 = a.gpu_precision == "tf32";
  if (o.device == Device::CUDA && !cuda_backend_built())
    fail("--device cuda: this build has no CUDA backend (configure with -DQUANTLLM_CUDA=ON; needs nvcc)");
}

void run_group_method(const QuantizeArgs& a) {
  GroupMethodOptions o;
  apply_device(a, o);
  o.method = a.method == "rtn" ? QuantMethod::RTN : a.method == "gptq" ? QuantMethod::GPTQ : QuantMethod::AWQ;
  o.quant.bits = a.bits;
  o.quant.group_size = a.group_size;
  o.quant.sym = a.sym;
  o.quant.mse = a.mse;
  if (o.method == QuantMethod::AWQ) o.quant.rule = RangeRule::kAwq;
  o.damp_percent = a.damp;
  o.block_size = a.block_size;
  o.act_order = a.act_order;
  o.static_groups = a.static_groups;
  o.true_sequential = !a.no_true_sequential;
  o.calib.source = a.calib;
  o.calib.nsamples = a.nsamples;
  o.calib.seqlen = a.seqlen;
  o.calib.seed = a.seed;
  o.awq_scale = a.awq_scale;
  if (a.awq_scale && o.method == QuantMethod::AWQ)
    fail("--awq-scale composes AWQ scaling with --method gptq or rtn; --method awq scales already");
  if (a.bits < 2 || a.bits > 8) fail("--bits must be between 2 and 8, got {}", a.bits);
  if (a.damp <= 0 || a.damp > 1) fail("--damp must be in (0, 1], got {}", a.damp);
  const std::string fmt_name = a.format.empty() ? (a.method == "awq" ? "awq_gemm" : "gptq") : a.format;
  const HfQuantFormat format = parse_hf_quant_format(fmt_name);
  if (format == HfQuantFormat::AwqGemm && (a.bits != 4 || a.act_order))
    fail("--format awq_gemm stores 4-bit weights in contiguous groups (no --act-order)");
  if (!a.dry_run) check_output_path(a.out, a.force);
  if ((o.method != QuantMethod::RTN || a.awq_scale) && a.calib.empty())
    fail("--method {} needs calibration data: --calib FILE (or --calib self)", a.method);
  if (a.dry_run) {
    dry_run_group_method(a, o);
    return;
  }

  // Finished blocks are checkpointed beside the output (pipeline/checkpoints.h) so that an
  // interrupted run continues with --resume; RTN needs no calibration and just runs again.
  std::error_code ec;
  const bool calibrated = o.method != QuantMethod::RTN || a.awq_scale;
  const std::filesystem::path ckpt = std::filesystem::path(a.out).string() + ".resume";
  const bool ckpt_existed = std::filesystem::exists(ckpt, ec);
  if (calibrated) {
    if (ckpt_existed && !a.resume) {
      if (!a.force) fail("{} holds an interrupted run: --resume continues it, --force starts over", ckpt.string());
      std::filesystem::remove_all(ckpt, ec);
    }
    if (a.resume && !ckpt_existed)
      fmt::print(stderr, "quantllm: --resume: no interrupted run at {}; starting from the first block\n", ckpt.string());
    o.checkpoint_dir = ckpt;
    o.resume = a.resume;
  }

  const auto t0 = std::chrono::steady_clock::now();
  Model m = open_model(a.model);
  const RunEstimate est = estimate_group_method(m, o);
  const double avail = available_memory_bytes();
  if (o.device == Device::CPU && avail > 0 && est.peak_bytes > avail)
    fail("{} {}-bit with {} × {} calibration tokens needs about {} of memory, {} is available (--dry-run itemizes "
         "it); lower --nsamples or --seqlen", a.method, a.bits, o.calib.nsamples, o.calib.seqlen,
         format_bytes(uint64_t(est.peak_bytes)), format_bytes(uint64_t(avail)));
  Progress bar(fmt::format("{} {}-bit", a.method, a.bits), m.config.n_layers);
  QuantizedModel qm;
  try {
    qm = quantize_group_method(m, o, [&](int done, int, const std::string& detail) { bar.update(done, detail); });
    bar.finish();
    const auto t_save = std::chrono::steady_clock::now();
    save_quantized(qm, a.out, format, a.force);
    if (!a.json)
      fmt::print(stderr, "quantllm: checkpoint written in {:.1f}s\n",
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t_save).count());
  } catch (const Error&) {
    // A user error repeats on every run: drop the checkpoints this run started (not older ones).
    if (calibrated && !ckpt_existed) std::filesystem::remove_all(ckpt, ec);
    throw;
  }
  if (calibrated) std::filesystem::remove_all(ckpt, ec);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // Size and bits per weight of the quantized layers (codes + scales + zeros + g_idx).
  int64_t params = 0;
  size_t qbytes = 0;
  double err_sum = 0;
  for (const auto& [name, q] : qm.layers) {
    params += q.in * q.out;
    qbytes += packed_layer_bytes(q.in, q.out, q.n_groups(), q.bits);
  }
  for (const auto& [name, s] : qm.stats) err_sum += s.relative_error;
  const double bpw = params ? 8.0 * double(qbytes) / double(params) : 0;
  const uint64_t bytes = dir_bytes(a.out);
  if (a.json) {
    nlohmann::json layers = nlohmann::json::object();
    for (const auto& [name, s] : qm.stats)
      layers[name] = {{"relative_error", s.relative_error}, {"rtn_relative_error", s.rtn_relative_error},
                      {"damp", s.damp}, {"seconds", s.seconds},
                      {"dead_inputs", s.dead_inputs}};
    print_json({{"out", a.out},
                {"seconds", seconds},
                {"bytes", bytes},
                {"bits_per_weight", bpw},
                {"method", a.method},
                {"layers", layers}});
  } else {
    if (!qm.stats.empty()) {
      fmt::print(stderr, "layer-wise relative error tr((W-Q)H(W-Q)^T)/tr(WHW^T), {} vs round-to-nearest:\n", a.method);
      for (const auto& [name, s] : qm.stats) {
        if (s.rtn_relative_error > 0)
          fmt::print(stderr, "  {:<48} {:.3e}  rtn {:.3e}\n", name, s.relative_error, s.rtn_relative_error);
        else
          fmt::print(stderr, "  {:<48} {:.3e}\n", name, s.relative_error);
      }
      fmt::print(stderr, "  mean {:.3e}\n", err_sum / double(qm.stats.size()));
    }
    fmt::print("wrote {} ({}, {:.2f} bits per weight in quantized layers) in {}\n", a.out, format_bytes(bytes), bpw,
               format_duration(seconds));
  }
}

void run_gguf(const QuantizeArgs& a) {
  GGUFPlanOptions po;
  po.type = a.type.empty() ? "Q4_K_M" : a.type;
  const GGUFMix& mix = find_gguf_mix(po.type);
  po.pure = a.pure;
  for (const auto& spec : a.tensor_types) po.tensor_types.push_back(parse_tensor_type_override(spec));
  if (!a.output_tensor_type.empty()) po.output_type = parse_ggml_type(a.output_tensor_type, "--output-tensor-type");
  if (!a.token_embedding_type.empty())
    po.token_embedding_type = parse_ggml_type(a.token_embedding_type, "--token-embedding-type");
  if (!a.dry_run) check_output_path(a.out, a.force);
  if ((a.bits_given || a.group_size_given) && !a.awq_scale)
    fail("--bits and --group-size do not apply to --method gguf: the type fixes them (--type Q4_K_M, Q8_0, …)");
  if (a.awq_scale && !a.imatrix.empty())
    fail("--awq-scale with --imatrix: the importance matrix holds the unscaled activations; use one or the other");
  if (a.awq_scale && a.calib.empty()) fail("--awq-scale needs calibration data: --calib FILE (or --calib self)");
  if (a.device != "cpu" && !a.awq_scale)
    fail("--device applies to the calibrated methods (gptq, awq, --awq-scale); --method gguf quantizes on the CPU");
  Model m = open_model(a.model);
  const auto t0 = std::chrono::steady_clock::now();
  if (a.awq_scale && !a.dry_run) {
    // AWQ's scale search with the mix's bit width on groups of 32 (the K-quants' and legacy types'
    // sub-block), folded into the fp32 weights that the GGUF writer then quantizes.
    const ggml::QuantTraits& t = ggml::traits(mix.default_type);
    GroupMethodOptions o;
    apply_device(a, o);
    o.method = QuantMethod::RTN;
    o.quant.bits = a.bits_given ? a.bits : std::clamp(int(8 * t.type_size / t.block_size), 2, 8);
    o.quant.group_size = a.group_size_given ? a.group_size : 32;
    o.calib.source = a.calib;
    o.calib.nsamples = a.nsamples;
    o.calib.seqlen = a.seqlen;
    o.calib.seed = a.seed;
    if (t.block_size == 1) fail("--awq-scale: type {} is not quantized; nothing to scale for", mix.name);
    Progress sbar(fmt::format("awq scales ({}-bit)", o.quant.bits), m.config.n_layers);
    auto scaled = awq_scale_weights(m, o, [&](int done, int, const std::string& d) { sbar.update(done, d); });
    sbar.finish();
    m.weights = overlay_weights(m.weights, std::move(scaled));
  }
  std::optional<ImportanceMatrix> im;
  if (!a.imatrix.empty()) {
    im = ImportanceMatrix::load(a.imatrix);
    check_imatrix_fits(*im, m.config, a.imatrix);
    po.has_imatrix = true;
  }
  const auto plan = plan_gguf(m.config, *m.weights, po);
  int64_t params = 0;
  uint64_t bytes = 0;
  for (const auto& p : plan) params += shape_numel(p.shape), bytes += p.bytes;
  if (a.dry_run) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& p : plan)
      rows.push_back({{"tensor", p.gguf_name}, {"shape", p.shape}, {"type", ggml::type_name(p.type)},
                      {"bytes", p.bytes}, {"note", p.note}});
    if (a.json) {
      print_json({{"type", mix.name}, {"tensors", rows}, {"bytes", bytes},
                  {"bits_per_weight", 8.0 * double(bytes) / double(params)}});
    } else {
      for (const auto& p : plan)
        fmt::print("{:<28} {:<14} {:<7} {:>12}  {}\n", p.gguf_name, shape_str(p.shape), ggml::type_name(p.type),
                   format_bytes(p.bytes), p.note);
      fmt::print("{} tensors, {} ({:.2f} bits per weight), type {}\n", plan.size(), format_bytes(bytes),
                 8.0 * double(bytes) / double(params), mix.name);
    }
    return;
  }
  if (m.config.arch->gguf_arch == "opt")
    fmt::print(stderr, "quantllm: note: llama.cpp has no OPT architecture: this GGUF runs in quantllm only\n");
  Progress bar(fmt::format("gguf {}", mix.name), int64_t(plan.size()));
  GGUFExportOptions eo;
  eo.mix_name = std::string(mix.name);
  eo.ftype = mix.ftype;
  eo.imatrix = im ? &*im : nullptr;
  eo.overwrite = a.force;
  eo.progress = [&](size_t done, size_t, const std::string& t) { bar.update(int64_t(done), t); };
  const uint64_t written = write_gguf(m, *m.weights, plan, a.out, eo);
  bar.finish();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double bpw = 8.0 * double(bytes) / double(params);
  if (a.json) {
    print_json({{"out", a.out}, {"seconds", seconds}, {"bytes", written}, {"bits_per_weight", bpw},
                {"method", "gguf"}, {"type", mix.name}});
  } else {
    fmt::print("wrote {} ({}, {} tensors, {:.2f} bits per weight) in {}\n", a.out, format_bytes(written),
               plan.size(), bpw, format_duration(seconds));
  }
}

}  // namespace

void register_quantize(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& runners) {
  auto a = std::make_shared<QuantizeArgs>();
  auto* q = app.add_subcommand("quantize", "Quantize a Hugging Face checkpoint (rtn, gptq, awq, gguf)");
  q->add_option("--model", a->model, "Hugging Face model directory")->required();
  q->add_option("--out", a->out, "output directory (rtn/gptq/awq) or .gguf file")->required();
  q->add_option("--method", a->method, "rtn | gptq | awq | gguf")
      ->required()
      ->check(CLI::IsMember({"rtn", "gptq", "awq", "gguf"}));
  q->add_option("--bits", a->bits, "bits per weight, 2..8")->capture_default_str();
  q->add_option("--group-size", a->group_size, "input columns per group, or -1 for one group per row")
      ->capture_default_str();
  q->add_flag("--sym", a->sym, "symmetric (no zero point)");
  q->add_flag("--act-order,--desc-act", a->act_order, "GPTQ: quantize columns in order of decreasing Hessian diagonal");
  q->add_flag("--static-groups", a->static_groups, "GPTQ with act-order: group parameters fixed before quantizing");
  q->add_flag("--mse", a->mse, "search each group's range for the least squared error");
  q->add_option("--damp", a->damp, "GPTQ damping, fraction of the mean Hessian diagonal")->capture_default_str();
  q->add_option("--block-size", a->block_size, "GPTQ lazy-batch block size")->capture_default_str();
  q->add_flag("--true-sequential", a->true_sequential, "GPTQ: q/k/v, then o, then gate/up, then down (default)");
  q->add_flag("--no-true-sequential", a->no_true_sequential, "GPTQ: all layers of a block from the same inputs");
  q->add_flag("--awq-scale", a->awq_scale, "gptq/rtn/gguf: fold AWQ's activation-aware scales into the weights first");
  q->add_option("--calib", a->calib, "calibration text file, or 'self' to sample text from the model");
  q->add_option("--nsamples", a->nsamples, "calibration windows")->capture_default_str();
  q->add_option("--seqlen", a->seqlen, "tokens per calibration window")->capture_default_str();
  q->add_option("--seed", a->seed, "seed of the window draw")->capture_default_str();
  q->add_option("--format", a->format, "gptq | gptq_v2 | awq_gemm");
  q->add_option("--type", a->type, "GGUF type or mix (Q4_K_M, Q8_0, …)");
  q->add_option("--imatrix", a->imatrix, "importance matrix file (GGUF)");
  q->add_option("--tensor-type", a->tensor_types, "GGUF: REGEX=TYPE override (repeatable)");
  q->add_option("--output-tensor-type", a->output_tensor_type, "GGUF: type of output.weight");
  q->add_option("--token-embedding-type", a->token_embedding_type, "GGUF: type of token_embd.weight");
  q->add_flag("--pure", a->pure, "GGUF: every quantizable tensor gets the mix's default type");
  q->add_option("--device", a->device, "where gptq / awq calibrate and search: cpu | cuda (one GPU)")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  q->add_option("--gpu-precision", a->gpu_precision,
                "cuda: matrix products with tf32 operands on tensor cores, or plain fp32")
      ->check(CLI::IsMember({"tf32", "fp32"}))
      ->capture_default_str();
  q->add_option("--threads", a->threads, "threads (0 = all cores)");
  q->add_flag("--force", a->force, "overwrite an existing output");
  q->add_flag("--resume", a->resume, "gptq/awq: continue an interrupted run from its last finished block (OUT.resume)");
  q->add_flag("--dry-run", a->dry_run, "print the plan and exit");
  q->add_flag("--json", a->json, "print one JSON object on stdout");
  runners.emplace_back(q, [a, q] {
    a->bits_given = q->count("--bits") > 0;
    a->group_size_given = q->count("--group-size") > 0;
    apply_threads(a->threads);
    if (a->method == "gguf") run_gguf(*a);
    else run_group_method(*a);
  });
}

}  // namespace quantllm::cli
