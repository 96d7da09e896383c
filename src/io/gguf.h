// GGUF (llama.cpp's model container), version 3: a validating reader over a memory mapping and a
// builder-style writer.
//
// File layout (all little-endian; string = u64 byte length + bytes, no terminator):
//   "GGUF"  u32 version  u64 n_tensors  u64 n_kv
//   n_kv × { string key, u32 value type, value }            value: scalar, string, or
//                                                           ARRAY = u32 elem type, u64 count, elements
//   n_tensors × { string name, u32 n_dims, n_dims × u64 ne, u32 ggml type, u64 offset }
//   padding to `general.alignment` (u32 key, default 32), then the data section; each tensor's
//   offset is relative to the data section and a multiple of the alignment.
// Dimensions are in ggml order: ne[0] is the row length (innermost), so a PyTorch [out, in] weight
// has ne = {in, out}.
//
// Versions: 3 is written. 2 is read as well (its layout is identical; v3 only allowed big-endian
// files, which are refused here). v1 (32-bit counts) is refused, as llama.cpp does.
//
// The reader treats the file as hostile: counts are checked against the bytes left before anything
// is allocated, every string and tensor must lie inside the file, tensor sizes must agree with their
// type's block size, tensors must be aligned and must not overlap; nested arrays, duplicate keys or
// tensor names, names of 64 bytes or more (llama.cpp's GGML_MAX_NAME) and more than 4 dimensions
// are refused. Each failure throws one Error line naming the file and, where relevant, the key or tensor.
#pragma once

#include "quant/ggml/types.h"

#include "core/tensor.h"
#include "io/mapped_file.h"

#include <concepts>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace quantllm {

// GGUF metadata value types (gguf.h's gguf_type).
enum class GGUFType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
std::string_view gguf_type_name(GGUFType t);  // "UINT32", "STRING", …

// C++ types that map one to one onto GGUF scalar types (std::string ↔ STRING, bool ↔ BOOL).
template <typename T>
concept GGUFScalar = std::same_as<T, uint8_t> || std::same_as<T, int8_t> || std::same_as<T, uint16_t> ||
                     std::same_as<T, int16_t> || std::same_as<T, uint32_t> || std::same_as<T, int32_t> ||
                     std::same_as<T, float> || std::same_as<T, bool> || std::same_as<T, std::string> ||
                     std::same_as<T, uint64_t> || std::same_as<T, int64_t> || std::same_as<T, double>;

// One metadata value: a scalar, or an array of one scalar type (arrays of arrays are not allowed).
class GGUFValue {
 public:
  // Alternatives 0..11 are the scalars in type-id order without ARRAY; 12..23 the arrays of each.
  using Storage = std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float, bool, std::string,
                               uint64_t, int64_t, double, std::vector<uint8_t>, std::vector<int8_t>,
                               std::vector<uint16_t>, std::vector<int16_t>, std::vector<uint32_t>,
                               std::vector<int32_t>, std::vector<float>, std::vector<bool>,
                               std::vector<std::string>, std::vector<uint64_t>, std::vector<int64_t>,
                               std::vector<double>>;

  GGUFValue() = default;  // UINT8 0
  template <GGUFScalar T>
  explicit GGUFValue(T v) : v_(std::in_place_type<T>, std::move(v)) {}
  explicit GGUFValue(const char* s) : v_(std::in_place_type<std::string>, s) {}
  template <GGUFScalar T>
  explicit GGUFValue(std::vector<T> v) : v_(std::in_place_type<std::vector<T>>, std::move(v)) {}

  GGUFType type() const;       // ARRAY for arrays
  GGUFType elem_type() const;  // an array's element type; a scalar's own type
  bool is_array() const { return v_.index() >= 12; }
  size_t array_size() const;   // 1 for a scalar

