// Normalizers and pre-tokenizers of tokenizer.json (see stages.h), and the Pattern they match with. Each
// class mirrors one component of the `tokenizers` library, including its corner cases (noted where they
// look surprising), because ids must match the reference exactly.
#include "tokenizer/stages.h"

#include "tokenizer/stages_util.h"

namespace quantllm {
namespace {

using namespace stages;

// ---------------------------------------------------------------- splitting

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

SplitBehavior parse_behavior(const json& spec, const std::string& context) {
  std::string b = get_string(spec, "behavior", context);
  if (b == "Removed") return SplitBehavior::Removed;
  if (b == "Isolated") return SplitBehavior::Isolated;
  if (b == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (b == "Contiguous") return SplitBehavior::Contiguous;
  fail("{}: unknown split behavior '{}'", context, b);
}

struct Range {
  size_t begin, end;
  bool is_match;
};

// Matches turned into a cover of the whole text: (range, is_match), as tokenizers' Pattern::find_matches.
std::vector<Range> cover(std::string_view text, const std::vector<std::pair<size_t, size_t>>& matches) {
  std::vector<Range> out;
  if (text.empty()) return {{0, 0, false}};
  out.reserve(matches.size() * 2 + 1);
  size_t prev = 0;
  for (auto [b, e] : matches) {
    if (prev != b) out.push_back({prev, b, false});
    out.push_back({b, e, true});
    prev = e;
  }
  if (prev != text.size()) out.push_back({prev, text.size(), false});
  return out;
}

// NormalizedString::split: applies the delimiter behavior, then drops removed and empty pieces.
std::vector<std::pair<size_t, size_t>> split_ranges(std::vector<Range> m, SplitBehavior behavior) {
  std::vector<Range> acc;
  acc.reserve(m.size());
  switch (behavior) {
    case SplitBehavior::Isolated:
      for (auto& r : m) acc.push_back({r.begin, r.end, false});
      break;
    case SplitBehavior::Removed:
      acc = std::move(m);
      break;
    case SplitBehavior::MergedWithPrevious: {
      bool previous_match = false;
      for (auto& r : m) {
        if (r.is_match && !previous_match && !acc.empty()) acc.back().end = r.end;
        else acc.push_back({r.begin, r.end, false});
        previous_match = r.is_match;
      }
      break;
    }
    case SplitBehavior::MergedWithNext: {
      bool previous_match = false;
      for (auto it = m.rbegin(); it != m.rend(); ++it) {
        if (it->is_match && !previous_match && !acc.empty()) acc.back().begin = it->begin;
        else acc.push_back({it->begin, it->end, false});
        previous_match = it->is_match;
      }
      std::reverse(acc.begin(), acc.end());
      break;
    }
    case SplitBehavior::Contiguous: {
      bool previous_match = false;
      for (auto& r : m) {
        if (r.is_match == previous_match && !acc.empty()) acc.back().end = r.end;
        else acc.push_back({r.begin, r.end, false});
        previous_match = r.is_match;
      }
      break;
    }
  }
  std::vector<std::pair<size_t, size_t>> out;
  out.reserve(acc.size());
  for (auto& r : acc)
    if (!r.is_match && r.end > r.begin) out.emplace_back(r.begin, r.end);
  return out;
}

// Applies `split` to every piece and keeps the non-empty results, tracking which start the original text.
template <typename SplitFn>
void refine(std::vector<PreToken>& pieces, SplitFn&& split) {
  // Whole texts become hundreds of thousands of pieces: reserve for about one piece per 3 bytes up front,
  // since growing by doubling copies everything and faults in fresh pages each time.
  size_t total_bytes = 0;
  for (const auto& piece : pieces) total_bytes += piece.text.size();
  std::vector<PreToken> out;
  out.reserve(pieces.size() + total_bytes / 3);
  for (auto& piece : pieces) {
    for (auto& sub : split(piece))
      if (!sub.text.empty()) out.push_back(std::move(sub));
  }
  pieces = std::move(out);
}

// Isolated split by a regex (matches and the gaps between them all become pieces), streamed into `out`
// without the intermediate match/range vectors: this runs over whole texts.
template <typename Emit>
void split_isolated(const PreToken& piece, const Regex& regex, Emit&& emit) {
  size_t prev = 0;
  const std::string& t = piece.text;
  regex.for_each_match(t, [&](size_t b, size_t e) {
    if (b > prev) emit(std::string_view(t).substr(prev, b - prev), piece.at_start && prev == 0);
    if (e > b) emit(std::string_view(t).substr(b, e - b), piece.at_start && b == 0);
    prev = std::max(prev, e);
  });
  if (prev < t.size()) emit(std::string_view(t).substr(prev), piece.at_start && prev == 0);
}

std::vector<PreToken> cut(const PreToken& piece, const std::vector<std::pair<size_t, size_t>>& ranges) {
  std::vector<PreToken> out;
  out.reserve(ranges.size());
  for (auto [b, e] : ranges) out.push_back({piece.text.substr(b, e - b), piece.at_start && b == 0});
  return out;
}

// ---------------------------------------------------------------- normalizers

class SequenceNormalizer : public Normalizer {
 public:
  std::vector<std::unique_ptr<Normalizer>> parts;
  std::string normalize(std::string text) const override {
    for (auto& p : parts) text = p->normalize(std::move(text));
    return text;
  }
};

class PrependNormalizer : public Normalizer {
 public:
  std::string prefix;
  std::string normalize(std::string text) const override { return text.empty() ? text : prefix + text; }
};

class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(Pattern p, std::string c) : pattern(std::move(p)), content(std::move(c)) {}
  Pattern pattern;
  std::string content;
  std::string normalize(std::string text) const override { return pattern.replace_all(text, content); }
};

class NfcNormalizer : public Normalizer {
 public:
  std::string normalize(std::string text) const override { return unicode::nfc(text); }
};

class NfdNormalizer : public Normalizer {
 public:
  std::string normalize(std::string text) const override { return unicode::nfd(text); }
};

class StripNormalizer : public Normalizer {
 public:
  bool left = true, right = true;
  std::string normalize(std::string text) const override {
    size_t b = 0, e = text.size();
    if (left) {
      while (b < e) {
        size_t pos = b;
        if (!unicode::is_whitespace(unicode::next_code_point(text, pos))) break;
        b = pos;
      }
    }
    if (right) {
      while (e > b) {
        size_t start = e - 1;
        while (start > b && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
        size_t pos = start;
        if (!unicode::is_whitespace(unicode::next_code_point(text, pos))) break;
        e = start;
      }
    }
    return text.substr(b, e - b);
  }
};

// ---------------------------------------------------------------- pre-tokenizers

class SequencePreTokenizer : public PreTokenizer {
 public:
  std::vector<std::unique_ptr<PreTokenizer>> parts;
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    for (auto& p : parts) p->pre_tokenize(pieces);
  }
};

// The GPT-2 pre-tokenization regex that ByteLevel(use_regex=true) applies.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex, const std::string& context)
      : add_prefix_space_(add_prefix_space) {
    if (use_regex) regex_ = std::make_unique<Regex>(kGpt2Pattern, context);
  }
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    const auto& table = unicode::byte_to_char();
    size_t total_bytes = 0;
    for (const auto& piece : pieces) total_bytes += piece.text.size();
    std::vector<PreToken> out;
    out.reserve(pieces.size() + (regex_ ? total_bytes / 3 : 0));
    // Every byte becomes its printable stand-in char.
    auto emit = [&](std::string_view text, bool at_start) {
      PreToken mapped{std::string(), at_start};
      mapped.text.reserve(text.size() * 2);
      for (unsigned char c : text) unicode::append_utf8(mapped.text, table[c]);
      out.push_back(std::move(mapped));
    };
    for (auto& piece : pieces) {
      if (add_prefix_space_ && piece.text.rfind(' ', 0) != 0) piece.text.insert(piece.text.begin(), ' ');
      if (regex_) split_isolated(piece, *regex_, emit);
      else if (!piece.text.empty()) emit(piece.text, piece.at_start);
    }
    pieces = std::move(out);
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
};

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(Pattern p, SplitBehavior b, bool invert) : pattern_(std::move(p)), behavior_(b), invert_(invert) {}
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    if (behavior_ == SplitBehavior::Isolated && !invert_ && pattern_.regex()) {
      std::vector<PreToken> out;
      size_t total_bytes = 0;
      for (const auto& piece : pieces) total_bytes += piece.text.size();
      out.reserve(pieces.size() + total_bytes / 3);
      for (const auto& piece : pieces)
        split_isolated(piece, *pattern_.regex(), [&](std::string_view t, bool at_start) {
          out.push_back(PreToken{std::string(t), at_start});
        });
      pieces = std::move(out);
      return;
    }
    refine(pieces, [&](PreToken& piece) {
      auto ranges = cover(piece.text, pattern_.find_all(piece.text));
      if (invert_)
        for (auto& r : ranges) r.is_match = !r.is_match;
      return cut(piece, split_ranges(std::move(ranges), behavior_));
    });
  }

 private:
  Pattern pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

