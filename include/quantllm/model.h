// quantllm::Model: a model opened from disk — a Hugging Face checkpoint directory, a GPTQ / AWQ
// directory written by quantllm (or AutoGPTQ / AutoAWQ), or a .gguf file — with its architecture, its
// tokenizer and its tensors. Cheap to copy (a shared handle); what runs it lives in eval.h.
//
//   quantllm::Model m("gutenberg-llama-33m");
//   auto ids = m.encode("It was a dark and stormy night");
//   for (const auto& t : m.tensors()) std::cout << t.name << " " << t.format << "\n";
#pragma once

#include "quantllm/error.h"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace quantllm {

struct LoadedModel;  // the library's own view (src/model/weights.h)
class Tokenizer;     // the library's tokenizer (src/tokenizer/tokenizer.h)

// A model's tokenizer (tokenizer.json / tokenizer.model, or a GGUF file's).
class TextTokenizer {
 public:
  // The tokenizer files of a model directory alone.
  static TextTokenizer from_dir(const std::filesystem::path& dir);
  explicit TextTokenizer(std::shared_ptr<const Tokenizer> t);
  std::vector<int32_t> encode(const std::string& text, bool add_special = true) const;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const;
  int64_t vocab_size() const;
  std::optional<int32_t> bos_id() const, eos_id() const, pad_id() const;
  bool adds_bos() const;

 private:
  std::shared_ptr<const Tokenizer> impl_;
};

struct ModelInfo {
  std::string kind;          // "hf", "gptq", "awq", "compressed-tensors", "gguf"
  std::string architecture;  // "LlamaForCausalLM", …
  std::string model_type;    // config.json's "llama", …
  std::string dtype;         // of the stored weights: "BF16", "F16", "F32"
  int64_t hidden_size = 0, num_hidden_layers = 0, num_attention_heads = 0, num_key_value_heads = 0, head_dim = 0,
          intermediate_size = 0, vocab_size = 0, max_position_embeddings = 0;
  double norm_eps = 0, rope_theta = 0;
  bool tie_word_embeddings = false, qkv_bias = false;
  // Quantized directories: the vLLM / SGLang kernel family the file targets, then a "warning: " line for
  // each choice that leaves the fast path (asymmetric GPTQ, group sizes, widths, shapes).
  std::vector<std::string> serving;
};

struct TokenizerInfo {
  std::string kind;  // "sentencepiece-bpe" or "byte-level-bpe"
  int64_t vocab_size = 0;
  std::optional<int32_t> bos_id, eos_id;
  bool adds_bos = false;
  bool has_chat_template = false;
};

struct TensorInfo {
  std::string name;             // Hugging Face name
  std::vector<int64_t> shape;   // HF orientation: linear weights [out, in]
  std::string format;           // as stored: "BF16", "GPTQ int4 g128", "Q4_K", …
  uint64_t bytes = 0;           // stored bytes
};

class Model {
 public:
  // Opens a model path; Error when the path holds nothing this library reads.
  explicit Model(const std::filesystem::path& path);
  explicit Model(std::shared_ptr<const LoadedModel> loaded);

  const std::filesystem::path& path() const;
  const std::string& kind() const;
  ModelInfo info() const;
  TokenizerInfo tokenizer_info() const;
  std::vector<TensorInfo> tensors() const;

  TextTokenizer tokenizer() const;
  // Token ids of text (with the tokenizer's special tokens, e.g. BOS, when add_special), and back.
  std::vector<int32_t> encode(const std::string& text, bool add_special = true) const;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = true) const;
  // The prompt of one user message wrapped in the model's chat template; Error when it has none.
  std::vector<int32_t> chat_prompt(const std::string& user_message) const;

  // The library's view of the model (for the library's own code).
  const LoadedModel& loaded() const { return *impl_; }
  const std::shared_ptr<const LoadedModel>& shared() const { return impl_; }

 private:
  std::shared_ptr<const LoadedModel> impl_;
};

// The seed library's spelling of Model(path).
Model load_model(const std::filesystem::path& path);

}  // namespace quantllm
