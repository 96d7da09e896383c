// Test support: paths of ../shared and reading the reference models' reference.json.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace quantllm::test {

// ../shared, or $QUANTLLM_SHARED_DIR when set (the GPU machine gets a copy elsewhere).
inline std::filesystem::path shared_dir() {
  const char* env = std::getenv("QUANTLLM_SHARED_DIR");
  return env && *env ? std::filesystem::path(env) : std::filesystem::path(QUANTLLM_SHARED_DIR);
}
inline std::filesystem::path model_dir(const std::string& name) { return shared_dir() / "models" / name; }
inline std::filesystem::path data_file(const std::string& name) { return shared_dir() / "data" / name; }

inline nlohmann::json reference(const std::string& model) {
  std::ifstream f(model_dir(model) / "reference.json");
  return nlohmann::json::parse(f);
}

// The 2023 families (every method's tests run on them) and the 2026 ones (architecture tests).
inline const char* kModels[] = {"gutenberg-llama-33m", "gutenberg-opt-28m"};
inline const char* kModels2026[] = {"gutenberg-gemma3-16m", "gutenberg-qwen3moe-21m"};

}  // namespace quantllm::test
