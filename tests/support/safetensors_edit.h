// A safetensors file split into its JSON header and data section, for tests that damage one part of a
// checkpoint and write it back.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "support/run.h"

namespace quantllm::test {

struct StFile {
  nlohmann::json header;
  std::string data;
};

inline StFile read_st(const std::filesystem::path& p) {
  const std::string bytes = read_all(p);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  return {nlohmann::json::parse(bytes.substr(8, n)), bytes.substr(8 + n)};
}

inline void write_st(const std::filesystem::path& p, const StFile& f) {
  const std::string h = f.header.dump();
  const uint64_t n = h.size();
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << h << f.data;
}

}  // namespace quantllm::test
