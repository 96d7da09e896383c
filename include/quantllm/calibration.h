// Calibration data as the seed library took it: a list of texts, or the path of a text file
// (or "self": text sampled from the model itself).
#pragma once

#include <filesystem>
#include <initializer_list>
#include <string>
#include <vector>

namespace quantllm {

class CalibrationData {
 public:
  CalibrationData(std::vector<std::string> texts) : texts_(std::move(texts)) {}
  CalibrationData(std::initializer_list<std::string> texts) : texts_(texts) {}
  CalibrationData(std::filesystem::path file) : file_(std::move(file)), is_file_(true) {}
  CalibrationData(const std::string& file) : file_(file), is_file_(true) {}
  CalibrationData(const char* file) : file_(file), is_file_(true) {}
  bool is_file() const { return is_file_; }
  const std::vector<std::string>& texts() const { return texts_; }
  const std::filesystem::path& file() const { return file_; }

 private:
  std::vector<std::string> texts_;
  std::filesystem::path file_;
  bool is_file_ = false;
};

}  // namespace quantllm
