// quantllm compare: size, bits per weight, perplexity, KL divergence, top-1 agreement and throughput
// of several quantized versions of one model, as a table (Markdown or JSON) and an SVG chart.
#include "commands.h"
#include "common.h"
#include "quantllm/eval.h"

#include <fmt/format.h>

#include <cstdio>
#include <fstream>

namespace quantllm::cli {

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
    const std::string chart = a->chart.empty() ? "compare.svg" : a->chart;
    check_output_path(chart, true);
    const Model base(a->base);
    std::vector<Model> models;
    for (const auto& c : a->candidates) models.emplace_back(c);
    EvalOptions o;
    o.ctx = a->ctx;
    o.max_windows = a->max_windows;
    o.engine = a->engine;
    Progress bar("compare", 1);
    const CompareReport report = compare(base, models, a->data, o, bar.callback());
    bar.finish();
    write_file_atomic(chart, report.svg());
    if (a->format == "json") {
      print_json(nlohmann::json::parse(report.json()));
    } else {
      fmt::print("{}\nchart: {}\n", report.markdown(), chart);
    }
  });
}

}  // namespace quantllm::cli
