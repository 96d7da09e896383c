// safetensors reading (single files and sharded checkpoints) and writing.
//
// Checkpoints come from the internet, so the header is treated as hostile: every number in it is
// checked against the file before anything points into the mapping, and all arithmetic on those
// numbers is overflow-checked. A bad file gives one Error line naming the file and the tensor; it
// never crashes and never yields a view outside the mapping.
#include "io/safetensors.h"

#include "core/fs.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <set>

namespace quantllm {

using nlohmann::json;

namespace {

// The reference implementation refuses headers above 100 MB; a larger one is an attack or a bug,
// and refusing it keeps the JSON parser from being fed gigabytes.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// A header number that must be a non-negative integer (JSON floats and negatives are refused).
bool as_u64(const json& j, uint64_t& out) {
  if (!j.is_number_unsigned()) return false;
  out = j.get<uint64_t>();
  return true;
}

// Parses one tensor entry {"dtype": ..., "shape": [...], "data_offsets": [b, e]}.
// Unknown extra fields are ignored, as the reference implementation does.
TensorView parse_entry(const std::string& file, const std::string& name, const json& entry, const uint8_t* data,
                       uint64_t data_size, uint64_t& begin_out, uint64_t& end_out) {
  if (!entry.is_object()) fail("{}: tensor '{}': header entry is not a JSON object", file, name);
  const auto dt = entry.find("dtype");
  const auto sh = entry.find("shape");
  const auto off = entry.find("data_offsets");
  if (dt == entry.end() || sh == entry.end() || off == entry.end())
    fail("{}: tensor '{}': header entry needs \"dtype\", \"shape\" and \"data_offsets\"", file, name);
  if (!dt->is_string()) fail("{}: tensor '{}': \"dtype\" is not a string", file, name);
  const auto dtype = dtype_from_name(dt->get_ref<const std::string&>());
  if (!dtype) fail("{}: tensor '{}': unknown dtype '{}'", file, name, dt->get_ref<const std::string&>());

  if (!sh->is_array()) fail("{}: tensor '{}': \"shape\" is not an array", file, name);
  Shape shape;
  shape.reserve(sh->size());
  // numel over the non-zero dimensions must fit int64 so that shape_numel() can never overflow,
  // whatever order the dimensions come in.
  uint64_t numel_nonzero = 1;
  bool has_zero = false;
  for (const auto& d : *sh) {
    uint64_t v;
    if (!as_u64(d, v)) fail("{}: tensor '{}': shape {} has an entry that is not a non-negative integer", file, name, sh->dump());
    if (v == 0) has_zero = true;
    else if (__builtin_mul_overflow(numel_nonzero, v, &numel_nonzero) ||
             numel_nonzero > uint64_t(std::numeric_limits<int64_t>::max()))
      fail("{}: tensor '{}': shape {} is too large", file, name, sh->dump());
    shape.push_back(int64_t(v));
  }
  const uint64_t numel = has_zero ? 0 : numel_nonzero;
  uint64_t expected_bytes;
  if (__builtin_mul_overflow(numel, uint64_t(dtype_size(*dtype)), &expected_bytes))
    fail("{}: tensor '{}': shape {} is too large", file, name, sh->dump());

  uint64_t begin, end;
  if (!off->is_array() || off->size() != 2 || !as_u64((*off)[0], begin) || !as_u64((*off)[1], end))
    fail("{}: tensor '{}': \"data_offsets\" must be two non-negative integers [begin, end]", file, name);
  if (begin > end) fail("{}: tensor '{}': data_offsets [{}, {}] has begin > end", file, name, begin, end);
  if (end > data_size)
    fail("{}: tensor '{}': data_offsets [{}, {}] outside the data section ({} bytes; file truncated?)", file, name,
         begin, end, data_size);
  if (end - begin != expected_bytes)
    fail("{}: tensor '{}': {} {} needs {} bytes but data_offsets [{}, {}] hold {}", file, name,
         dtype_name(*dtype), shape_str(shape), expected_bytes, begin, end, end - begin);
  begin_out = begin;
  end_out = end;
  return TensorView{name, *dtype, std::move(shape), data + begin, size_t(end - begin)};
}

}  // namespace

SafetensorsHeader parse_safetensors(const uint8_t* data, size_t size, const std::string& name) {
  if (size < 8) fail("{}: not a safetensors file: {} bytes, too short for the 8-byte header length", name, size);
  const uint64_t header_len = read_u64_le(data);
  if (header_len > size - 8)
    fail("{}: header length {} exceeds the file ({} bytes; truncated or not a safetensors file)", name, header_len,
         size);
  if (header_len > kMaxHeaderBytes) fail("{}: header length {} exceeds the 100 MB limit", name, header_len);
  if (header_len < 2) fail("{}: header of {} bytes cannot hold a JSON object", name, header_len);

  const char* hbegin = reinterpret_cast<const char*>(data + 8);
  json header;
  try {
    header = json::parse(hbegin, hbegin + header_len);
  } catch (const json::exception& e) {
    // nlohmann's message carries the byte position; strip its "[json.exception.parse_error.101]" prefix
    std::string msg = e.what();
    if (auto p = msg.find("] "); p != std::string::npos) msg = msg.substr(p + 2);
    fail("{}: malformed JSON header: {}", name, msg);
  }
  if (!header.is_object()) fail("{}: JSON header is not an object", name);

  SafetensorsHeader out;
  out.data_offset = size_t(8 + header_len);
  const uint8_t* section = data + out.data_offset;
  const uint64_t section_size = size - out.data_offset;

  struct Span {
    uint64_t begin, end;
    const std::string* name;
  };
  std::vector<Span> spans;
  spans.reserve(header.size());
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) fail("{}: \"__metadata__\" is not a JSON object", name);
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) fail("{}: \"__metadata__\" value of '{}' is not a string", name, mk);
        out.metadata.emplace(mk, mv.get<std::string>());
      }
      continue;
    }
    uint64_t b, e;
    TensorView view = parse_entry(name, key, value, section, section_size, b, e);
    auto [it, inserted] = out.tensors.emplace(key, std::move(view));
    QL_ASSERT(inserted);  // JSON object keys are unique after parsing
    spans.push_back({b, e, &it->first});
  }

  // Overlap check: sorted by begin, each tensor must start at or after the furthest end so far.
  // Zero-byte tensors occupy nothing and may share an offset with anything.
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t furthest = 0;
  const std::string* furthest_name = nullptr;
  for (const Span& s : spans) {
    if (s.begin == s.end) continue;
    if (furthest_name && s.begin < furthest)
      fail("{}: tensor '{}': data_offsets [{}, {}] overlap tensor '{}' (which ends at {})", name, *s.name, s.begin,
           s.end, *furthest_name, furthest);
    furthest = s.end;
    furthest_name = s.name;
  }
  return out;
}

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path)
    : file_(std::make_shared<MappedFile>(path)) {
  SafetensorsHeader h = parse_safetensors(file_->data(), file_->size(), path.string());
  tensors_ = std::move(h.tensors);
  metadata_ = std::move(h.metadata);
}

