// Importance matrix files: llama.cpp's GGUF imatrix format (read and written) and its legacy .dat
// format (read). Facts about both formats come from llama.cpp's tools/imatrix and
// common/imatrix-loader; the layout summary is in imatrix.h.
//
// The files are untrusted input like checkpoints: every length in a .dat file is checked against
// the bytes left, and the statistics must be usable (finite, non-negative) because a NaN here turns
// into silently wrong quantization later.
#include "io/imatrix.h"

#include "core/error.h"
#include "core/fs.h"
#include "io/gguf.h"
#include "io/mapped_file.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace quantllm {

namespace {

constexpr const char* kKeyDatasets = "imatrix.datasets";
constexpr const char* kKeyChunkCount = "imatrix.chunk_count";
constexpr const char* kKeyChunkSize = "imatrix.chunk_size";
constexpr std::string_view kSumsSuffix = ".in_sum2";
constexpr std::string_view kCountsSuffix = ".counts";
constexpr uint32_t kGgmlF32 = 0;

bool strip_suffix(std::string& s, std::string_view suffix) {
  if (s.size() < suffix.size() || s.compare(s.size() - suffix.size(), suffix.size(), suffix) != 0) return false;
  s.resize(s.size() - suffix.size());
  return true;
}

// Copies n floats from possibly unaligned memory.
std::vector<float> read_floats(const uint8_t* p, size_t n) {
  std::vector<float> v(n);
  if (n) std::memcpy(v.data(), p, n * sizeof(float));
  return v;
}

void check_entry(const std::string& file, const std::string& name, const ImatrixEntry& e) {
  if (e.counts.empty() || e.in_sum2.empty()) fail("{}: tensor '{}': empty importance statistics", file, name);
  if (e.in_sum2.size() % e.counts.size() != 0)
    fail("{}: tensor '{}': {} sums do not divide into {} matrices", file, name, e.in_sum2.size(), e.counts.size());
  for (size_t i = 0; i < e.in_sum2.size(); ++i)
    if (!std::isfinite(e.in_sum2[i]) || e.in_sum2[i] < 0)
      fail("{}: tensor '{}': sum of squares #{} is {} (must be finite and >= 0)", file, name, i, e.in_sum2[i]);
  for (size_t i = 0; i < e.counts.size(); ++i)
    if (e.counts[i] < 0) fail("{}: tensor '{}': count #{} is negative ({})", file, name, i, e.counts[i]);
}

ImportanceMatrix parse_gguf(const uint8_t* data, size_t size, const std::string& file) {
  const GGUFFile g(data, size, file);
  ImportanceMatrix im;
  if (const GGUFValue* t = g.find("general.type")) {
    const std::string* s = t->get_if<std::string>();
    if (!s || *s != "imatrix")
      fail("{}: not an importance matrix (general.type is {}, expected \"imatrix\")", file, t->to_string());
  }
  if (g.find(kKeyDatasets)) im.datasets = g.get_array<std::string>(kKeyDatasets);
  auto u32_key = [&](const char* key) -> int32_t {
    if (!g.find(key)) return 0;
    const uint32_t v = g.get_as<uint32_t>(key);
    if (v > uint32_t(std::numeric_limits<int32_t>::max())) fail("{}: {} = {} is out of range", file, key, v);
    return int32_t(v);
  };
  im.chunk_count = u32_key(kKeyChunkCount);
  im.chunk_size = u32_key(kKeyChunkSize);

  // Pair NAME.in_sum2 with NAME.counts; other tensors are ignored, as llama.cpp does.
  std::map<std::string, std::pair<const GGUFTensorInfo*, const GGUFTensorInfo*>> pairs;
  for (const GGUFTensorInfo& t : g.tensors()) {
    std::string base = t.name;
    if (strip_suffix(base, kSumsSuffix)) pairs[base].first = &t;
    else if (strip_suffix(base, kCountsSuffix)) pairs[base].second = &t;
  }
  for (const auto& [name, pc] : pairs) {
    const auto [sums, counts] = pc;
    if (!sums || !counts)
      fail("{}: tensor '{}' has {} but no {}", file, name, sums ? kSumsSuffix : kCountsSuffix,
           sums ? kCountsSuffix : kSumsSuffix);
    if (sums->type != kGgmlF32 || counts->type != kGgmlF32)
      fail("{}: tensor '{}': {} and {} must be F32", file, name, kSumsSuffix, kCountsSuffix);
    ImatrixEntry e;
    e.in_sum2 = read_floats(sums->data, size_t(sums->numel()));
    for (float c : read_floats(counts->data, size_t(counts->numel()))) {
      // Counts are token totals stored as floats; llama.cpp rounds them back to integers.
      if (!std::isfinite(c) || c < 0 || c > 9e18f) fail("{}: tensor '{}': count {} is not a valid token count", file, name, c);
      e.counts.push_back(std::llround(c));
    }
    // ne of in_sum2 is [n_per_row, n_mat] (written as [n_per_row] when n_mat is 1); of counts [1, n_mat].
    const int64_t row = sums->ne.empty() ? 1 : sums->ne[0];
    if (row <= 0) fail("{}: tensor '{}': {} is empty", file, name, kSumsSuffix);
    if (sums->numel() / row != int64_t(e.counts.size()))
      fail("{}: tensor '{}': {} has {} matrices but {} has {} counts", file, name, kSumsSuffix, sums->numel() / row,
           kCountsSuffix, e.counts.size());
    check_entry(file, name, e);
    im.entries.emplace(name, std::move(e));
  }
  if (im.entries.empty()) fail("{}: no importance statistics (no NAME.in_sum2 / NAME.counts tensors)", file);
  return im;
}

// Bounds-checked reads of the legacy format's little-endian int32 / bytes.
struct DatCursor {
  const uint8_t* data;
  size_t size;
  size_t pos = 0;
  const std::string& file;

