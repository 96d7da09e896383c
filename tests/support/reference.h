// Test support: paths of ../shared and reading the reference models' reference.json.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <string>

namespace quantllm::test {

inline std::filesystem::path shared_dir() { return QUANTLLM_SHARED_DIR; }
inline std::filesystem::path model_dir(const std::string& name) { return shared_dir() / "models" / name; }
inline std::filesystem::path data_file(const std::string& name) { return shared_dir() / "data" / name; }

inline nlohmann::json reference(const std::string& model) {
  std::ifstream f(model_dir(model) / "reference.json");
  return nlohmann::json::parse(f);
}

inline const char* kModels[] = {"gutenberg-llama-33m", "gutenberg-opt-28m"};

}  // namespace quantllm::test
