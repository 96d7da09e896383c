// The streamed writer of quantized directories (see quantized_dir_writer.h).
#include "formats/quantized_dir_writer.h"

#include "core/error.h"
#include "core/fs.h"
#include "core/threads.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

namespace quantllm {

using json = nlohmann::json;

namespace {

constexpr const char* kIndexName = "model.safetensors.index.json";

bool exactly_representable(const std::vector<float>& v, DType dt) {
  for (float x : v) {
    if (dt == DType::BF16 && bf16_to_f32(f32_to_bf16(x)) != x) return false;
    if (dt == DType::F16 && f16_to_f32(f32_to_f16(x)) != x) return false;
  }
  return true;
}

// Writes a safetensors file atomically whose tensors (`entries`) are produced one at a time, in the
// file's order, by put(name, sink): one tensor in memory at a time, whatever the file's size.
using PutTensor = std::function<void(const std::string& name, const std::function<void(const void*, size_t)>& sink)>;
void write_safetensors_streamed(const std::filesystem::path& path, const std::vector<SafetensorsEntry>& entries,
                                const PutTensor& put) {
  const SafetensorsLayout l = plan_safetensors(entries, {{"format", "pt"}});
  std::vector<std::pair<uint64_t, std::string>> order;
  for (const auto& [name, r] : l.ranges) order.emplace_back(r.first, name);
  std::sort(order.begin(), order.end());
  write_file_atomic(path, [&](std::FILE* f) {
    uint64_t pos = 0;
    auto sink = [&](const void* p, size_t n) {
      if (n && std::fwrite(p, 1, n, f) != n) fail("{}: write error: {}", path.string(), std::strerror(errno));
      pos += n;
    };
    sink(l.prefix.data(), l.prefix.size());
    for (const auto& [offset, name] : order) {
      QL_ASSERT(pos == offset, "{}: tensor {} at {} expected at {}", path.string(), name, pos, offset);
      put(name, sink);
      QL_ASSERT(pos == offset + l.ranges.at(name).second, "{}: tensor {} wrote the wrong number of bytes", path.string(), name);
    }
  });
}

}  // namespace

uint64_t max_single_file_bytes() {
  const char* e = std::getenv("QUANTLLM_SINGLE_FILE_MAX");
  return e && *e ? std::strtoull(e, nullptr, 10) : uint64_t(5'000'000'000);
}

QuantizedDirWriter::QuantizedDirWriter(const LoadedModel& base, const WeightSource& src, std::filesystem::path work,
                                       QuantDirFormat format, bool resume)
    : base_(base), src_(src), work_(std::move(work)), format_(std::move(format)) {
  block_names_.resize(size_t(base.config.n_layers));
  for (const auto& name : src.names()) {
    const int block = block_of(name);
    if (block >= 0) block_names_[size_t(block)].push_back(name);
    else global_names_.push_back(name);
  }
  // The caller clears a stale work directory (quantize() refuses one without --resume or --force); the
  // journal of an earlier stage (the --awq-scale pass) may be there already and stays.
  std::error_code ec;
  std::filesystem::create_directories(work_, ec);
  if (ec) fail("{}: cannot create directory: {}", work_.string(), ec.message());
  if (!resume || !std::filesystem::exists(shard_path(n_blocks()), ec))
    globals_ = std::async(std::launch::async, [this] {
                 run_serially_on_this_thread();  // never takes the thread pool from the calibration
                 write_globals();
               }).share();
}

QuantizedDirWriter::~QuantizedDirWriter() {
  if (globals_.valid()) globals_.wait();
}

void QuantizedDirWriter::check_background() const {
  if (globals_.valid() && globals_.wait_for(std::chrono::seconds(0)) == std::future_status::ready) globals_.get();
}

int QuantizedDirWriter::block_of(const std::string& name) const {
  for (int i = 0; i < int(base_.config.n_layers); ++i)
    if (name.starts_with(base_.config.block(i).prefix)) return i;
  return -1;
}

std::filesystem::path QuantizedDirWriter::shard_path(int index) const {
  return work_ / fmt::format("model-{:05d}-of-{:05d}.safetensors", index + 1, n_blocks() + 1);
}

bool QuantizedDirWriter::has_block(int block) const {
  std::error_code ec;
  return std::filesystem::exists(shard_path(block), ec);
}

void QuantizedDirWriter::write_globals() const {
  std::vector<SafetensorsEntry> entries;
  for (const auto& name : global_names_) entries.push_back({name, stored_dtype(src_, name), src_.shape(name)});
  write_safetensors_streamed(shard_path(n_blocks()), entries, [&](const std::string& name, const auto& sink) {
    const Tensor t = src_.load(name);
    check_finite(t.data, name);  // embeddings and the head are copied, not quantized: refuse NaN / Inf as GGUF does
    // Converted a slice at a time (a 70B model's embeddings are 4 GiB in fp32; no second copy of them).
    const DType dt = stored_dtype(src_, name);
    constexpr size_t kSlice = size_t(1) << 20;
    for (size_t i = 0; i < t.data.size(); i += kSlice) {
      const size_t n = std::min(kSlice, t.data.size() - i);
      const auto first = t.data.begin() + int64_t(i);
      const Tensor slice({int64_t(n)}, std::vector<float>(first, first + int64_t(n)));
      const TensorData d = TensorData::from_f32_as(name, slice, dt);
      sink(d.bytes.data(), d.bytes.size());
    }
  });
}

void QuantizedDirWriter::write_block(int block, const std::map<std::string, GroupQuantized>& layers,
                                     const std::map<std::string, Tensor>& replaced,
                                     const std::set<std::string>& own_layers, std::vector<TensorData> own_tensors) const {
  QL_ASSERT(block >= 0 && block < n_blocks());
  std::vector<TensorData> tensors = std::move(own_tensors);
  size_t packed = 0;
  for (const auto& name : block_names_[size_t(block)]) {
    std::string b;
    if (strip_suffix(name, ".weight", b) && layers.count(b)) {
      format_.pack(b, layers.at(b), tensors);
      ++packed;
      continue;
    }
    if (strip_suffix(name, ".weight", b) && own_layers.count(b)) continue;
    auto r = replaced.find(name);
    const Tensor t = r != replaced.end() ? r->second : src_.load(name);
    check_finite(t.data, name);  // norms are copied, not quantized: refuse NaN / Inf as GGUF does
    // In the source's dtype; a tensor a method changed beyond it (a MoE router that took AWQ's scales) in
    // fp32, so the file computes what was calibrated (AWQ rounds the norms it folds to their dtype).
    DType dt = stored_dtype(src_, name);
    if (!exactly_representable(t.data, dt)) dt = DType::F32;
    tensors.push_back(TensorData::from_f32_as(name, t, dt));
  }
  QL_ASSERT(packed == layers.size(), "block {}: {} quantized layers given, {} of them in the block", block,
            layers.size(), packed);
  write_safetensors(shard_path(block), tensors, {{"format", "pt"}});
}

std::map<std::string, GroupQuantized> QuantizedDirWriter::read_block(int block) const {
  const SafetensorsFile shard(shard_path(block));
  std::map<std::string, GroupQuantized> layers;
  const BlockSpec& spec = base_.config.block(block);
  for (size_t l = 0; l < spec.linears.size(); ++l) {
    if (!spec.linears[l].quantized) continue;
    const std::string name = spec.linear_tensor(int(l));
    layers.emplace(name, format_.unpack(shard, name));
  }
  return layers;
}

void QuantizedDirWriter::finish(const std::filesystem::path& out, bool overwrite) const {
  if (globals_.valid()) globals_.get();  // the tensors outside the blocks: written, or their error
  check_output_path(out, overwrite);
  std::set<std::string> keep;  // the output's tensor files; anything else in work_ (the journal) goes
  std::vector<std::filesystem::path> shards;
  for (int i = 0; i <= n_blocks(); ++i) {
    if (!std::filesystem::exists(shard_path(i))) fail("{}: shard {} was never written", work_.string(), i + 1);
    shards.push_back(shard_path(i));
  }
  // Every tensor, where it is, and the total.
  std::vector<SafetensorsEntry> entries;
  json weight_map = json::object();
  std::map<std::string, size_t> shard_of;
  uint64_t total = 0;
  for (size_t s = 0; s < shards.size(); ++s) {
    const SafetensorsFile f(shards[s]);  // the header only: the views are not read here
    for (const auto& [name, v] : f.tensors()) {
      entries.push_back({name, v.dtype, v.shape});
      weight_map[name] = shards[s].filename().string();
      shard_of[name] = s;
      total += v.nbytes;
    }
  }
  if (total < max_single_file_bytes()) {
    // One file, joined from the shards (the bytes write_safetensors would write), copied with plain reads
    // through a small buffer: the shards' pages go through the page cache, not the process's memory.
    std::vector<std::unique_ptr<SafetensorsFile>> headers;
    for (const auto& p : shards) headers.push_back(std::make_unique<SafetensorsFile>(p));
    std::vector<char> buf(size_t(16) << 20);
    write_safetensors_streamed(work_ / "model.safetensors", entries, [&](const std::string& name, const auto& sink) {
      const size_t s = shard_of.at(name);
      const TensorView& v = headers[s]->tensors().at(name);
      std::ifstream in(shards[s], std::ios::binary);
      in.seekg(std::streamoff(headers[s]->file_offset(v)));
      for (size_t done = 0; done < v.nbytes;) {
        const size_t n = std::min(buf.size(), v.nbytes - done);
        if (!in.read(buf.data(), std::streamsize(n))) fail("{}: read error at tensor {}", shards[s].string(), name);
        sink(buf.data(), n);
        done += n;
      }
    });
    headers.clear();
    for (const auto& p : shards) std::filesystem::remove(p);
    keep.insert("model.safetensors");
  } else {
    const json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    write_file_atomic(work_ / kIndexName, index.dump(2) + "\n");
    keep.insert(kIndexName);
    for (const auto& p : shards) keep.insert(p.filename().string());
  }

  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(work_))
    if (!keep.count(e.path().filename().string())) std::filesystem::remove_all(e.path(), ec);

  // config.json: the source's, plus quantization_config; the format's files; the tokenizer's.
  json cfg = json::parse(read_file(base_.path / "config.json"));
  cfg["quantization_config"] = format_.quantization_config;
  write_file_atomic(work_ / "config.json", cfg.dump(2) + "\n");
  for (const auto& [file, text] : format_.extra_files) write_file_atomic(work_ / file, text);
  copy_tokenizer_files(base_.path, work_, out);
  if (std::filesystem::exists(out, ec)) {
    std::filesystem::remove_all(out, ec);
    if (ec) fail("{}: cannot replace: {}", out.string(), ec.message());
  }
  std::filesystem::rename(work_, out, ec);
  if (ec) fail("{}: cannot rename {} into place: {}", out.string(), work_.string(), ec.message());
}

}  // namespace quantllm