class MetaspacePreTokenizer : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    refine(pieces, [&](PreToken& piece) {
      std::string text;
      text.reserve(piece.text.size() + replacement_.size());
      for (char c : piece.text) {
        if (c == ' ') text += replacement_;
        else text += c;
      }
      bool starts = text.rfind(replacement_, 0) == 0;
      if (!starts && (scheme_ == PrependScheme::Always || (scheme_ == PrependScheme::First && piece.at_start)))
        text.insert(0, replacement_);
      PreToken whole{std::move(text), piece.at_start};
      if (!split_) return std::vector<PreToken>{std::move(whole)};
      // Split on the replacement char, each occurrence starting a new piece (MergedWithNext).
      std::vector<std::pair<size_t, size_t>> matches;
      for (size_t pos = whole.text.find(replacement_); pos != std::string::npos;
           pos = whole.text.find(replacement_, pos + replacement_.size()))
        matches.emplace_back(pos, pos + replacement_.size());
      return cut(whole, split_ranges(cover(whole.text, matches), SplitBehavior::MergedWithNext));
    });
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

class DigitsPreTokenizer : public PreTokenizer {
 public:
  DigitsPreTokenizer(bool individual, const std::string& context)
      : individual_(individual), regex_(R"(\p{N})", context) {}
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    refine(pieces, [&](PreToken& piece) {
      auto ranges = cover(piece.text, regex_.find_all(piece.text));
      return cut(piece, split_ranges(std::move(ranges), individual_ ? SplitBehavior::Isolated : SplitBehavior::Contiguous));
    });
  }

 private:
  bool individual_;
  Regex regex_;
};

