// Synthetic checkpoints of real model shapes with random weights (see synthetic.h).
#include "model/synthetic.h"

#include "core/error.h"
#include "core/fs.h"
#include "core/threads.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/weights.h"
#include "tokenizer/tokenizer.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <mutex>

namespace quantllm {

using json = nlohmann::ordered_json;

namespace {

// clang-format off
const std::vector<SynthShape> kShapes = {
  // name             architecture          hidden layers heads kv  ffn    vocab   max_pos  rope_theta llama3 eps    tied
  {"smollm2-135m",   "LlamaForCausalLM",    576,   30,    9,    3,  1536,  49152,  8192,    100000,    0,     1e-5, true},
  {"qwen2.5-0.5b",   "Qwen2ForCausalLM",    896,   24,    14,   2,  4864,  151936, 32768,   1000000,   0,     1e-6, true},
  {"llama-3.2-1b",   "LlamaForCausalLM",    2048,  16,    32,   8,  8192,  128256, 131072,  500000,    32,    1e-5, true},
  {"tinyllama-1.1b", "LlamaForCausalLM",    2048,  22,    32,   4,  5632,  32000,  2048,    10000,     0,     1e-5, false},
  {"llama-3.2-3b",   "LlamaForCausalLM",    3072,  28,    24,   8,  8192,  128256, 131072,  500000,    32,    1e-5, true},
  {"llama-2-7b",     "LlamaForCausalLM",    4096,  32,    32,   32, 11008, 32000,  4096,    10000,     0,     1e-5, false},
  {"mistral-7b",     "MistralForCausalLM",  4096,  32,    32,   8,  14336, 32768,  32768,   1000000,   0,     1e-5, false},
  {"qwen2.5-7b",     "Qwen2ForCausalLM",    3584,  28,    28,   4,  18944, 152064, 32768,   1000000,   0,     1e-6, false},
  {"llama-3-8b",     "LlamaForCausalLM",    4096,  32,    32,   8,  14336, 128256, 8192,    500000,    0,     1e-5, false},
  {"llama-3.1-8b",   "LlamaForCausalLM",    4096,  32,    32,   8,  14336, 128256, 131072,  500000,    8,     1e-5, false},
  {"llama-2-13b",    "LlamaForCausalLM",    5120,  40,    40,   40, 13824, 32000,  4096,    10000,     0,     1e-5, false},
  {"llama-3-70b",    "LlamaForCausalLM",    8192,  80,    64,   8,  28672, 128256, 8192,    500000,    0,     1e-5, false},
  {"opt-125m",       "OPTForCausalLM",      768,   12,    12,   12, 3072,  50272,  2048,    0,         0,     1e-5, true},
  // 2026: Qwen3 (head_dim 128, q/k norms) and Qwen3-MoE (128 experts of 768, top-8; head_dim, experts, top-k, width)
  {"phi-3-mini",     "Phi3ForCausalLM",     3072,  32,    32,   32, 8192,  32064,  4096,    10000,     0,     1e-5, false},
  {"qwen3-8b",       "Qwen3ForCausalLM",    4096,  36,    32,   8,  12288, 151936, 40960,   1000000,   0,     1e-6, false, 128},
  {"qwen3-30b-a3b",  "Qwen3MoeForCausalLM", 2048,  48,    32,   4,  6144,  151936, 40960,   1000000,   0,     1e-6, false, 128, 128, 8, 768},
  {"opt-1.3b",       "OPTForCausalLM",      2048,  24,    32,   32, 8192,  50272,  2048,    0,         0,     1e-5, true},
};
// clang-format on

constexpr float kStd = 0.02f;

// splitmix64's finalizer: a bijective mix of 64 bits.
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// What a tensor holds decides its distribution.
enum class Fill { Normal, OnePlusNormal };
Fill fill_of(const std::string& name) {
  const bool norm = name.find("norm") != std::string::npos;  // every norm of every row of the arch table
  return norm && name.ends_with(".weight") ? Fill::OnePlusNormal : Fill::Normal;
}

// A contiguous piece of one tensor, filled and written by one task.
struct Chunk {
  int file;          // index into the shard files
  uint64_t offset;   // file offset of element `first`
  uint64_t key;      // synth_tensor_key of the tensor
  int64_t first, count;
  Fill fill;
};


}  // namespace

const std::vector<SynthShape>& synth_shapes() { return kShapes; }

const SynthShape& synth_shape(std::string_view name) {
  for (const auto& s : kShapes)
    if (s.name == name) return s;
  std::string known;
  for (const auto& s : kShapes) known += (known.empty() ? "" : ", ") + std::string(s.name);
  fail("unknown shape '{}' (known: {})", name, known);
}

uint64_t synth_tensor_key(uint64_t seed, std::string_view name) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a of the name, mixed with the seed
  for (unsigned char ch : name) h = (h ^ ch) * 0x100000001b3ull;
  return mix64(h ^ mix64(seed + 0x9e3779b97f4a7c15ull));
}

