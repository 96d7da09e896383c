// Tokenizer: a Hugging Face tokenizer.json, reproduced exactly (same ids as the `tokenizers` library).
//
// Supported pipelines:
//  - SentencePiece-style BPE with byte fallback (Llama 2, Mistral): normalizer Sequence[Prepend("▁"),
//    Replace(" ", "▁")] or a Metaspace pre-tokenizer; byte-fallback tokens <0xNN>; decoder reverses it.
//  - Byte-level BPE (GPT-2, OPT): ByteLevel pre-tokenizer with the GPT-2 regex; or a Split pre-tokenizer
//    with a regex (Qwen2, Llama 3) followed by ByteLevel(use_regex=false).
//  - NFC normalizer; added tokens (special and not) matched before the model runs;
//    TemplateProcessing post-processor (e.g. BOS in front) applied when add_special is true.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace quantllm {

enum class TokenizerKind { SentencePieceBPE, ByteLevelBPE };

// How a token is used; the same categories as GGUF's tokenizer.ggml.token_type.
enum class TokenType : int32_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

class Tokenizer {
 public:
  // Reads DIR/tokenizer.json (and DIR/tokenizer_config.json when present, for add_bos and the chat
  // template). Throws Error naming the file on anything malformed or unsupported.
  static Tokenizer from_dir(const std::filesystem::path& dir);
  static Tokenizer from_json(std::string_view tokenizer_json, std::string_view tokenizer_config_json = {},
                             const std::string& source_name = "tokenizer.json");
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // Text -> ids. add_special applies the post-processor (BOS etc.) exactly as
  // tokenizer(text, add_special_tokens=True) does in transformers.
  std::vector<int32_t> encode(std::string_view text, bool add_special = false) const;
  // Ids -> text, as tokenizer.decode(ids, skip_special_tokens=skip_special) does.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const;
  // The text piece of one token for streaming output (may be a partial UTF-8 sequence for byte tokens).
  std::string token_to_piece(int32_t id) const;

  TokenizerKind kind() const;
  int32_t vocab_size() const;  // largest id + 1, added tokens included
  const std::string& token(int32_t id) const;  // the vocabulary string
  std::optional<int32_t> token_id(std::string_view token) const;
  // SentencePiece-style score: −(rank of the first merge producing the token); 0 for single characters,
  // bytes and added tokens; −(number of merges) for multi-character tokens no merge produces.
  float score(int32_t id) const;
  TokenType token_type(int32_t id) const;
  const std::vector<std::string>& merges() const;  // "a b" strings, in rank order

  // From tokenizer_config.json (bos_token etc., strings or AddedToken objects); bos/eos fall back to the
  // post-processor's leading/trailing special token, unk to the model's unk_token.
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  std::optional<int32_t> unk_id() const;
  std::optional<int32_t> pad_id() const;
  bool adds_bos() const;  // the post-processor puts BOS in front
  bool adds_eos() const;
  // For GGUF tokenizer.ggml.pre, from the pre-tokenizer regex: "gpt-2" for ByteLevel's GPT-2 regex (llama.cpp's
  // "default" pre-tokenizer splits differently), "qwen2" / "llama-bpe" for those Split regexes, else "default".
  std::string pre_tokenizer_name() const;
  // Chat template (Jinja source) from tokenizer_config.json, empty when none.
  const std::string& chat_template() const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Copies the tokenizer's files that exist in `from` (tokenizer.json / .model / config, vocab and merges,
// special and added tokens, chat template, generation_config.json) into `to`, replacing any there, and
// makes the copies writable (a read-only models folder would otherwise hand on its permissions); Error
// naming `named` when one cannot be copied.
void copy_tokenizer_files(const std::filesystem::path& from, const std::filesystem::path& to,
                          const std::filesystem::path& named);

}  // namespace quantllm
