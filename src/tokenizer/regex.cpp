// PCRE2 wrapper for the tokenizer (see regex.h). JIT-compiled when PCRE2 supports it, since the
// pre-tokenizer regex runs over every byte of every text we tokenize.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace quantllm {
namespace {

// The White_Space property as a class body (no brackets), for splicing into patterns.
constexpr const char* kWhiteSpaceBody = "\\x{9}-\\x{D}\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"
                                        "\\x{202F}\\x{205F}\\x{3000}";

// Rewrites \s and \S (outside and inside character classes) to the White_Space property. \S inside a class
// cannot be expressed as a union, so it is kept (PCRE2's own meaning differs only at U+0085).
std::string rewrite_whitespace(const std::string& p) {
  std::string out;
  out.reserve(p.size() + 32);
  int class_depth = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      char n = p[i + 1];
      if (n == 's') {
        out += class_depth ? std::string(kWhiteSpaceBody) : "[" + std::string(kWhiteSpaceBody) + "]";
      } else if (n == 'S' && !class_depth) {
        out += "[^" + std::string(kWhiteSpaceBody) + "]";
      } else {
        out += c;
        out += n;
      }
      ++i;
      continue;
    }
    if (c == '[') {
      // A POSIX class like [:alpha:] inside a bracket does not open a new class.
      if (class_depth && i + 1 < p.size() && p[i + 1] == ':') {
        size_t close = p.find(":]", i + 2);
        if (close != std::string::npos) {
          out.append(p, i, close + 2 - i);
          i = close + 1;
          continue;
        }
      }
      out += c;
      if (!class_depth) {
        ++class_depth;
        // A ']' right after '[' or '[^' is a literal member.
        if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
        if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      } else {
        ++class_depth;  // nested class (set operations); PCRE2 takes it as literal '[' but depth stays consistent
      }
      continue;
    }
    if (c == ']' && class_depth) --class_depth;
    out += c;
  }
  return out;
}

}  // namespace

struct Regex::Compiled {
  pcre2_code* code = nullptr;
  ~Compiled() {
    if (code) pcre2_code_free(code);
  }
};

Regex::Regex(const std::string& pattern, const std::string& context)
    : pattern_(pattern), compiled_(std::make_unique<Compiled>()) {
  std::string rewritten = rewrite_whitespace(pattern);
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  compiled_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(rewritten.data()), rewritten.size(),
                                  PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error_code, &error_offset, nullptr);
  if (!compiled_->code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof message);
    fail("{}: regex '{}' does not compile: {} (at offset {})", context, pattern, reinterpret_cast<char*>(message),
         size_t(error_offset));
  }
  pcre2_jit_compile(compiled_->code, PCRE2_JIT_COMPLETE);  // optional speed-up; the interpreter is the fallback
}

Regex::~Regex() = default;
Regex::Regex(Regex&&) noexcept = default;
Regex& Regex::operator=(Regex&&) noexcept = default;

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> matches;
  matches.reserve(text.size() / 4 + 1);  // pre-tokenizer regexes match every few bytes
  for_each_match(text, [&](size_t b, size_t e) { matches.emplace_back(b, e); });
  return matches;
}

void Regex::scan(std::string_view text, void (*emit)(void*, size_t, size_t), void* ctx) const {
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(compiled_->code, nullptr);
  QL_ASSERT(md != nullptr, "pcre2_match_data_create_from_pattern failed");
  std::unique_ptr<pcre2_match_data, void (*)(pcre2_match_data*)> guard(md, pcre2_match_data_free);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  while (start <= text.size()) {
    int rc = pcre2_match(compiled_->code, subject, text.size(), start, 0, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof message);
      fail("regex '{}': matching failed: {}", pattern_, reinterpret_cast<char*>(message));
    }
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    size_t b = ov[0], e = ov[1];
    if (b > e) break;  // \K trickery; not used by tokenizer patterns
    emit(ctx, b, e);
    if (e > b) {
      start = e;
    } else {
      if (e >= text.size()) break;
      start = e + unicode::utf8_length(static_cast<unsigned char>(text[e]));
    }
  }
}

}  // namespace quantllm
