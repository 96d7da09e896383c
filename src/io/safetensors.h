// safetensors: memory-mapped reading of single files and sharded checkpoints, and a writer.
//
// File layout: u64 little-endian header length N, then N bytes of JSON
//   {"name": {"dtype": "BF16", "shape": [out, in], "data_offsets": [begin, end]}, ..., "__metadata__": {...}}
// then the data section; offsets are relative to the data section's start.
// Validation on open (each failure throws Error naming the file and, where relevant, the tensor):
// header length inside the file, JSON well formed and of the right shape, known dtype, offsets inside
// the data section, begin <= end, no two tensors overlapping, end - begin == numel * dtype size.
#pragma once

#include "core/dtype.h"
#include "core/tensor.h"
#include "io/mapped_file.h"

#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace quantllm {

// A zero-copy view of one stored tensor.
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  const uint8_t* data = nullptr;  // points into a mapped file
  size_t nbytes = 0;

  int64_t numel() const { return shape_numel(shape); }
  // Widened copy as fp32 (F32/F16/BF16/F64/F8_E4M3 — the stored values, no scales; Error otherwise).
  Tensor to_f32() const;
};

// The parsed, validated header of a safetensors file held in memory; views point into that memory.
struct SafetensorsHeader {
  std::map<std::string, TensorView> tensors;
  std::map<std::string, std::string> metadata;
  size_t data_offset = 0;  // 8 + header length: where the data section starts
};

// Parses and validates a whole safetensors file already in memory (`size` bytes at `data`), with the
// checks listed at the top of this file. `name` (normally the path) starts every error message.
// SafetensorsFile maps a file and calls this; the fuzzer calls it directly.
SafetensorsHeader parse_safetensors(const uint8_t* data, size_t size, const std::string& name);

// One .safetensors file.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path);
  const std::filesystem::path& path() const { return file_->path(); }
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Where a tensor's bytes start in the file (for copying them with plain reads, which, unlike touching
  // the mapping, do not count in the process's resident memory).
  uint64_t file_offset(const TensorView& v) const { return uint64_t(v.data - file_->data()); }

 private:
  std::shared_ptr<MappedFile> file_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a checkpoint directory: `model.safetensors`, or the shards listed in
// `model.safetensors.index.json` (each listed tensor must be in the shard the index names, and each
// shard's tensors must be listed), or a single path to a .safetensors file.
class Checkpoint {
 public:
  explicit Checkpoint(const std::filesystem::path& dir_or_file);

  bool has(const std::string& name) const { return index_.count(name) != 0; }
  // Throws Error "tensor 'NAME' not found in DIR" when missing.
  const TensorView& get(const std::string& name) const;
  std::vector<std::string> names() const;  // sorted
  const std::filesystem::path& path() const { return path_; }
  size_t total_bytes() const;

 private:
  std::filesystem::path path_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorView*> index_;
};

// A tensor to write: raw little-endian bytes of `dtype` with `shape`.
struct TensorData {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  std::vector<uint8_t> bytes;

  static TensorData from_f32(std::string name, const Tensor& t);                   // F32
  static TensorData from_f32_as(std::string name, const Tensor& t, DType dtype);   // F32/F16/BF16
  template <typename T>
  static TensorData from_values(std::string name, DType dtype, Shape shape, const std::vector<T>& v);
};

// Writes one .safetensors file atomically (temporary name + rename). Tensors are written in name
// order, 8-byte aligned header as the reference implementation does.
void write_safetensors(const std::filesystem::path& path, const std::vector<TensorData>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// The layout of a safetensors file whose tensor data is written separately (e.g. in parallel with
// pwrite, for checkpoints too large to hold in memory): the header as write_safetensors writes it
// (same order, same padding) and where each tensor's bytes go.
struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
};
struct SafetensorsLayout {
  std::vector<uint8_t> prefix;  // u64 header length + header JSON: the file's first bytes
  std::map<std::string, std::pair<uint64_t, uint64_t>> ranges;  // name -> (file offset, bytes)
  uint64_t file_size = 0;
};
SafetensorsLayout plan_safetensors(const std::vector<SafetensorsEntry>& tensors,
                                   const std::map<std::string, std::string>& metadata = {});

// The bytes write_safetensors would write (for tests and fuzz seeds; whole file in memory).
std::vector<uint8_t> safetensors_bytes(const std::vector<TensorData>& tensors,
                                       const std::map<std::string, std::string>& metadata = {});

template <typename T>
TensorData TensorData::from_values(std::string name, DType dtype, Shape shape, const std::vector<T>& v) {
  QL_ASSERT(sizeof(T) == dtype_size(dtype) && int64_t(v.size()) == shape_numel(shape));
  TensorData d{std::move(name), dtype, std::move(shape), {}};
  d.bytes.resize(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(d.bytes.data(), v.data(), d.bytes.size());
  return d;
}

}  // namespace quantllm
