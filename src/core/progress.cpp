// Progress bars and plain progress lines (see progress.h).
#include "core/progress.h"

#include <fmt/format.h>

#include <cstdio>
#include <unistd.h>

namespace quantllm {

namespace {
bool g_enabled = true;
}

void Progress::set_globally_enabled(bool on) { g_enabled = on; }
bool Progress::stderr_is_tty() { return ::isatty(2) == 1; }

Progress::Progress(std::string label, int64_t total, bool enabled)
    : label_(std::move(label)), total_(total), enabled_(enabled && g_enabled), tty_(stderr_is_tty()) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

Progress::~Progress() {
  if (!finished_ && enabled_ && tty_) std::fputc('\n', stderr);
}

ProgressCallback Progress::callback() {
  return [this](int64_t done, int64_t total, const std::string& detail) {
    total_ = total;
    update(done, detail);
  };
}

void Progress::update(int64_t done, const std::string& detail) {
  done_ = done;
  detail_ = detail;
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_draw_).count();
  if (since < (tty_ ? 0.1 : 5.0) || done >= total_) return;  // finish() draws the last line
  last_draw_ = now;
  draw(false);
}

void Progress::finish(const std::string& summary) {
  if (finished_) return;
  finished_ = true;
  if (!enabled_) return;
  done_ = total_;
  if (!summary.empty()) detail_ = summary;
  draw(true);
}

void Progress::draw(bool final) {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double frac = total_ > 0 ? double(done_) / double(total_) : 1.0;
  std::string eta;
  if (!final && done_ > 0 && frac < 1) eta = " ETA " + format_duration(elapsed / frac - elapsed);
  if (tty_) {
    constexpr int kWidth = 28;
    const int filled = int(frac * kWidth + 0.5);
    std::string bar(size_t(filled), '#');
    bar.resize(kWidth, '.');
    std::fprintf(stderr, "\r\033[K%s [%s] %lld/%lld %s%s%s", label_.c_str(), bar.c_str(), (long long)done_,
                 (long long)total_, format_duration(elapsed).c_str(), eta.c_str(),
                 detail_.empty() ? "" : ("  " + detail_).c_str());
    if (final) std::fputc('\n', stderr);
  } else {
    std::fprintf(stderr, "%s: %lld/%lld (%.0f%%) %s%s%s\n", label_.c_str(), (long long)done_, (long long)total_,
                 frac * 100, format_duration(elapsed).c_str(), eta.c_str(),
                 detail_.empty() ? "" : ("  " + detail_).c_str());
  }
  std::fflush(stderr);
}

std::string format_duration(double s) {
  if (s < 60) return fmt::format("{:.1f}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", int(s / 60), int(s) % 60);
  return fmt::format("{}h{:02}m", int(s / 3600), (int(s) % 3600) / 60);
}

std::string format_bytes(uint64_t b) {
  if (b < 1024) return fmt::format("{} B", b);
  if (b < (1u << 20)) return fmt::format("{:.1f} KiB", double(b) / 1024);
  if (b < (1ull << 30)) return fmt::format("{:.1f} MiB", double(b) / (1 << 20));
  return fmt::format("{:.2f} GiB", double(b) / double(1ull << 30));
}

}  // namespace quantllm