float synth_value(uint64_t key, int64_t index) {
  // Irwin–Hall: the sum of four independent uniform 16-bit integers, centred and scaled to unit
  // variance (each has variance (65536² − 1) / 12).
  const uint64_t r = mix64(key + uint64_t(index) * 0x9e3779b97f4a7c15ull);
  const int64_t s = int64_t(r & 0xffff) + int64_t((r >> 16) & 0xffff) + int64_t((r >> 32) & 0xffff) + int64_t(r >> 48);
  constexpr double kMean = 4 * 32767.5;
  const double inv_sd = 1.0 / std::sqrt(4.0 * (65536.0 * 65536.0 - 1.0) / 12.0);
  return float((double(s) - kMean) * inv_sd);
}

Tensor synth_tensor(uint64_t seed, const std::string& name, const Shape& shape, DType dtype) {
  QL_ASSERT(dtype == DType::BF16 || dtype == DType::F16);
  Tensor t(shape);
  const uint64_t key = synth_tensor_key(seed, name);
  const float base = fill_of(name) == Fill::OnePlusNormal ? 1.0f : 0.0f;
  parallel_for(int64_t(t.data.size()), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const float v = base + kStd * synth_value(key, i);
      t.data[size_t(i)] = dtype == DType::BF16 ? bf16_to_f32(f32_to_bf16(v)) : f16_to_f32(f32_to_f16(v));
    }
  }, 1 << 16);
  return t;
}

double SynthShape::parameters() const {
  // Every tensor of the checkpoint this shape writes: its config read back, its block specs' tensors.
  const ModelConfig c = parse_config_json(synth_config_json(*this, DType::BF16, -1, -1), std::string(name));
  double n = 0;
  for (const auto& [tensor, shape] : expected_tensors(c)) n += double(shape_numel(shape));
  return n;
}

