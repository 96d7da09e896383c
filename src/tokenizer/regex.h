// A compiled PCRE2 regex in UTF + UCP mode, used for Split pre-tokenizers, the GPT-2 ByteLevel regex and
// Replace normalizers/decoders. Patterns from tokenizer.json are written for Oniguruma (what the
// `tokenizers` library uses); the one difference that matters for them is \s, which Oniguruma takes as the
// Unicode White_Space property and PCRE2 as Z + a few controls (it misses U+0085), so \s and \S are
// rewritten to explicit classes before compiling.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace quantllm {

class Regex {
 public:
  // Throws Error (prefixed by `context`) when the pattern does not compile.
  Regex(const std::string& pattern, const std::string& context);
  ~Regex();
  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;

  // Non-overlapping matches left to right as byte ranges [begin, end); empty matches included, the scan
  // advancing by one character after each of them as Rust's and Oniguruma's iterators do.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;
  // The same matches passed to on_match(begin, end) one by one, without materializing them.
  template <typename OnMatch>
  void for_each_match(std::string_view text, OnMatch&& on_match) const {
    scan(text, [](void* ctx, size_t b, size_t e) { (*static_cast<OnMatch*>(ctx))(b, e); }, &on_match);
  }
  const std::string& pattern() const { return pattern_; }

 private:
  void scan(std::string_view text, void (*emit)(void*, size_t, size_t), void* ctx) const;
  struct Compiled;
  std::string pattern_;
  std::unique_ptr<Compiled> compiled_;
};

}  // namespace quantllm
