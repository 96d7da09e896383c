// Calibration data: what the calibrated methods (GPTQ, AWQ, AWQ's scaling, importance matrices) run
// through the model to see its activations.
//
// Calibration (the request's field) names a text file (or "self": text sampled from the model itself),
// texts, or ready token windows, and how many windows of how many tokens to draw (seeded) — exactly as
// `quantllm quantize --calib FILE --nsamples N --seqlen T --seed S`. CalibrationData is the seed library's
// argument shape: a list of texts, or the path of a text file (a string is a path), or token windows.
#pragma once

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <vector>

namespace quantllm {

struct Calibration {
  std::string source;                         // a text file, or "self"
  std::vector<std::string> texts;             // or texts, joined with blank lines and drawn from
  std::vector<std::vector<int32_t>> windows;  // or token windows used as they are (BOS included where wanted)
  int64_t nsamples = 128;                     // windows drawn from the text
  int64_t seqlen = 512;                       // tokens per window
  uint64_t seed = 0;
  bool empty() const { return source.empty() && texts.empty() && windows.empty(); }
};

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
  // Fills c's source, texts or windows; Error when there is nothing.
  void fill(Calibration& c) const;

 private:
  std::vector<std::string> texts_;
  std::vector<std::vector<int32_t>> windows_;
  std::filesystem::path file_;
  bool is_file_ = false;
};

}  // namespace quantllm