  // The value as T, or nullptr when it holds something else (no numeric conversions: a UINT32 key
  // is not readable as uint64_t, so a file with the wrong type is noticed).
  template <GGUFScalar T>
  const T* get_if() const { return std::get_if<T>(&v_); }
  template <GGUFScalar T>
  const std::vector<T>* get_array_if() const { return std::get_if<std::vector<T>>(&v_); }
  const Storage& storage() const { return v_; }

  // Human-readable, e.g. `42`, `"llama"`, `[1, 2, 3, … (32000 items)]`.
  std::string to_string(size_t max_items = 8) const;

  bool operator==(const GGUFValue&) const = default;

 private:
  Storage v_;
};

// Block geometry of a ggml tensor type id: its row of the one type table (quant/ggml/types.h), nullptr
// for an id that is not a type of GGUF files.
using GGMLTypeSize = ggml::QuantTraits;
const GGMLTypeSize* ggml_type_size(uint32_t id);
// Bytes of a tensor with dims `ne` (ggml order) of the given type; nullopt when the type is
// unknown, ne[0] is not a multiple of the block size, a dimension is negative, or the size overflows.
std::optional<uint64_t> ggml_nbytes(uint32_t type, std::span<const int64_t> ne);

inline constexpr uint32_t kGGUFDefaultAlignment = 32;
inline constexpr size_t kGGUFMaxNameBytes = 63;  // llama.cpp: names shorter than GGML_MAX_NAME (64)
inline constexpr size_t kGGUFMaxDims = 4;

// A tensor as the file describes it, with a view of its bytes.
struct GGUFTensorInfo {
  std::string name;
  uint32_t type = 0;          // ggml type id
  std::vector<int64_t> ne;    // ggml order: ne[0] = row length
  uint64_t offset = 0;        // from the start of the data section
  const uint8_t* data = nullptr;  // into the file; aligned to the file's alignment from its start
  size_t nbytes = 0;

  int64_t numel() const { return shape_numel(ne); }
  Shape shape() const { return Shape(ne.rbegin(), ne.rend()); }  // row-major: [.., ne[1], ne[0]]
  // Widened copy in row-major shape() (types F32/F16/BF16/F64 only; Error otherwise).
  Tensor to_f32() const;
};

// A parsed GGUF file. Views (GGUFTensorInfo::data) stay valid while the GGUFFile lives (or, for the
// in-memory constructor, while the caller's buffer does).
class GGUFFile {
 public:
  explicit GGUFFile(const std::filesystem::path& path);
  // Parses `size` bytes at `data` (not copied; they must outlive this object). `name` starts every
  // error message. The fuzzer's entry point.
  GGUFFile(const uint8_t* data, size_t size, std::string name);

  const std::string& name() const { return name_; }  // the path, or the in-memory name
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  size_t data_offset() const { return data_offset_; }  // file offset of the data section

  // Key/values in file order.
  const std::vector<std::pair<std::string, GGUFValue>>& kvs() const { return kvs_; }
  const GGUFValue* find(const std::string& key) const;
  // Error "FILE: key 'K' missing" when absent.
  const GGUFValue& get(const std::string& key) const;
  // Typed access: Error naming the file, the key, the expected and the actual type on mismatch.
  template <GGUFScalar T>
  const T& get_as(const std::string& key) const;
  template <GGUFScalar T>
  const std::vector<T>& get_array(const std::string& key) const;

  // Tensor infos in file order.
  const std::vector<GGUFTensorInfo>& tensors() const { return tensors_; }
  const GGUFTensorInfo* find_tensor(const std::string& name) const;
  const GGUFTensorInfo& tensor(const std::string& name) const;  // Error when absent

 private:
  void parse(const uint8_t* data, size_t size);
  [[noreturn]] void type_mismatch(const std::string& key, std::string_view expected) const;