class WhitespaceSplitPreTokenizer : public PreTokenizer {
 public:
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    refine(pieces, [&](PreToken& piece) {
      std::vector<std::pair<size_t, size_t>> matches;
      for (size_t pos = 0; pos < piece.text.size();) {
        size_t start = pos;
        if (unicode::is_whitespace(unicode::next_code_point(piece.text, pos))) matches.emplace_back(start, pos);
      }
      return cut(piece, split_ranges(cover(piece.text, matches), SplitBehavior::Removed));
    });
  }
};

}  // namespace

// ---------------------------------------------------------------- Pattern

Pattern::Pattern(const json& spec, const std::string& context) {
  if (!spec.is_object() || spec.size() != 1) fail("{}: pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}", context);
  if (auto it = spec.find("String"); it != spec.end() && it->is_string()) {
    source_ = it->get<std::string>();
  } else if (auto it2 = spec.find("Regex"); it2 != spec.end() && it2->is_string()) {
    source_ = it2->get<std::string>();
    regex_ = std::make_shared<Regex>(source_, context);
  } else {
    fail("{}: pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}", context);
  }
}

std::vector<std::pair<size_t, size_t>> Pattern::find_all(std::string_view text) const {
  if (regex_) return regex_->find_all(text);
  std::vector<std::pair<size_t, size_t>> out;
  if (source_.empty()) return out;  // tokenizers: an empty literal matches nothing
  for (size_t pos = text.find(source_); pos != std::string_view::npos; pos = text.find(source_, pos + source_.size()))
    out.emplace_back(pos, pos + source_.size());
  return out;
}

