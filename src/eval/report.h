// The comparison report of `quantllm compare`: one row per model (format, size, bits per weight,
// perplexity, KL divergence, top-1 agreement, throughput), as Markdown or JSON, and an SVG chart of
// quality against bits per weight that any browser shows.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace quantllm {

struct ReportRow {
  std::string name, format;
  uint64_t bytes = 0;
  double bits_per_weight = 0;
  double ppl = 0, kld = 0, top1 = 1;
  double tokens_per_second = 0;
  bool is_base = false;
};

std::string report_markdown(const std::vector<ReportRow>& rows, const std::string& data_name, int64_t windows);
std::string report_json(const std::vector<ReportRow>& rows, const std::string& data_name, int64_t windows);
// Scatter of KL divergence (log scale) and perplexity against bits per weight, one labelled point a model.
std::string report_svg(const std::vector<ReportRow>& rows, const std::string& title);

}  // namespace quantllm