  size_t left() const { return size - pos; }
  int32_t i32(std::string_view what) {
    if (left() < 4) fail("{}: truncated legacy imatrix: {} at offset {}", file, what, pos);
    int32_t v;
    std::memcpy(&v, data + pos, 4);
    pos += 4;
    return v;
  }
  const uint8_t* bytes(uint64_t n, std::string_view what) {
    if (n > left()) fail("{}: truncated legacy imatrix: {} needs {} bytes at offset {}, {} left", file, what, n, pos, left());
    const uint8_t* p = data + pos;
    pos += size_t(n);
    return p;
  }
};

ImportanceMatrix parse_legacy(const uint8_t* data, size_t size, const std::string& file) {
  DatCursor c{data, size, 0, file};
  ImportanceMatrix im;
  const int32_t n_entries = c.i32("entry count");
  // Each entry takes at least 16 bytes (name length, ncall, nval, one value).
  if (n_entries < 1 || uint64_t(n_entries) > c.left() / 16)
    fail("{}: not an importance matrix (neither GGUF nor a legacy .dat with a valid entry count: {})", file, n_entries);
  for (int32_t i = 0; i < n_entries; ++i) {
    const int32_t len = c.i32("name length");
    if (len < 0) fail("{}: legacy imatrix entry {}: negative name length {}", file, i, len);
    const uint8_t* p = c.bytes(uint64_t(len), "entry name");
    std::string name(reinterpret_cast<const char*>(p), size_t(len));
    const int32_t ncall = c.i32("call count");
    const int32_t nval = c.i32("value count");
    if (ncall < 0) fail("{}: tensor '{}': negative call count {}", file, name, ncall);
    if (nval < 1) fail("{}: tensor '{}': value count {} (must be at least 1)", file, name, nval);
    const uint8_t* vals = c.bytes(uint64_t(nval) * 4, "values of tensor '" + name + "'");
    ImatrixEntry e;
    e.in_sum2 = read_floats(vals, size_t(nval));
    // Stored values are mean × ncall; llama-quantize divides by ncall, or uses them as they are
    // when ncall is 0 — a count of 1 gives both the same mean.
    e.counts = {ncall > 0 ? int64_t(ncall) : 1};
    check_entry(file, name, e);
    if (!im.entries.emplace(name, std::move(e)).second) fail("{}: tensor '{}' appears twice", file, name);
  }
  // Optional trailer: chunk count, then the dataset name.
  if (c.left() >= 4) {
    im.chunk_count = c.i32("chunk count");
    if (c.left() >= 4) {
      const int32_t len = c.i32("dataset name length");
      if (len > 0) {
        const uint8_t* p = c.bytes(uint64_t(len), "dataset name");
        im.datasets.emplace_back(reinterpret_cast<const char*>(p), size_t(len));
      }
    }
  }
  if (im.chunk_count < 0) fail("{}: negative chunk count {}", file, im.chunk_count);
  return im;
}

}  // namespace

