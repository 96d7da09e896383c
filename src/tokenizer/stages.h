// The stages of a tokenizer.json around the model (pretokenizers.cpp, decoders.cpp): normalizers, pre-tokenizers, decoders and the
// post-processor, each built from its JSON object and behaving as the `tokenizers` library's component of
// the same name. Unsupported component types are rejected at load time with a message naming the file,
// so a tokenizer we cannot reproduce exactly never silently produces different ids.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/regex.h"

namespace quantllm {

// tokenizers' Pattern: a literal string or a regex ({"String": ...} / {"Regex": ...}).
class Pattern {
 public:
  Pattern(const nlohmann::json& spec, const std::string& context);
  // Non-overlapping matches as byte ranges, left to right.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;
  std::string replace_all(std::string_view text, std::string_view content) const;
  bool is_regex() const { return regex_ != nullptr; }
  const Regex* regex() const { return regex_.get(); }
  const std::string& source() const { return source_; }

 private:
  std::string source_;  // the literal, or the regex pattern
  std::shared_ptr<Regex> regex_;
};

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual std::string normalize(std::string text) const = 0;
};

// One piece of text between pre-tokenizer stages. `at_start`: the piece begins at offset 0 of the
// original input (what Metaspace's prepend_scheme "first" looks at).
struct PreToken {
  std::string text;
  bool at_start = false;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces `pieces` by their refinement; empty pieces are dropped, as tokenizers does.
  virtual void pre_tokenize(std::vector<PreToken>& pieces) const = 0;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual std::vector<std::string> decode_chain(std::vector<std::string> tokens) const = 0;
};

// `context` names the file (and component) in error messages. A null JSON value gives nullptr.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& spec, const std::string& context);
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& spec, const std::string& context);
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& spec, const std::string& context);

// The post-processor flattened to one template for single sequences: the ids it puts around the
// sequence's ids. Sequence[ByteLevel, TemplateProcessing] and Roberta/Bert processors reduce to this too.
struct PostTemplate {
  struct Item {
    bool is_sequence = false;      // $A
    std::vector<int32_t> ids;      // special token ids otherwise
    std::vector<std::string> tokens;
  };
  std::vector<Item> single;  // empty: no post-processor, the ids pass unchanged
  std::vector<int32_t> apply(const std::vector<int32_t>& ids) const;
};
PostTemplate make_post_template(const nlohmann::json& spec, const std::string& context);

}  // namespace quantllm
