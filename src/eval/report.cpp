// Markdown / JSON tables and the SVG chart of the comparison report (see report.h).
#include "eval/report.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

namespace quantllm {

namespace {

std::string human_bytes(uint64_t b) {
  if (b >= (1ull << 30)) return fmt::format("{:.2f} GiB", double(b) / double(1ull << 30));
  if (b >= (1ull << 20)) return fmt::format("{:.1f} MiB", double(b) / double(1ull << 20));
  return fmt::format("{:.1f} KiB", double(b) / 1024.0);
}

std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '&': o += "&amp;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

}  // namespace

std::string report_markdown(const std::vector<ReportRow>& rows, const std::string& data_name, int64_t windows) {
  std::string s = fmt::format("Perplexity and KL divergence on {} ({} windows of 512 tokens)\n\n", data_name, windows);
  s += "| model | format | size | bits/weight | perplexity | KL divergence | top-1 agreement | eval tokens/s |\n";
  s += "|---|---|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& r : rows)
    s += fmt::format("| {} | {} | {} | {:.2f} | {:.4f} | {} | {} | {:.0f} |\n", r.name, r.format, human_bytes(r.bytes),
                     r.bits_per_weight, r.ppl, r.is_base ? "—" : fmt::format("{:.5f}", r.kld),
                     r.is_base ? "—" : fmt::format("{:.2f}%", 100 * r.top1), r.tokens_per_second);
  return s;
}

std::string report_json(const std::vector<ReportRow>& rows, const std::string& data_name, int64_t windows) {
  nlohmann::json j;
  j["data"] = data_name;
  j["windows"] = windows;
  j["rows"] = nlohmann::json::array();
  for (const auto& r : rows)
    j["rows"].push_back({{"model", r.name}, {"format", r.format}, {"bytes", r.bytes},
                         {"bits_per_weight", r.bits_per_weight}, {"ppl", r.ppl}, {"kld", r.kld},
                         {"top1_agreement", r.top1}, {"tokens_per_second", r.tokens_per_second},
                         {"base", r.is_base}});
  return j.dump();
}

std::string report_svg(const std::vector<ReportRow>& rows, const std::string& title) {
  // Two panels side by side: perplexity (linear) and KL divergence (log10), x = bits per weight.
  constexpr double kW = 980, kH = 420, kPanelW = 400, kPanelH = 300, kTop = 60, kLeft0 = 70, kGap = 90;
  double xmax = 0, pmin = 1e300, pmax = 0, kmin = 1e300, kmax = 0;
  for (const auto& r : rows) {
    xmax = std::max(xmax, r.bits_per_weight);
    pmin = std::min(pmin, r.ppl), pmax = std::max(pmax, r.ppl);
    if (!r.is_base && r.kld > 0) kmin = std::min(kmin, r.kld), kmax = std::max(kmax, r.kld);
  }
  xmax = std::ceil(std::max(xmax, 1.0) + 0.5);
  if (pmax <= pmin) pmax = pmin + 1;
  const double ppad = (pmax - pmin) * 0.1;
  pmin -= ppad, pmax += ppad;
  // Whole decades, with room above the highest point for its label.
  double lkmin = kmin < 1e300 ? std::floor(std::log10(kmin)) : -4,
         lkmax = kmax > 0 ? std::ceil(std::log10(kmax) + 0.3) : 0;
  if (lkmax <= lkmin) lkmax = lkmin + 1;
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"28\" font-size=\"16\" text-anchor=\"middle\">{3}</text>\n",
      kW, kH, kW / 2, xml_escape(title));
  const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};
  for (int panel = 0; panel < 2; ++panel) {
    const double left = kLeft0 + panel * (kPanelW + kGap);
    auto px = [&](double x) { return left + x / xmax * kPanelW; };
    auto py = [&](double v) {
      const double f = panel == 0 ? (v - pmin) / (pmax - pmin) : (std::log10(v) - lkmin) / (lkmax - lkmin);
      return kTop + kPanelH - f * kPanelH;
    };
    s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#444\"/>\n", left,
                     kTop, kPanelW, kPanelH);
    for (int t = 0; t <= int(xmax); t += xmax > 10 ? 2 : 1)
      s += fmt::format("<line x1=\"{0}\" x2=\"{0}\" y1=\"{1}\" y2=\"{2}\" stroke=\"#ddd\"/><text x=\"{0}\" y=\"{3}\" "
                       "text-anchor=\"middle\">{4}</text>\n",
                       px(t), kTop, kTop + kPanelH, kTop + kPanelH + 16, t);
    if (panel == 0) {
      for (int t = 0; t <= 4; ++t) {
        const double v = pmin + (pmax - pmin) * t / 4;
        s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{:.1f}</text>\n", left - 6, py(v) + 4, v);
      }
    } else {
      for (double e = lkmin; e <= lkmax; e += 1)
        s += fmt::format("<line x1=\"{0}\" x2=\"{1}\" y1=\"{2}\" y2=\"{2}\" stroke=\"#ddd\"/><text x=\"{3}\" y=\"{4}\" "
                         "text-anchor=\"end\">1e{5}</text>\n",
                         left, left + kPanelW, py(std::pow(10.0, e)), left - 6, py(std::pow(10.0, e)) + 4, int(e));
    }
    s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">bits per weight</text>\n", left + kPanelW / 2,
                     kTop + kPanelH + 36);
    s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-weight=\"bold\">{}</text>\n",
                     left + kPanelW / 2, kTop - 10, panel == 0 ? "perplexity (lower is better)"
                                                               : "KL divergence from the base (log scale)");
    struct Box {
      double x0, x1, y;  // text extent and baseline
    };
    std::vector<Box> placed;  // labels already drawn in this panel
    for (size_t i = 0; i < rows.size(); ++i) {
      const auto& r = rows[i];
      if (panel == 1 && (r.is_base || r.kld <= 0)) continue;
      const double x = px(r.bits_per_weight), y = py(panel == 0 ? r.ppl : r.kld);
      // Each point is labelled with its model's name (formats repeat). Points in the right part of
      // the panel get their label on their left, inside the frame; a label that would cover one
      // already drawn moves down a line (width estimated at 6.2 px a character of 11 px text).
      const bool right = x > left + 0.7 * kPanelW;
      const double lx = right ? x - 7 : x + 7, width = 6.2 * double(r.name.size());
      const double x0 = right ? lx - width : lx, x1 = right ? lx : lx + width;
      double ly = y - 6;
      for (bool moved = true; moved;) {
        moved = false;
        for (const Box& b : placed)
          if (x0 < b.x1 && b.x0 < x1 && std::abs(b.y - ly) < 13) ly = b.y + 13, moved = true;
      }
      placed.push_back({x0, x1, ly});
      s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"5\" fill=\"{}\"><title>{} ({}): {:.2f} bpw</title>"
                       "</circle><text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"11\" fill=\"{}\"{}>{}</text>\n",
                       x, y, colors[i % 8], xml_escape(r.name), xml_escape(r.format), r.bits_per_weight, lx, ly,
                       colors[i % 8], right ? " text-anchor=\"end\"" : "", xml_escape(r.name));
    }
  }
  s += "</svg>\n";
  return s;
}

}  // namespace quantllm