ImportanceMatrix ImportanceMatrix::parse(const uint8_t* data, size_t size, const std::string& name) {
  if (size >= 4 && std::memcmp(data, "GGUF", 4) == 0) return parse_gguf(data, size, name);
  return parse_legacy(data, size, name);
}

ImportanceMatrix ImportanceMatrix::load(const std::filesystem::path& path) {
  const MappedFile f(path);
  return parse(f.data(), f.size(), path.string());
}

std::vector<uint8_t> ImportanceMatrix::to_gguf_bytes() const {
  GGUFWriter w;
  w.add_string("general.type", "imatrix");
  w.add_array<std::string>(kKeyDatasets, datasets);
  w.add_u32(kKeyChunkCount, uint32_t(std::max(chunk_count, 0)));
  w.add_u32(kKeyChunkSize, uint32_t(std::max(chunk_size, 0)));
  for (const auto& [name, e] : entries) {  // std::map: sorted by name, as llama-imatrix writes them
    if (e.counts.empty() || e.in_sum2.empty() || e.in_sum2.size() % e.counts.size() != 0)
      fail("imatrix tensor '{}': {} sums for {} matrices", name, e.in_sum2.size(), e.counts.size());
    const int64_t n_mat = e.n_mat();
    std::vector<uint8_t> sums(e.in_sum2.size() * 4);
    std::memcpy(sums.data(), e.in_sum2.data(), sums.size());
    std::vector<float> counts_f(e.counts.begin(), e.counts.end());
    std::vector<uint8_t> counts(counts_f.size() * 4);
    std::memcpy(counts.data(), counts_f.data(), counts.size());
    w.add_tensor(name + std::string(kSumsSuffix), kGgmlF32, {e.n_per_row(), n_mat}, std::move(sums));
    w.add_tensor(name + std::string(kCountsSuffix), kGgmlF32, {1, n_mat}, std::move(counts));
  }
  return w.to_bytes();
}

void ImportanceMatrix::save(const std::filesystem::path& path) const {
  std::vector<uint8_t> bytes;
  try {
    bytes = to_gguf_bytes();
  } catch (const Error& e) {
    fail("{}: {}", path.string(), e.what());
  }
  write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

std::vector<float> ImportanceMatrix::values(const std::string& name) const {
  const auto it = entries.find(name);
  if (it == entries.end()) fail("importance matrix has no entry for tensor '{}'", name);
  const ImatrixEntry& e = it->second;
  const int64_t n = e.n_per_row();
  std::vector<float> out(e.in_sum2.size());
  for (int64_t m = 0; m < e.n_mat(); ++m) {
    const float count = float(e.counts[size_t(m)]);
    for (int64_t i = 0; i < n; ++i) {
      const size_t k = size_t(m * n + i);
      out[k] = count > 0 ? e.in_sum2[k] / count : 1.0f;
    }
  }
  return out;
}

void ImportanceMatrix::accumulate(const std::string& name, std::span<const float> sum_x2, int64_t n_tokens, int64_t mat,
                                  int64_t n_mat) {
  QL_ASSERT(n_mat >= 1 && mat >= 0 && mat < n_mat && n_tokens >= 0, "tensor '{}'", name);
  ImatrixEntry& e = entries[name];
  if (e.counts.empty()) {
    e.counts.assign(size_t(n_mat), 0);
    e.in_sum2.assign(size_t(n_mat) * sum_x2.size(), 0.0f);
  } else if (e.n_mat() != n_mat || e.n_per_row() != int64_t(sum_x2.size())) {
    fail("importance matrix tensor '{}': statistics of {} matrices × {} channels, given {} × {}", name, e.n_mat(),
         e.n_per_row(), n_mat, sum_x2.size());
  }
  float* dst = e.in_sum2.data() + size_t(mat) * sum_x2.size();
  for (size_t i = 0; i < sum_x2.size(); ++i) dst[i] += sum_x2[i];
  e.counts[size_t(mat)] += n_tokens;
}

}  // namespace quantllm