Tensor TensorView::to_f32() const {
  if (dtype != DType::F32 && dtype != DType::F16 && dtype != DType::BF16 && dtype != DType::F64 && dtype != DType::F8_E4M3)
    fail("tensor '{}': cannot convert {} to F32", name, dtype_name(dtype));
  Tensor t(shape);
  const size_t n = size_t(numel());
  QL_ASSERT(n * dtype_size(dtype) == nbytes, "tensor '{}'", name);
  if (n == 0) return t;
  // A header whose length is not a multiple of 8 leaves the data unaligned for its element type;
  // converting through an aligned copy keeps the element loads well defined.
  if (reinterpret_cast<uintptr_t>(data) % dtype_size(dtype) != 0) {
    std::vector<uint64_t> aligned((nbytes + 7) / 8);
    std::memcpy(aligned.data(), data, nbytes);
    convert_to_f32(dtype, aligned.data(), t.ptr(), n);
  } else {
    convert_to_f32(dtype, data, t.ptr(), n);
  }
  return t;
}

// ---------------------------------------------------------------------------------------------
// Checkpoints

namespace {

constexpr const char* kIndexName = "model.safetensors.index.json";

// weight_map of an index file: tensor name -> shard file name.
std::map<std::string, std::string> read_index(const fs::path& index_path) {
  const std::string text = read_file(index_path);
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    std::string msg = e.what();
    if (auto p = msg.find("] "); p != std::string::npos) msg = msg.substr(p + 2);
    fail("{}: malformed JSON: {}", index_path.string(), msg);
  }
  if (!j.is_object()) fail("{}: not a JSON object", index_path.string());
  const auto wm = j.find("weight_map");
  if (wm == j.end() || !wm->is_object()) fail("{}: no \"weight_map\" object", index_path.string());
  std::map<std::string, std::string> out;
  for (const auto& [tensor, shard] : wm->items()) {
    if (!shard.is_string()) fail("{}: tensor '{}': shard name is not a string", index_path.string(), tensor);
    const std::string& s = shard.get_ref<const std::string&>();
    // Shards live next to the index; a name that climbs out of the directory is refused.
    const fs::path sp(s);
    if (s.empty() || sp.is_absolute() || std::any_of(sp.begin(), sp.end(), [](const fs::path& c) { return c == ".."; }))
      fail("{}: tensor '{}': shard name '{}' is not a file name inside the checkpoint directory", index_path.string(),
           tensor, s);
    out.emplace(tensor, s);
  }
  if (out.empty()) fail("{}: \"weight_map\" is empty", index_path.string());
  return out;
}

}  // namespace