std::string synth_config_json(const SynthShape& s, DType dtype, int64_t bos_id, int64_t eos_id) {
  const ArchSpec* arch = find_arch(s.architecture);
  QL_ASSERT(arch != nullptr, "shape table names unknown architecture {}", s.architecture);
  const std::string torch_dtype = dtype == DType::F16 ? "float16" : "bfloat16";
  json j = json::object();
  j["architectures"] = {std::string(s.architecture)};
  j["model_type"] = std::string(arch->model_type);
  j["hidden_size"] = s.hidden;
  j["num_hidden_layers"] = s.layers;
  j["num_attention_heads"] = s.heads;
  j["vocab_size"] = s.vocab;
  j["max_position_embeddings"] = s.max_positions;
  if (arch->norm == NormKind::LayerNorm) {  // OPT
    j["ffn_dim"] = s.ffn;
    j["word_embed_proj_dim"] = s.hidden;
    j["do_layer_norm_before"] = true;
    j["_remove_final_layer_norm"] = false;
    j["activation_function"] = "relu";
    j["enable_bias"] = true;
    j["layer_norm_elementwise_affine"] = true;
  } else {
    j["intermediate_size"] = s.ffn;
    j["num_key_value_heads"] = s.kv_heads;
    j["head_dim"] = s.head_dim > 0 ? s.head_dim : s.hidden / s.heads;
    j["hidden_act"] = "silu";
    j["rms_norm_eps"] = s.norm_eps;
    j["rope_theta"] = s.rope_theta;
    if (s.llama3_rope_factor > 0)
      j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", s.llama3_rope_factor}, {"low_freq_factor", 1.0},
                           {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
    else
      j["rope_scaling"] = nullptr;
    if (arch->model_type == "llama") j["attention_bias"] = false, j["mlp_bias"] = false;
    if (arch->model_type != "llama") j["sliding_window"] = nullptr, j["use_sliding_window"] = false;
    if (s.experts > 0) {  // as the Hub's Qwen3-MoE configs: every layer MoE
      j["num_experts"] = s.experts;
      j["num_experts_per_tok"] = s.experts_used;
      j["moe_intermediate_size"] = s.moe_ffn;
      j["norm_topk_prob"] = true;
      j["decoder_sparse_step"] = 1;
      j["mlp_only_layers"] = json::array();
    }
  }
  j["tie_word_embeddings"] = s.tied;
  if (bos_id >= 0) j["bos_token_id"] = bos_id;
  if (eos_id >= 0) j["eos_token_id"] = eos_id;
  j["torch_dtype"] = torch_dtype;
  j["quantllm_synthetic"] = {{"shape", std::string(s.name)}, {"weights", "random, N(0, 0.02); norm gains 1 + N(0, 0.02)"}};
  return j.dump(2) + "\n";
}

SynthResult write_synthetic_checkpoint(const SynthOptions& opt) {
  const SynthShape& s = opt.shape;
  if (opt.dtype != "bf16" && opt.dtype != "f16") fail("--dtype must be bf16 or f16, got '{}'", opt.dtype);
  const DType dtype = opt.dtype == "f16" ? DType::F16 : DType::BF16;
  for (auto [v, what] : {std::pair{s.hidden, "--hidden"}, {s.layers, "--layers"}, {s.heads, "--heads"},
                         {s.kv_heads, "--kv-heads"}, {s.ffn, "--ffn"}, {s.vocab, "--vocab"}})
    if (v <= 0) fail("{} must be positive, got {}", what, v);
  if (s.head_dim == 0 && s.hidden % s.heads != 0)
    fail("hidden size {} is not a multiple of the {} heads", s.hidden, s.heads);
  if (s.heads % s.kv_heads != 0) fail("{} heads are not a multiple of the {} KV heads", s.heads, s.kv_heads);
  const int64_t head_dim = s.head_dim > 0 ? s.head_dim : s.hidden / s.heads;
  if (head_dim % 2 != 0) fail("head dimension {} must be even (RoPE)", head_dim);

  // The tokenizer: it must load, and its ids must fit in the model's vocabulary.
  std::error_code ec;
  if (!std::filesystem::is_directory(opt.tokenizer_from, ec))
    fail("{}: no such directory (--tokenizer-from names a model directory whose tokenizer is copied)",
         opt.tokenizer_from.string());
  const Tokenizer tok = Tokenizer::from_dir(opt.tokenizer_from);
  if (tok.vocab_size() > s.vocab)
    fail("the tokenizer of {} has {} tokens, more than the vocabulary of {} (--vocab)", opt.tokenizer_from.string(),
         tok.vocab_size(), s.vocab);

  const std::string config_text =
      synth_config_json(s, dtype, tok.bos_id() ? *tok.bos_id() : -1, tok.eos_id() ? *tok.eos_id() : -1);
  const ModelConfig c = parse_config_json(config_text, "synthetic config.json");
  const auto tensors = expected_tensors(c);

  if (!opt.weights) {  // the metadata of a synth: source
    AtomicDir out(opt.out, opt.overwrite);
    write_file_atomic(out.path() / "config.json", config_text);
    copy_tokenizer_files(opt.tokenizer_from, out.path(), opt.out);
    out.commit();
    return {0, 0, 0};
  }
  // Shards: tensors in checkpoint order, a new shard when the next tensor would overflow this one.
  const size_t esize = dtype_size(dtype);
  std::vector<std::vector<SafetensorsEntry>> shards(1);
  uint64_t in_shard = 0, total = 0;
  int64_t params = 0;
  for (const auto& [name, shape] : tensors) {
    const uint64_t bytes = uint64_t(shape_numel(shape)) * esize;
    if (in_shard > 0 && in_shard + bytes > opt.shard_bytes) shards.emplace_back(), in_shard = 0;
    shards.back().push_back({name, dtype, shape});
    in_shard += bytes;
    total += bytes;
    params += shape_numel(shape);
  }
  const int n_files = int(shards.size());
  auto file_name = [&](int i) {
    return n_files == 1 ? std::string("model.safetensors")
                        : fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, n_files);
  };

  AtomicDir out(opt.out, opt.overwrite);
  std::vector<int> fds;
  struct CloseAll {
    std::vector<int>& fds;
    ~CloseAll() {
      for (int fd : fds) ::close(fd);
    }
  } closer{fds};
  std::vector<Chunk> chunks;
  json weight_map = json::object();
  constexpr int64_t kChunkElems = int64_t(1) << 22;  // 8 MB of bf16: small enough to balance 16 threads
  for (int i = 0; i < n_files; ++i) {
    const SafetensorsLayout layout = plan_safetensors(shards[size_t(i)], {{"format", "pt"}});
    const auto path = out.path() / file_name(i);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) fail("{}: cannot create: {}", path.string(), std::strerror(errno));
    fds.push_back(fd);
    if (::ftruncate(fd, off_t(layout.file_size)) != 0)
      fail("{}: cannot size to {} bytes: {}", path.string(), layout.file_size, std::strerror(errno));
    if (::pwrite(fd, layout.prefix.data(), layout.prefix.size(), 0) != ssize_t(layout.prefix.size()))
      fail("{}: write error: {}", path.string(), std::strerror(errno));
    for (const auto& e : shards[size_t(i)]) {
      weight_map[e.name] = file_name(i);
      const auto [offset, bytes] = layout.ranges.at(e.name);
      const int64_t n = shape_numel(e.shape);
      for (int64_t first = 0; first < n; first += kChunkElems)
        chunks.push_back({i, offset + uint64_t(first) * esize, synth_tensor_key(opt.seed, e.name), first,
                          std::min(kChunkElems, n - first), fill_of(e.name)});
    }
  }

  std::atomic<uint64_t> done{0};
  std::mutex progress_mu;
  parallel_for(int64_t(chunks.size()), [&](int64_t c0, int64_t c1) {
    std::vector<uint16_t> buf;
    for (int64_t ci = c0; ci < c1; ++ci) {
      const Chunk& ch = chunks[size_t(ci)];
      buf.resize(size_t(ch.count));
      const float base = ch.fill == Fill::OnePlusNormal ? 1.0f : 0.0f;
      for (int64_t k = 0; k < ch.count; ++k) {
        const float v = base + kStd * synth_value(ch.key, ch.first + k);
        buf[size_t(k)] = dtype == DType::BF16 ? f32_to_bf16(v) : f32_to_f16(v);
      }
      // Little-endian bytes: on the little-endian hosts quantllm supports, the uint16 array as is.
      const char* p = reinterpret_cast<const char*>(buf.data());
      size_t left = buf.size() * 2;
      off_t at = off_t(ch.offset);
      while (left > 0) {
        const ssize_t w = ::pwrite(fds[size_t(ch.file)], p, left, at);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) fail("{}: write error: {}", (out.path() / file_name(ch.file)).string(), std::strerror(errno));
        p += w, left -= size_t(w), at += w;
      }
      const uint64_t d = done += uint64_t(ch.count) * esize;
      if (opt.progress) {
        std::lock_guard lk(progress_mu);
        opt.progress(d, total);
      }
    }
  });
  for (size_t i = 0; i < fds.size(); ++i)
    if (::close(fds[i]) != 0) fail("{}: close failed: {}", (out.path() / file_name(int(i))).string(), std::strerror(errno));
  fds.clear();

  if (n_files > 1) {
    json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    write_file_atomic(out.path() / "model.safetensors.index.json", index.dump(2) + "\n");
  }
  write_file_atomic(out.path() / "config.json", config_text);
  copy_tokenizer_files(opt.tokenizer_from, out.path(), opt.out);
  out.commit();
  return {total, params, n_files};
}

}  // namespace quantllm
