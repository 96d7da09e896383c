// quantllm compare: size, bits per weight, perplexity, KL divergence, top-1 agreement and throughput
// of several quantized versions of one model, as a table (Markdown or JSON) and an SVG chart.
#include "commands.h"
#include "common.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/progress.h"
#include "eval/kld.h"
#include "eval/report.h"
#include "runtime/forward.h"

#include <fmt/format.h>

namespace quantllm::cli {

namespace {

// Bytes and parameters of what a model stores (weights only; tokenizer and metadata excluded).
std::pair<uint64_t, int64_t> weight_bytes(const Model& m) {
  uint64_t bytes = 0;
  int64_t params = 0;
  for (const auto& n : m.weights->names()) {
    bytes += m.weights->stored_bytes(n);
    params += shape_numel(m.weights->shape(n));
  }
  return {bytes, params};
}

std::string format_of(const Model& m) {
  if (m.kind == "gguf") {
    // The type most of the decoder weights use, e.g. "GGUF Q4_K".
    std::map<std::string, int64_t> count;
    for (const auto& n : m.weights->names()) count[m.weights->format(n)] += shape_numel(m.weights->shape(n));
    std::string best;
    int64_t most = -1;
    for (const auto& [f, c] : count)
      if (c > most) most = c, best = f;
    return "GGUF " + best;
  }
  if (m.kind == "hf") return std::string(dtype_name(m.config.dtype));
  const BlockSpec& b = m.config.block(0);
  return m.weights->format(b.linear_tensor(b.find(Role::Q)) + ".weight");
}

}  // namespace

void register_compare(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& runners) {
  struct Args {
    std::string base, data, chart, format = "markdown";
    std::vector<std::string> candidates;
    int64_t ctx = 512, max_windows = 16;
    int threads = 0;
    std::string engine = "quant";
  };
  auto a = std::make_shared<Args>();
  auto* sub = app.add_subcommand("compare", "Compare quantized models: size, quality and speed, with a chart");
  sub->add_option("--base", a->base, "the full-precision model")->required();
  sub->add_option("--candidates", a->candidates, "quantized models (directories or .gguf files)")->required();
  sub->add_option("--data", a->data, "UTF-8 text file")->required();
  sub->add_option("--ctx", a->ctx, "window length")->capture_default_str();
  sub->add_option("--max-windows", a->max_windows, "windows to evaluate (0 = all)")->capture_default_str();
  sub->add_option("--chart", a->chart, "write the SVG chart here (default: compare.svg next to the data's name)");
  sub->add_option("--format", a->format, "markdown | json")->check(CLI::IsMember({"markdown", "json"}));
  sub->add_option("--threads", a->threads, "threads (0 = all cores)");
  sub->add_option("--engine", a->engine, "quant (packed weights, CPU kernels) or fp32 (reference), for every model")
      ->capture_default_str();
  runners.emplace_back(sub, [a] {
    apply_threads(a->threads);
    const std::string text = read_text_file(a->data);
    const std::string chart = a->chart.empty() ? "compare.svg" : a->chart;
    check_output_path(chart, true);
    Model base = open_model(a->base);
    std::vector<Model> models;
    for (const auto& c : a->candidates) models.push_back(open_model(c));
    const Windows w = make_windows(*base.tokenizer, text, a->ctx, a->max_windows);
    for (size_t i = 0; i < models.size(); ++i)
      if (make_windows(*models[i].tokenizer, text, a->ctx, a->max_windows).tokens != w.tokens)
        fail("{} tokenizes the text differently from {}", a->candidates[i], a->base);
    const Engine engine = parse_engine(a->engine);
    FullModel fbase(base, engine);
    std::vector<std::unique_ptr<FullModel>> full;
    std::vector<const ModelRunner*> ptrs;
    for (const auto& m : models) full.push_back(std::make_unique<FullModel>(m, engine)), ptrs.push_back(full.back().get());
    Progress bar("compare", w.n_windows);
    const auto res = kl_divergence(fbase, ptrs, w, 0, [&](int64_t d, int64_t) { bar.update(d); });
    bar.finish();
    // Throughput of each model's evaluation alone (a short separate run: the lockstep run mixes them).
    const Windows tw = make_windows(*base.tokenizer, text, a->ctx, 2);
    std::vector<ReportRow> rows;
    auto row_for = [&](const Model& m, const std::string& path, const FullModel& fm) {
      ReportRow r;
      r.name = std::filesystem::path(path).filename().string();
      r.format = format_of(m);
      const auto [bytes, params] = weight_bytes(m);
      r.bytes = bytes;
      r.bits_per_weight = 8.0 * double(bytes) / double(params);
      r.tokens_per_second = perplexity(fm, tw).tokens_per_second;
      return r;
    };
    ReportRow b = row_for(base, a->base, fbase);
    b.ppl = res.empty() ? perplexity(fbase, w).ppl : res[0].ppl_base;
    b.is_base = true;
    rows.push_back(b);
    for (size_t i = 0; i < models.size(); ++i) {
      ReportRow r = row_for(models[i], a->candidates[i], *full[i]);
      r.ppl = res[i].ppl;
      r.kld = res[i].kld;
      r.top1 = res[i].top1_agreement;
      rows.push_back(r);
    }
    const std::string data_name = std::filesystem::path(a->data).filename().string();
    write_file_atomic(chart, report_svg(rows, fmt::format("{} on {} ({} windows)", rows[0].name, data_name,
                                                          w.n_windows)));
    if (a->format == "json") {
      print_json(nlohmann::json::parse(report_json(rows, data_name, w.n_windows)));
    } else {
      fmt::print("{}\nchart: {}\n", report_markdown(rows, data_name, w.n_windows), chart);
    }
  });
}

}  // namespace quantllm::cli
