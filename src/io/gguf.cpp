// GGUF v3 reading and writing (format summary in gguf.h).
//
// The reader walks the file with a bounds-checked cursor: every length read from the file is
// compared with the bytes that are left before it is used to allocate or to index, so a corrupt or
// hostile file ends in one Error line, never in a huge allocation or a read outside the mapping.
// The writer reproduces llama.cpp's layout (gguf_write_to_file): key/values and tensor infos in the
// order given, zero padding to the alignment after the infos and after every tensor's data.
#include "io/gguf.h"

#include "core/dtype.h"
#include "core/fs.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

namespace quantllm {

// ---------------------------------------------------------------------------------------------
// Type tables

namespace {

constexpr std::string_view kGGUFTypeNames[] = {"UINT8", "INT8",  "UINT16", "INT16",  "UINT32", "INT32", "FLOAT32",
                                               "BOOL",  "STRING", "ARRAY", "UINT64", "INT64",  "FLOAT64"};
constexpr uint32_t kGGUFTypeCount = 13;

// Bytes of one scalar of each type id on disk (STRING: the minimum, its length prefix; ARRAY: its
// elem type + count prefix). Used to bound counts before allocating.
constexpr size_t kGGUFMinBytes[] = {1, 1, 2, 2, 4, 4, 4, 1, 8, 12, 8, 8, 8};

// The dtype a float ggml type widens from, for to_f32.
std::optional<DType> float_dtype(uint32_t ggml_type) {
  switch (ggml_type) {
    case 0: return DType::F32;
    case 1: return DType::F16;
    case 28: return DType::F64;
    case 30: return DType::BF16;
    default: return std::nullopt;
  }
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

bool is_power_of_two(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

// Product of the non-zero dims must fit int64 so that numel() can never overflow; a zero dim makes
// the tensor empty. Returns nullopt on a negative dim or overflow.
std::optional<uint64_t> checked_numel(std::span<const int64_t> ne) {
  uint64_t n = 1;
  bool zero = false;
  for (int64_t d : ne) {
    if (d < 0) return std::nullopt;
    if (d == 0) zero = true;
    else if (__builtin_mul_overflow(n, uint64_t(d), &n) || n > uint64_t(std::numeric_limits<int64_t>::max()))
      return std::nullopt;
  }
  return zero ? 0 : n;
}

}  // namespace

std::string_view gguf_type_name(GGUFType t) {
  const auto i = uint32_t(t);
  return i < kGGUFTypeCount ? kGGUFTypeNames[i] : std::string_view("?");
}

const GGMLTypeSize* ggml_type_size(uint32_t id) {
  const GGMLTypeSize* t = ggml::type_info(id);
  return t && t->type != ggml::GgmlType::GQ4 ? t : nullptr;  // GQ4 is never in a file
}

std::optional<uint64_t> ggml_nbytes(uint32_t type, std::span<const int64_t> ne) {
  const GGMLTypeSize* t = ggml_type_size(type);
  if (!t) return std::nullopt;
  const int64_t row = ne.empty() ? 1 : ne[0];
  if (row % t->block_size != 0) return std::nullopt;
  const auto numel = checked_numel(ne);
  if (!numel) return std::nullopt;
  uint64_t bytes;
  if (__builtin_mul_overflow(*numel / uint64_t(t->block_size), uint64_t(t->type_size), &bytes)) return std::nullopt;
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// GGUFValue

GGUFType GGUFValue::type() const {
  const size_t i = v_.index();
  if (i >= 12) return GGUFType::ARRAY;
  return GGUFType(i < 9 ? i : i + 1);
}

GGUFType GGUFValue::elem_type() const {
  const size_t i = v_.index() % 12;
  return GGUFType(i < 9 ? i : i + 1);
}

size_t GGUFValue::array_size() const {
  return std::visit(
      [](const auto& v) -> size_t {
        using V = std::decay_t<decltype(v)>;
        if constexpr (GGUFScalar<V>) return 1;
        else return v.size();
      },
      v_);
}

namespace {

template <typename T>
std::string scalar_str(const T& v) {
  if constexpr (std::is_same_v<T, std::string>) {
    constexpr size_t kMax = 80;
    return v.size() <= kMax ? fmt::format("\"{}\"", v) : fmt::format("\"{}…\" ({} bytes)", v.substr(0, kMax), v.size());
  } else if constexpr (std::is_same_v<T, bool>) {
    return v ? "true" : "false";
  } else if constexpr (std::is_same_v<T, uint8_t> || std::is_same_v<T, int8_t>) {
    return fmt::format("{}", int(v));
  } else {
    return fmt::format("{}", v);
  }
}

}  // namespace

std::string GGUFValue::to_string(size_t max_items) const {
  return std::visit(
      [&](const auto& v) -> std::string {
        using V = std::decay_t<decltype(v)>;
        if constexpr (GGUFScalar<V>) {
          return scalar_str(v);
        } else {
          std::string s = "[";
          const size_t n = std::min(v.size(), max_items);
          for (size_t i = 0; i < n; ++i) {
            if (i) s += ", ";
            s += scalar_str(typename V::value_type(v[i]));
          }
          if (n < v.size()) s += fmt::format(", … ({} items)", v.size());
          return s + "]";
        }
      },
      v_);
}

// ---------------------------------------------------------------------------------------------
// Reading

namespace {

// Bounds-checked little-endian reads from the file image.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& file) : data_(data), size_(size), file_(file) {}

  size_t pos() const { return pos_; }
  size_t left() const { return size_ - pos_; }

  // `what` names the thing being read, for the error message.
  void need(uint64_t n, std::string_view what) const {
    if (n > left())
      fail("{}: truncated: {} needs {} bytes at offset {}, only {} left", file_, what, n, pos_, left());
  }

  template <typename T>
  T read(std::string_view what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));  // the host is little-endian (x86-64, arm64)
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string(std::string_view what) {
    const uint64_t n = read<uint64_t>(what);
    need(n, what);
    std::string s(reinterpret_cast<const char*>(data_ + pos_), size_t(n));
    pos_ += size_t(n);
    return s;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& file_;
};

template <typename T>
T read_scalar(Cursor& c, std::string_view what) {
  if constexpr (std::is_same_v<T, std::string>) return c.read_string(what);
  else if constexpr (std::is_same_v<T, bool>) return c.read<uint8_t>(what) != 0;  // as llama.cpp: non-zero is true
  else return c.read<T>(what);
}

template <typename T>
GGUFValue read_array(Cursor& c, uint64_t n, std::string_view what) {
  std::vector<T> v;
  v.reserve(size_t(n));  // n was bounded by the bytes left
  for (uint64_t i = 0; i < n; ++i) v.push_back(read_scalar<T>(c, what));
  return GGUFValue(std::move(v));
}

template <typename T>
GGUFValue read_one(Cursor& c, std::string_view what) {
  return GGUFValue(read_scalar<T>(c, what));
}

// Calls f.template operator()<T>() with the C++ type of a scalar GGUF type id (not ARRAY).
template <typename F>
GGUFValue dispatch(uint32_t type, F&& f) {
  switch (GGUFType(type)) {
    case GGUFType::UINT8: return f.template operator()<uint8_t>();
    case GGUFType::INT8: return f.template operator()<int8_t>();
    case GGUFType::UINT16: return f.template operator()<uint16_t>();
    case GGUFType::INT16: return f.template operator()<int16_t>();
    case GGUFType::UINT32: return f.template operator()<uint32_t>();
    case GGUFType::INT32: return f.template operator()<int32_t>();
    case GGUFType::FLOAT32: return f.template operator()<float>();
    case GGUFType::BOOL: return f.template operator()<bool>();
    case GGUFType::STRING: return f.template operator()<std::string>();
    case GGUFType::UINT64: return f.template operator()<uint64_t>();
    case GGUFType::INT64: return f.template operator()<int64_t>();
    case GGUFType::FLOAT64: return f.template operator()<double>();
    case GGUFType::ARRAY: break;
  }
  QL_ASSERT(false, "dispatch of GGUF type {}", type);
  __builtin_unreachable();
}

}  // namespace

GGUFFile::GGUFFile(const std::filesystem::path& path)
    : name_(path.string()), file_(std::make_shared<MappedFile>(path)) {
  parse(file_->data(), file_->size());
}

GGUFFile::GGUFFile(const uint8_t* data, size_t size, std::string name) : name_(std::move(name)) {
  parse(data, size);
}

void GGUFFile::parse(const uint8_t* data, size_t size) {
  const std::string& file = name_;
  Cursor c(data, size, file);
  if (size < 4 || std::memcmp(data, "GGUF", 4) != 0) fail("{}: not a GGUF file (no \"GGUF\" magic)", file);
  c.read<uint32_t>("magic");
  version_ = c.read<uint32_t>("version");
  if (version_ == 1) fail("{}: GGUF version 1 is not supported (convert it with a newer llama.cpp)", file);
  if (version_ != 2 && version_ != 3) {
    if ((version_ & 0xffffu) == 0)
      fail("{}: GGUF version {:#x}: a big-endian file, which is not supported", file, version_);
    fail("{}: unsupported GGUF version {} (2 and 3 are read)", file, version_);
  }
  const uint64_t n_tensors = c.read<uint64_t>("tensor count");
  const uint64_t n_kv = c.read<uint64_t>("key/value count");
  // Each key/value takes at least 13 bytes (key length, type, 1-byte value) and each tensor info
  // at least 24 (name length, n_dims, type, offset): counts beyond that are corrupt.
  if (n_kv > c.left() / 13) fail("{}: key/value count {} cannot fit in a {}-byte file", file, n_kv, size);
  if (n_tensors > c.left() / 24) fail("{}: tensor count {} cannot fit in a {}-byte file", file, n_tensors, size);

  kvs_.reserve(size_t(n_kv));
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = c.read_string("key");
    if (key.empty()) fail("{}: key/value {} has an empty key", file, i);
    if (kv_index_.count(key)) fail("{}: key '{}' appears twice", file, key);
    const std::string what = fmt::format("value of key '{}'", key);
    const uint32_t type = c.read<uint32_t>(what);
    if (type >= kGGUFTypeCount) fail("{}: key '{}' has unknown value type {}", file, key, type);
    GGUFValue value;
    if (GGUFType(type) == GGUFType::ARRAY) {
      const uint32_t elem = c.read<uint32_t>(what);
      if (elem >= kGGUFTypeCount) fail("{}: key '{}': array of unknown value type {}", file, key, elem);
      if (GGUFType(elem) == GGUFType::ARRAY) fail("{}: key '{}': arrays of arrays are not supported", file, key);
      const uint64_t n = c.read<uint64_t>(what);
      if (n > c.left() / kGGUFMinBytes[elem])
        fail("{}: key '{}': array of {} {} items cannot fit in the {} bytes left", file, key, n,
             kGGUFTypeNames[elem], c.left());
      value = dispatch(elem, [&]<typename T>() { return read_array<T>(c, n, what); });
    } else {
      value = dispatch(type, [&]<typename T>() { return read_one<T>(c, what); });
    }
    kv_index_.emplace(key, kvs_.size());
    kvs_.emplace_back(std::move(key), std::move(value));
  }

  if (const GGUFValue* a = find("general.alignment")) {
    const uint32_t* v = a->get_if<uint32_t>();
    if (!v) fail("{}: key 'general.alignment' has type {}, expected UINT32", file, gguf_type_name(a->type()));
    if (!is_power_of_two(*v)) fail("{}: general.alignment {} is not a power of two", file, *v);
    alignment_ = *v;
  }

  tensors_.reserve(size_t(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GGUFTensorInfo t;
    t.name = c.read_string("tensor name");
    if (t.name.size() > kGGUFMaxNameBytes)
      fail("{}: tensor name '{}' is too long: {} bytes (llama.cpp allows at most {})", file, t.name, t.name.size(),
           kGGUFMaxNameBytes);
    if (tensor_index_.count(t.name)) fail("{}: tensor '{}' appears twice", file, t.name);
    const std::string what = fmt::format("info of tensor '{}'", t.name);
    const uint32_t n_dims = c.read<uint32_t>(what);
    if (n_dims > kGGUFMaxDims) fail("{}: tensor '{}' has {} dimensions (at most {})", file, t.name, n_dims, kGGUFMaxDims);
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t v = c.read<uint64_t>(what);
      if (v > uint64_t(std::numeric_limits<int64_t>::max()))
        fail("{}: tensor '{}' dimension {} is negative or too large", file, t.name, d);
      t.ne.push_back(int64_t(v));
    }
    t.type = c.read<uint32_t>(what);
    t.offset = c.read<uint64_t>(what);
    const GGMLTypeSize* ts = ggml_type_size(t.type);
    if (!ts) fail("{}: tensor '{}' has unknown ggml type {}", file, t.name, t.type);
    const int64_t row = t.ne.empty() ? 1 : t.ne[0];  // 0 dims: a scalar, one element
    if (row % ts->block_size != 0)
      fail("{}: tensor '{}' of type {}: row length {} is not a multiple of the block size {}", file, t.name,
           ts->name, row, ts->block_size);
    const auto nbytes = ggml_nbytes(t.type, t.ne);
    if (!nbytes) fail("{}: tensor '{}' of type {}: dims {} too large", file, t.name, ts->name, shape_str(t.ne));
    t.nbytes = size_t(*nbytes);
    if (t.offset % alignment_ != 0)
      fail("{}: tensor '{}': offset {} is not a multiple of the alignment {}", file, t.name, t.offset, alignment_);
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }

  // The data section starts at the next multiple of the alignment (counted from the file start).
  data_offset_ = size_t(align_up(c.pos(), alignment_));
  if (tensors_.empty()) return;
  if (data_offset_ > size)
    fail("{}: truncated: the data section would start at offset {}, past the end of the {}-byte file", file,
         data_offset_, size);
  const uint64_t data_size = size - data_offset_;
  for (GGUFTensorInfo& t : tensors_) {
    if (t.offset > data_size || t.nbytes > data_size - t.offset)
      fail("{}: tensor '{}': data [{}, {}) lies outside the {}-byte data section (file truncated?)", file, t.name,
           t.offset, t.offset + t.nbytes, data_size);
    t.data = data + data_offset_ + t.offset;
  }

  // Overlaps: by offset, each non-empty tensor must start at or after the furthest end so far.
  std::vector<const GGUFTensorInfo*> order;
  order.reserve(tensors_.size());
  for (const auto& t : tensors_)
    if (t.nbytes) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < order.size(); ++i)
    if (order[i]->offset < order[i - 1]->offset + order[i - 1]->nbytes)
      fail("{}: tensor '{}' at offset {} overlaps tensor '{}' ({} bytes at offset {})", file, order[i]->name,
           order[i]->offset, order[i - 1]->name, order[i - 1]->nbytes, order[i - 1]->offset);
}

const GGUFValue* GGUFFile::find(const std::string& key) const {
  const auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kvs_[it->second].second;
}

const GGUFValue& GGUFFile::get(const std::string& key) const {
  const GGUFValue* v = find(key);
  if (!v) fail("{}: key '{}' missing", name_, key);
  return *v;
}

void GGUFFile::type_mismatch(const std::string& key, std::string_view expected) const {
  const GGUFValue& v = get(key);
  std::string actual(gguf_type_name(v.type()));
  if (v.is_array()) actual += fmt::format(" of {}", gguf_type_name(v.elem_type()));
  fail("{}: key '{}' has type {}, expected {}", name_, key, actual, expected);
}

const GGUFTensorInfo* GGUFFile::find_tensor(const std::string& name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GGUFTensorInfo& GGUFFile::tensor(const std::string& name) const {
  const GGUFTensorInfo* t = find_tensor(name);
  if (!t) fail("{}: tensor '{}' not found", name_, name);
  return *t;
}

Tensor GGUFTensorInfo::to_f32() const {
  const auto dtype = float_dtype(type);
  if (!dtype) {
    const GGMLTypeSize* ts = ggml_type_size(type);
    fail("tensor '{}': cannot widen ggml type {} to F32 here (dequantize it instead)", name,
         ts ? ts->name : std::string_view("?"));
  }
  Tensor t(shape());
  const size_t n = size_t(numel());
  QL_ASSERT(n * dtype_size(*dtype) == nbytes, "tensor '{}'", name);
  if (n == 0) return t;
  if (reinterpret_cast<uintptr_t>(data) % dtype_size(*dtype) != 0) {  // alignment 1 or 2 files
    std::vector<uint64_t> aligned((nbytes + 7) / 8);
    std::memcpy(aligned.data(), data, nbytes);
    convert_to_f32(*dtype, aligned.data(), t.ptr(), n);
  } else {
    convert_to_f32(*dtype, data, t.ptr(), n);
  }
  return t;
}

// ---------------------------------------------------------------------------------------------
// Writing

void GGUFWriter::add(std::string key, GGUFValue value) {
  if (key.empty()) fail("GGUF key must not be empty");
  if (kv_index_.count(key)) fail("GGUF key '{}' added twice", key);
  if (key == "general.alignment") {
    const uint32_t* a = value.get_if<uint32_t>();
    if (!a) fail("GGUF key 'general.alignment' must be UINT32, got {}", gguf_type_name(value.type()));
    if (!is_power_of_two(*a)) fail("GGUF general.alignment {} is not a power of two", *a);
  }
  kv_index_.emplace(key, kvs_.size());
  kvs_.emplace_back(std::move(key), std::move(value));
}

uint32_t GGUFWriter::alignment() const {
  const auto it = kv_index_.find("general.alignment");
  return it == kv_index_.end() ? kGGUFDefaultAlignment : *kvs_[it->second].second.get_if<uint32_t>();
}

void GGUFWriter::check_tensor(const std::string& name, uint32_t type, const std::vector<int64_t>& ne,
                              size_t nbytes) const {
  if (name.empty()) fail("GGUF tensor name must not be empty");
  if (name.size() > kGGUFMaxNameBytes)
    fail("tensor '{}': name of {} bytes is too long for GGUF (at most {})", name, name.size(), kGGUFMaxNameBytes);
  if (tensor_index_.count(name)) fail("tensor '{}' added twice", name);
  if (ne.empty() || ne.size() > kGGUFMaxDims)
    fail("tensor '{}': {} dimensions (GGUF takes 1 to {})", name, ne.size(), kGGUFMaxDims);
  const GGMLTypeSize* ts = ggml_type_size(type);
  if (!ts) fail("tensor '{}': unknown ggml type {}", name, type);
  if (ne[0] % ts->block_size != 0)
    fail("tensor '{}' of type {}: row length {} is not a multiple of the block size {}", name, ts->name, ne[0],
         ts->block_size);
  const auto expected = ggml_nbytes(type, ne);
  if (!expected) fail("tensor '{}': invalid dims {}", name, shape_str(ne));
  if (*expected != nbytes)
    fail("tensor '{}': type {} with ne {} needs {} bytes, got {}", name, ts->name, shape_str(ne), *expected, nbytes);
}

void GGUFWriter::add_tensor(std::string name, uint32_t ggml_type, std::vector<int64_t> ne, std::vector<uint8_t> bytes) {
  check_tensor(name, ggml_type, ne, bytes.size());
  tensor_index_.emplace(name, tensors_.size());
  PendingTensor& t = tensors_.emplace_back(PendingTensor{std::move(name), ggml_type, std::move(ne), std::move(bytes), nullptr, 0});
  t.data = t.owned.data();
  t.nbytes = t.owned.size();
}

void GGUFWriter::add_tensor_view(std::string name, uint32_t ggml_type, std::vector<int64_t> ne, const uint8_t* data,
                                 size_t nbytes) {
  check_tensor(name, ggml_type, ne, nbytes);
  QL_ASSERT(data || nbytes == 0);
  tensor_index_.emplace(name, tensors_.size());
  tensors_.push_back(PendingTensor{std::move(name), ggml_type, std::move(ne), {}, data, nbytes});
}

namespace {

// Serializes little-endian values into a sink with write(const void*, size_t).
template <typename Sink>
struct Emitter {
  Sink& sink;
  uint64_t written = 0;

  void raw(const void* p, size_t n) {
    if (n) sink.write(p, n);
    written += n;
  }
  template <typename T>
  void put(T v) {
    raw(&v, sizeof v);
  }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    raw(s.data(), s.size());
  }
  void pad(uint64_t alignment) {
    static constexpr uint8_t kZeros[64] = {};
    while (written % alignment) raw(kZeros, size_t(std::min<uint64_t>(sizeof kZeros, align_up(written, alignment) - written)));
  }
  template <typename T>
  void scalar(const T& v) {
    if constexpr (std::is_same_v<T, std::string>) str(v);
    else if constexpr (std::is_same_v<T, bool>) put<uint8_t>(v ? 1 : 0);
    else put<T>(v);
  }
  void value(const GGUFValue& v) {
    put<uint32_t>(uint32_t(v.type()));
    std::visit(
        [&](const auto& x) {
          using V = std::decay_t<decltype(x)>;
          if constexpr (GGUFScalar<V>) {
            scalar(x);
          } else {
            put<uint32_t>(uint32_t(v.elem_type()));
            put<uint64_t>(x.size());
            if constexpr (std::is_arithmetic_v<typename V::value_type> && !std::is_same_v<typename V::value_type, bool>)
              raw(x.data(), x.size() * sizeof(typename V::value_type));
            else
              for (const auto& e : x) scalar(typename V::value_type(e));
          }
        },
        v.storage());
  }
};

struct VectorSink {
  std::vector<uint8_t>& out;
  void write(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    out.insert(out.end(), b, b + n);
  }
};

struct FileSink {
  std::FILE* f;
  const std::filesystem::path& path;
  void write(const void* p, size_t n) {
    if (std::fwrite(p, 1, n, f) != n) fail("{}: write error: {}", path.string(), std::strerror(errno));
  }
};

}  // namespace

template <typename Sink>
void GGUFWriter::emit(Sink& sink) const {
  const uint64_t align = alignment();
  Emitter<Sink> e{sink};
  e.raw("GGUF", 4);
  e.template put<uint32_t>(3);
  e.template put<uint64_t>(tensors_.size());
  e.template put<uint64_t>(kvs_.size());
  for (const auto& [key, value] : kvs_) {
    e.str(key);
    e.value(value);
  }
  uint64_t offset = 0;
  for (const PendingTensor& t : tensors_) {
    // Trailing dimensions of 1 are dropped, as ggml_n_dims() does when llama.cpp writes a file: the
    // element count is the same and the bytes match llama.cpp's ([4096, 1] is written as [4096]).
    size_t n_dims = t.ne.size();
    while (n_dims > 1 && t.ne[n_dims - 1] == 1) --n_dims;
    e.str(t.name);
    e.template put<uint32_t>(uint32_t(n_dims));
    for (size_t d = 0; d < n_dims; ++d) e.template put<uint64_t>(uint64_t(t.ne[d]));
    e.template put<uint32_t>(t.type);
    e.template put<uint64_t>(offset);
    offset += align_up(t.nbytes, align);
  }
  e.pad(align);
  for (const PendingTensor& t : tensors_) {
    e.raw(t.data, t.nbytes);
    e.pad(align);
  }
}

std::vector<uint8_t> GGUFWriter::to_bytes() const {
  std::vector<uint8_t> out;
  VectorSink sink{out};
  emit(sink);
  return out;
}

void GGUFWriter::write(const std::filesystem::path& path) const {
  write_file_atomic(path, [&](std::FILE* f) {
    FileSink sink{f, path};
    emit(sink);
  });
}

}  // namespace quantllm