Checkpoint::Checkpoint(const std::filesystem::path& dir_or_file) : path_(dir_or_file) {
  std::error_code ec;
  if (!fs::exists(path_, ec)) fail("{}: no such file or directory", path_.string());

  auto add_file = [&](const fs::path& p) -> SafetensorsFile& {
    files_.push_back(std::make_unique<SafetensorsFile>(p));
    return *files_.back();
  };
  auto add_views = [&](const SafetensorsFile& f) {
    for (const auto& [name, view] : f.tensors()) {
      [[maybe_unused]] auto [it, inserted] = index_.emplace(name, &view);
      QL_ASSERT(inserted);  // one file: names are unique JSON keys
    }
  };

  if (!fs::is_directory(path_, ec)) {
    add_views(add_file(path_));
    return;
  }

  const fs::path index_path = path_ / kIndexName;
  if (fs::exists(index_path, ec)) {
    const auto weight_map = read_index(index_path);
    std::map<std::string, std::vector<std::string>> by_shard;  // shard -> tensors the index puts there
    for (const auto& [tensor, shard] : weight_map) by_shard[shard].push_back(tensor);
    for (const auto& [shard, listed] : by_shard) {
      const fs::path shard_path = path_ / shard;
      if (!fs::exists(shard_path, ec))
        fail("{}: shard listed in {} does not exist", shard_path.string(), index_path.string());
      const SafetensorsFile& f = add_file(shard_path);
      for (const std::string& t : listed)
        if (!f.tensors().count(t))
          fail("{}: tensor '{}' is listed in {} for this shard but the shard does not contain it",
               shard_path.string(), t, index_path.string());
      for (const auto& [t, view] : f.tensors()) {
        const auto it = weight_map.find(t);
        if (it == weight_map.end())
          fail("{}: tensor '{}' is in the shard but not listed in {}", shard_path.string(), t, index_path.string());
        if (it->second != shard)
          fail("{}: tensor '{}' is in this shard but {} places it in '{}'", shard_path.string(), t,
               index_path.string(), it->second);
        index_.emplace(t, &view);
      }
    }
    return;
  }

  const fs::path single = path_ / "model.safetensors";
  if (fs::exists(single, ec)) {
    add_views(add_file(single));
    return;
  }
  fail("{}: no model.safetensors or {} in this directory", path_.string(), kIndexName);
}

const TensorView& Checkpoint::get(const std::string& name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) fail("tensor '{}' not found in {}", name, path_.string());
  return *it->second;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& [name, view] : index_) out.push_back(name);
  return out;
}

size_t Checkpoint::total_bytes() const {
  size_t total = 0;
  for (const auto& [name, view] : index_) total += view->nbytes;
  return total;
}

// ---------------------------------------------------------------------------------------------
// Writing

TensorData TensorData::from_f32(std::string name, const Tensor& t) { return from_f32_as(std::move(name), t, DType::F32); }

TensorData TensorData::from_f32_as(std::string name, const Tensor& t, DType dtype) {
  QL_ASSERT(int64_t(t.data.size()) == shape_numel(t.shape));
  TensorData d{std::move(name), dtype, t.shape, {}};
  const size_t n = t.data.size();
  d.bytes.resize(n * dtype_size(dtype));
  switch (dtype) {
    case DType::F32:
      if (n) std::memcpy(d.bytes.data(), t.data.data(), n * 4);
      break;
    case DType::F16:
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) {
        const uint16_t h = dtype == DType::F16 ? f32_to_f16(t.data[i]) : f32_to_bf16(t.data[i]);
        d.bytes[2 * i] = uint8_t(h & 0xff);
        d.bytes[2 * i + 1] = uint8_t(h >> 8);
      }
      break;
    default:
      fail("tensor '{}': cannot store F32 values as {}", d.name, dtype_name(dtype));
  }
  return d;
}

namespace {

// One tensor of a header: what build_header needs to know of it.
struct HeaderEntry {
  const std::string* name;
  DType dtype;
  const Shape* shape;
  uint64_t nbytes;
};

// Header JSON + padding for tensors given in the order their data follows (by name).
std::string build_header(const std::vector<HeaderEntry>& order, const std::map<std::string, std::string>& metadata) {
  // ordered_json keeps "__metadata__" first and the tensors in data order, as the reference writer does.
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    auto& m = h["__metadata__"];
    m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
  }
  uint64_t offset = 0;
  for (const HeaderEntry& t : order) {
    nlohmann::ordered_json e = nlohmann::ordered_json::object();
    e["dtype"] = std::string(dtype_name(t.dtype));
    e["shape"] = *t.shape;
    e["data_offsets"] = {offset, offset + t.nbytes};
    h[*t.name] = std::move(e);
    offset += t.nbytes;
  }
  std::string s = h.dump();
  // Pad with spaces so that the data section starts 8-byte aligned (the length prefix is 8 bytes).
  s.append((8 - s.size() % 8) % 8, ' ');
  return s;
}

