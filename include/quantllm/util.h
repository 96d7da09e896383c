// Small services of the library that its front ends (the CLI, the Python module) share: the thread
// count, reading a text file, human-readable sizes and durations, and the progress line on stderr.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace quantllm {

// Threads of every parallel loop (0: all cores). Results never depend on it.
void set_num_threads(int n);
int num_threads();

// Whether this build has the CUDA backend (QUANTLLM_CUDA=ON), and whether a CUDA run could start here
// (the backend is built and a CUDA device answers).
bool cuda_backend_built();
bool cuda_device_usable();

// A UTF-8 text file's contents; Error naming the file when it is missing, unreadable or not UTF-8.
std::string read_text_file(const std::filesystem::path& path);
// Writes `contents` to path atomically (a temporary name in the same directory, then a rename).
void write_file_atomic(const std::filesystem::path& path, std::string_view contents);
// Error naming the path when it exists and overwriting was not asked for (--force). Checked before long runs.
void check_output_path(const std::filesystem::path& path, bool overwrite);

std::string format_duration(double seconds);  // "1m23s", "4.2s"
std::string format_bytes(uint64_t bytes);     // "12.3 MB"

// Progress of a long call: (steps done, steps in all, what was just done). Called on the calling thread.
using ProgressCallback = std::function<void(int64_t done, int64_t total, const std::string& detail)>;

// Progress reporting on stderr: a live bar with ETA when stderr is a terminal, plain lines (at most
// one every few seconds, plus the last) when it is not. Silent when disabled (--json callers may still
// want it: stderr never mixes with the JSON on stdout).
class Progress {
 public:
  Progress(std::string label, int64_t total, bool enabled = true);
  ~Progress();
  // Sets the count done and an optional detail ("block 3/8 mlp.down_proj").
  void update(int64_t done, const std::string& detail = {});
  void finish(const std::string& summary = {});
  // A ProgressCallback that draws this bar (its total taken from the calls).
  ProgressCallback callback();

  static bool stderr_is_tty();
  static void set_globally_enabled(bool on);

 private:
  void draw(bool final);
  std::string label_, detail_;
  int64_t total_, done_ = 0;
  bool enabled_, tty_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace quantllm