  std::string name_;
  std::shared_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  uint32_t alignment_ = kGGUFDefaultAlignment;
  size_t data_offset_ = 0;
  std::vector<std::pair<std::string, GGUFValue>> kvs_;
  std::map<std::string, size_t> kv_index_;
  std::vector<GGUFTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

// Builds a GGUF v3 file: key/values in the order added, then the tensors in the order added, each
// padded to the alignment (general.alignment if that key is added as UINT32, else 32), the way
// llama.cpp's gguf_write_to_file lays them out — byte for byte, including its habit of dropping
// trailing dimensions of 1 from tensor infos (ne {4096, 1} is written, and read back, as {4096}).
class GGUFWriter {
 public:
  // Key/values. A key added twice is an Error (llama.cpp refuses files with duplicate keys).
  void add(std::string key, GGUFValue value);
  void add_u8(std::string key, uint8_t v) { add(std::move(key), GGUFValue(v)); }
  void add_i8(std::string key, int8_t v) { add(std::move(key), GGUFValue(v)); }
  void add_u16(std::string key, uint16_t v) { add(std::move(key), GGUFValue(v)); }
  void add_i16(std::string key, int16_t v) { add(std::move(key), GGUFValue(v)); }
  void add_u32(std::string key, uint32_t v) { add(std::move(key), GGUFValue(v)); }
  void add_i32(std::string key, int32_t v) { add(std::move(key), GGUFValue(v)); }
  void add_f32(std::string key, float v) { add(std::move(key), GGUFValue(v)); }
  void add_bool(std::string key, bool v) { add(std::move(key), GGUFValue(v)); }
  void add_string(std::string key, std::string v) { add(std::move(key), GGUFValue(std::move(v))); }
  void add_u64(std::string key, uint64_t v) { add(std::move(key), GGUFValue(v)); }
  void add_i64(std::string key, int64_t v) { add(std::move(key), GGUFValue(v)); }
  void add_f64(std::string key, double v) { add(std::move(key), GGUFValue(v)); }
  template <GGUFScalar T>
  void add_array(std::string key, std::vector<T> v) { add(std::move(key), GGUFValue(std::move(v))); }

  // Tensors. `ne` in ggml order (ne[0] = row length), 1..4 dims; `bytes` must be exactly the size
  // the type and dims give (Error otherwise, naming the tensor). The borrowing form does not copy:
  // `data` must stay valid until write()/to_bytes().
  void add_tensor(std::string name, uint32_t ggml_type, std::vector<int64_t> ne, std::vector<uint8_t> bytes);
  void add_tensor_view(std::string name, uint32_t ggml_type, std::vector<int64_t> ne, const uint8_t* data,
                       size_t nbytes);

  uint32_t alignment() const;
  size_t n_tensors() const { return tensors_.size(); }
  size_t n_kv() const { return kvs_.size(); }

  // Writes atomically (temporary name, then rename); nothing is left at `path` on error.
  void write(const std::filesystem::path& path) const;
  // The same bytes in memory.
  std::vector<uint8_t> to_bytes() const;

 private:
  struct PendingTensor {
    std::string name;
    uint32_t type;
    std::vector<int64_t> ne;
    std::vector<uint8_t> owned;
    const uint8_t* data;
    size_t nbytes;
  };
  void check_tensor(const std::string& name, uint32_t type, const std::vector<int64_t>& ne, size_t nbytes) const;
  template <typename Sink>
  void emit(Sink& sink) const;

  std::vector<std::pair<std::string, GGUFValue>> kvs_;
  std::map<std::string, size_t> kv_index_;
  std::vector<PendingTensor> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

// ---------------------------------------------------------------------------------------------

template <GGUFScalar T>
const T& GGUFFile::get_as(const std::string& key) const {
  const T* v = get(key).get_if<T>();
  if (!v) type_mismatch(key, gguf_type_name(GGUFValue(T{}).type()));
  return *v;
}

template <GGUFScalar T>
const std::vector<T>& GGUFFile::get_array(const std::string& key) const {
  const std::vector<T>* v = get(key).get_array_if<T>();
  if (!v) type_mismatch(key, std::string("ARRAY of ") + std::string(gguf_type_name(GGUFValue(T{}).type())));
  return *v;
}

}  // namespace quantllm