std::string build_header(const std::vector<const TensorData*>& order, const std::map<std::string, std::string>& metadata) {
  std::vector<HeaderEntry> entries;
  entries.reserve(order.size());
  for (const TensorData* t : order) entries.push_back({&t->name, t->dtype, &t->shape, t->bytes.size()});
  return build_header(entries, metadata);
}

std::vector<const TensorData*> check_and_order(const std::vector<TensorData>& tensors) {
  std::vector<const TensorData*> order;
  order.reserve(tensors.size());
  for (const TensorData& t : tensors) {
    if (t.name == "__metadata__") fail("tensor name '__metadata__' is reserved in safetensors");
    for (int64_t d : t.shape)
      if (d < 0) fail("tensor '{}': negative dimension in shape {}", t.name, shape_str(t.shape));
    if (uint64_t(shape_numel(t.shape)) * dtype_size(t.dtype) != t.bytes.size())
      fail("tensor '{}': {} {} needs {} bytes, got {}", t.name, dtype_name(t.dtype), shape_str(t.shape),
           uint64_t(shape_numel(t.shape)) * dtype_size(t.dtype), t.bytes.size());
    order.push_back(&t);
  }
  std::sort(order.begin(), order.end(), [](const TensorData* a, const TensorData* b) { return a->name < b->name; });
  for (size_t i = 1; i < order.size(); ++i)
    if (order[i]->name == order[i - 1]->name) fail("tensor '{}' given twice", order[i]->name);
  return order;
}

void put_u64_le(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = uint8_t(v >> (8 * i));
}

}  // namespace

std::vector<uint8_t> safetensors_bytes(const std::vector<TensorData>& tensors,
                                       const std::map<std::string, std::string>& metadata) {
  const auto order = check_and_order(tensors);
  const std::string header = build_header(order, metadata);
  size_t total = 8 + header.size();
  for (const TensorData* t : order) total += t->bytes.size();
  std::vector<uint8_t> out(total);
  put_u64_le(out.data(), header.size());
  std::memcpy(out.data() + 8, header.data(), header.size());
  size_t pos = 8 + header.size();
  for (const TensorData* t : order) {
    if (!t->bytes.empty()) std::memcpy(out.data() + pos, t->bytes.data(), t->bytes.size());
    pos += t->bytes.size();
  }
  return out;
}

void write_safetensors(const std::filesystem::path& path, const std::vector<TensorData>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<const TensorData*> order;
  std::string header;
  try {
    order = check_and_order(tensors);
    header = build_header(order, metadata);
  } catch (const Error& e) {
    fail("{}: {}", path.string(), e.what());
  }
  write_file_atomic(path, [&](std::FILE* f) {
    auto put = [&](const void* p, size_t n) {
      if (n && std::fwrite(p, 1, n, f) != n) fail("{}: write error: {}", path.string(), std::strerror(errno));
    };
    uint8_t len[8];
    put_u64_le(len, header.size());
    put(len, 8);
    put(header.data(), header.size());
    for (const TensorData* t : order) put(t->bytes.data(), t->bytes.size());
  });
}

SafetensorsLayout plan_safetensors(const std::vector<SafetensorsEntry>& tensors,
                                   const std::map<std::string, std::string>& metadata) {
  std::vector<const SafetensorsEntry*> order;
  for (const auto& t : tensors) {
    if (t.name == "__metadata__") fail("tensor name '__metadata__' is reserved in safetensors");
    for (int64_t d : t.shape)
      if (d < 0) fail("tensor '{}': negative dimension in shape {}", t.name, shape_str(t.shape));
    order.push_back(&t);
  }
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->name < b->name; });
  for (size_t i = 1; i < order.size(); ++i)
    if (order[i]->name == order[i - 1]->name) fail("tensor '{}' given twice", order[i]->name);
  std::vector<HeaderEntry> entries;
  for (const auto* t : order)
    entries.push_back({&t->name, t->dtype, &t->shape, uint64_t(shape_numel(t->shape)) * dtype_size(t->dtype)});
  const std::string header = build_header(entries, metadata);
  SafetensorsLayout l;
  l.prefix.resize(8 + header.size());
  put_u64_le(l.prefix.data(), header.size());
  std::memcpy(l.prefix.data() + 8, header.data(), header.size());
  uint64_t pos = l.prefix.size();
  for (const auto& e : entries) {
    l.ranges[*e.name] = {pos, e.nbytes};
    pos += e.nbytes;
  }
  l.file_size = pos;
  return l;
}

}  // namespace quantllm
