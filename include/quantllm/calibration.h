// Calibration data as the seed library took it: a list of texts, or the path of a text file
// (or "self": text sampled from the model itself), or ready token windows (from_windows).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

namespace quantllm {

// Progress of a long call: (steps done, steps in all, what was just done). Called on the calling thread.
using ProgressCallback = std::function<void(int64_t done, int64_t total, const std::string& detail)>;

class CalibrationData {
 public:
  CalibrationData(std::vector<std::string> texts) : texts_(std::move(texts)) {}
  CalibrationData(std::initializer_list<std::string> texts) : texts_(texts) {}
  CalibrationData(std::filesystem::path file) : file_(std::move(file)), is_file_(true) {}
  CalibrationData(const std::string& file) : file_(file), is_file_(true) {}
  CalibrationData(const char* file) : file_(file), is_file_(true) {}
  // Token windows used as they are (all of one length, BOS included where the model wants it);
  // nsamples / seqlen / calibration_steps do not apply.
  static CalibrationData from_windows(std::vector<std::vector<int32_t>> windows) {
    CalibrationData d(std::vector<std::string>{});
    d.windows_ = std::move(windows);
    return d;
  }
  bool is_file() const { return is_file_; }
  const std::vector<std::string>& texts() const { return texts_; }
  const std::vector<std::vector<int32_t>>& windows() const { return windows_; }
  const std::filesystem::path& file() const { return file_; }

 private:
  std::vector<std::string> texts_;
  std::vector<std::vector<int32_t>> windows_;
  std::filesystem::path file_;
  bool is_file_ = false;
};

}  // namespace quantllm
