// The llama.cpp goldens of the ggml formats (tests/data/ggml/*.qlgg, made by
// tests/golden/gen_ggml_goldens.cpp, whose header describes the format): inputs, an importance row, and
// llama.cpp's bytes and dequantized floats per type, without and with the importance matrix.
#pragma once

#include "core/error.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace quantllm::test {

struct GoldenEntry {
  uint32_t type_id;
  bool with_imatrix;
  std::vector<uint8_t> bytes;
  std::vector<float> dequantized;
};

struct GoldenSet {
  std::string name;
  int64_t nrows, n_per_row;
  std::vector<float> x, imatrix;
  std::vector<GoldenEntry> entries;
};

template <typename T>
T get(std::ifstream& f) {
  T v;
  f.read(reinterpret_cast<char*>(&v), sizeof v);
  return v;
}

inline std::vector<float> get_floats(std::ifstream& f, size_t n) {
  std::vector<float> v(n);
  f.read(reinterpret_cast<char*>(v.data()), std::streamsize(n * 4));
  return v;
}

inline GoldenSet load_set(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  char magic[4];
  f.read(magic, 4);
  QL_ASSERT(f && std::memcmp(magic, "QLGG", 4) == 0 && get<uint32_t>(f) == 1, "bad golden file {}", path.string());
  GoldenSet s;
  s.name = path.stem().string();
  s.nrows = get<uint32_t>(f);
  s.n_per_row = get<uint32_t>(f);
  s.x = get_floats(f, size_t(s.nrows * s.n_per_row));
  s.imatrix = get_floats(f, size_t(s.n_per_row));
  const uint32_t n_entries = get<uint32_t>(f);
  for (uint32_t i = 0; i < n_entries; ++i) {
    GoldenEntry e;
    e.type_id = get<uint32_t>(f);
    e.with_imatrix = get<uint32_t>(f) != 0;
    e.bytes.resize(get<uint64_t>(f));
    f.read(reinterpret_cast<char*>(e.bytes.data()), std::streamsize(e.bytes.size()));
    e.dequantized = get_floats(f, size_t(s.nrows * s.n_per_row));
    s.entries.push_back(std::move(e));
  }
  QL_ASSERT(bool(f), "truncated golden file {}", path.string());
  return s;
}

inline const std::vector<GoldenSet>& golden_sets() {
  static const std::vector<GoldenSet> sets = [] {
    std::vector<std::filesystem::path> paths;
    for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(QUANTLLM_TEST_DATA) / "ggml"))
      if (e.path().extension() == ".qlgg") paths.push_back(e.path());
    std::sort(paths.begin(), paths.end());
    std::vector<GoldenSet> out;
    for (const auto& p : paths) out.push_back(load_set(p));
    return out;
  }();
  return sets;
}

}  // namespace quantllm::test
