// Progress reporting on stderr: a live bar with ETA when stderr is a terminal, plain lines (at most
// one every few seconds, plus the last) when it is not. Silent when disabled (--quiet / --json
// callers may still want it: stderr never mixes with the JSON on stdout).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace quantllm {

class Progress {
 public:
  Progress(std::string label, int64_t total, bool enabled = true);
  ~Progress();
  // Sets the count done and an optional detail ("block 3/8 mlp.down_proj").
  void update(int64_t done, const std::string& detail = {});
  void finish(const std::string& summary = {});

  static bool stderr_is_tty();
  static void set_globally_enabled(bool on);

 private:
  void draw(bool final);
  std::string label_, detail_;
  int64_t total_, done_ = 0;
  bool enabled_, tty_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

std::string format_duration(double seconds);  // "1m23s", "4.2s"
std::string format_bytes(uint64_t bytes);     // "12.3 MB"

}  // namespace quantllm