std::string Pattern::replace_all(std::string_view text, std::string_view content) const {
  auto matches = find_all(text);
  if (matches.empty()) return std::string(text);
  std::string out;
  out.reserve(text.size() + matches.size() * content.size());
  size_t prev = 0;
  for (auto [b, e] : matches) {
    out.append(text.substr(prev, b - prev)).append(content);
    prev = e;
  }
  out.append(text.substr(prev));
  return out;
}

// ---------------------------------------------------------------- factories

std::unique_ptr<Normalizer> make_normalizer(const json& spec, const std::string& context) {
  if (spec.is_null()) return nullptr;
  std::string type = type_of(spec, context);
  std::string ctx = context + " (normalizer " + type + ")";
  if (type == "Sequence") {
    auto seq = std::make_unique<SequenceNormalizer>();
    for (const auto& part : get_array(spec, "normalizers", ctx)) {
      if (part.is_null()) fail("{}: null entry", ctx);
      seq->parts.push_back(make_normalizer(part, context));
    }
    return seq;
  }
  if (type == "Prepend") {
    auto n = std::make_unique<PrependNormalizer>();
    n->prefix = get_string(spec, "prepend", ctx);
    return n;
  }
  if (type == "Replace")
    return std::make_unique<ReplaceNormalizer>(Pattern(member(spec, "pattern", ctx), ctx), get_string(spec, "content", ctx));
  if (type == "NFC") return std::make_unique<NfcNormalizer>();
  if (type == "NFD") return std::make_unique<NfdNormalizer>();
  if (type == "Strip") {
    auto n = std::make_unique<StripNormalizer>();
    n->left = get_bool_or(spec, "strip_left", true, ctx);
    n->right = get_bool_or(spec, "strip_right", true, ctx);
    return n;
  }
  fail("{}: unsupported normalizer type '{}'", context, type);
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& spec, const std::string& context) {
  if (spec.is_null()) return nullptr;
  std::string type = type_of(spec, context);
  std::string ctx = context + " (pre_tokenizer " + type + ")";
  if (type == "Sequence") {
    auto seq = std::make_unique<SequencePreTokenizer>();
    for (const auto& part : get_array(spec, "pretokenizers", ctx)) {
      if (part.is_null()) fail("{}: null entry", ctx);
      seq->parts.push_back(make_pre_tokenizer(part, context));
    }
    return seq;
  }
  if (type == "ByteLevel")
    return std::make_unique<ByteLevelPreTokenizer>(get_bool_or(spec, "add_prefix_space", true, ctx),
                                                   get_bool_or(spec, "use_regex", true, ctx), ctx);
  if (type == "Split")
    return std::make_unique<SplitPreTokenizer>(Pattern(member(spec, "pattern", ctx), ctx), parse_behavior(spec, ctx),
                                               get_bool_or(spec, "invert", false, ctx));
  if (type == "Metaspace")
    return std::make_unique<MetaspacePreTokenizer>(get_string_or(spec, "replacement", "\u2581", ctx),
                                                   parse_prepend_scheme(spec, ctx), get_bool_or(spec, "split", true, ctx));
  if (type == "Digits") return std::make_unique<DigitsPreTokenizer>(get_bool_or(spec, "individual_digits", false, ctx), ctx);
  if (type == "WhitespaceSplit") return std::make_unique<WhitespaceSplitPreTokenizer>();
  fail("{}: unsupported pre_tokenizer type '{}'", context, type);
}

}  // namespace quantllm
