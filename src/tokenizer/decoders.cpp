// Decoders and the post-processor of tokenizer.json (see stages.h). Each class mirrors one component of
// the `tokenizers` library, including its corner cases, because text must round-trip exactly.
#include "tokenizer/stages.h"

#include "tokenizer/stages_util.h"

namespace quantllm {
namespace {

using namespace stages;

// ---------------------------------------------------------------- decoders

class SequenceDecoder : public Decoder {
 public:
  std::vector<std::unique_ptr<Decoder>> parts;
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (auto& p : parts) tokens = p->decode_chain(std::move(tokens));
    return tokens;
  }
};

class ByteLevelDecoder : public Decoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::string bytes;
    for (const auto& t : tokens) {
      // A token with any char outside the byte map (an added token, say) contributes its UTF-8 as is.
      std::string mapped;
      bool all_mapped = true;
      for (size_t pos = 0; pos < t.size() && all_mapped;) {
        int b = unicode::char_to_byte(unicode::next_code_point(t, pos));
        if (b < 0) all_mapped = false;
        else mapped.push_back(char(b));
      }
      bytes += all_mapped ? mapped : t;
    }
    return {unicode::utf8_lossy(bytes)};
  }
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(Pattern p, std::string c) : pattern(std::move(p)), content(std::move(c)) {}
  Pattern pattern;
  std::string content;
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (auto& t : tokens) t = pattern.replace_all(t, content);
    return tokens;
  }
};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class ByteFallbackDecoder : public Decoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::vector<std::string> out;
    std::string pending;  // bytes of consecutive <0xNN> tokens
    auto flush = [&] {
      if (pending.empty()) return;
      if (unicode::is_valid_utf8(pending)) {
        out.push_back(pending);
      } else {
        // Invalid UTF-8: one U+FFFD per byte (not per maximal subpart), as tokenizers does here.
        for (size_t i = 0; i < pending.size(); ++i) out.push_back("\xEF\xBF\xBD");
      }
      pending.clear();
    };
    for (auto& t : tokens) {
      int value = -1;
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') {
        int hi = hex_value(t[3]), lo = hex_value(t[4]);
        if (hi >= 0 && lo >= 0) value = hi * 16 + lo;
      }
      if (value >= 0) {
        pending.push_back(char(value));
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    return out;
  }
};

class FuseDecoder : public Decoder {
 public:
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    std::string all;
    for (auto& t : tokens) all += t;
    return {all};
  }
};

class StripDecoder : public Decoder {
 public:
  char32_t content = ' ';
  size_t start = 0, stop = 0;
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (auto& t : tokens) {
      std::vector<char32_t> cps;
      for (size_t pos = 0; pos < t.size();) cps.push_back(unicode::next_code_point(t, pos));
      size_t start_cut = 0, stop_cut = 0;
      while (start_cut < start && start_cut < cps.size() && cps[start_cut] == content) ++start_cut;
      while (stop_cut < stop && stop_cut < cps.size() && cps[cps.size() - 1 - stop_cut] == content) ++stop_cut;
      // tokenizers keeps `byte length - cuts` chars (not `char count - cuts`), and on underflow everything
      // after the start cut; reproduced so multi-byte text decodes the same.
      size_t keep = t.size() >= start_cut + stop_cut ? t.size() - start_cut - stop_cut : SIZE_MAX;
      std::string out;
      for (size_t i = start_cut; i < cps.size() && i - start_cut < keep; ++i) unicode::append_utf8(out, cps[i]);
      t = std::move(out);
    }
    return tokens;
  }
};

class MetaspaceDecoder : public Decoder {
 public:
  char32_t replacement = U'\u2581';
  bool strip_first = true;  // prepend_scheme != never
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      const std::string& t = tokens[i];
      for (size_t pos = 0; pos < t.size();) {
        char32_t cp = unicode::next_code_point(t, pos);
        if (cp == replacement) {
          if (i == 0 && strip_first) continue;  // every replacement char of the first token goes
          out.push_back(' ');
        } else {
          unicode::append_utf8(out, cp);
        }
      }
      tokens[i] = std::move(out);
    }
    return tokens;
  }
};

class BpeSuffixDecoder : public Decoder {
 public:
  std::string suffix;
  std::vector<std::string> decode_chain(std::vector<std::string> tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (suffix.empty()) continue;
      std::string out;
      const std::string& t = tokens[i];
      const char* replacement = i + 1 == tokens.size() ? "" : " ";
      size_t pos = 0;
      for (size_t hit; (hit = t.find(suffix, pos)) != std::string::npos; pos = hit + suffix.size())
        out.append(t, pos, hit - pos).append(replacement);
      out.append(t, pos);
      tokens[i] = std::move(out);
    }
    return tokens;
  }
};

}  // namespace

std::unique_ptr<Decoder> make_decoder(const json& spec, const std::string& context) {
  if (spec.is_null()) return nullptr;
  std::string type = type_of(spec, context);
  std::string ctx = context + " (decoder " + type + ")";
  if (type == "Sequence") {
    auto seq = std::make_unique<SequenceDecoder>();
    for (const auto& part : get_array(spec, "decoders", ctx)) {
      if (part.is_null()) fail("{}: null entry", ctx);
      seq->parts.push_back(make_decoder(part, context));
    }
    return seq;
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Replace")
    return std::make_unique<ReplaceDecoder>(Pattern(member(spec, "pattern", ctx), ctx), get_string(spec, "content", ctx));
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    auto d = std::make_unique<StripDecoder>();
    d->content = single_char(get_string(spec, "content", ctx), ctx, "content");
    const json& start = member(spec, "start", ctx);
    const json& stop = member(spec, "stop", ctx);
    if (!start.is_number_unsigned() || !stop.is_number_unsigned()) fail("{}: start/stop must be counts", ctx);
    d->start = start.get<size_t>();
    d->stop = stop.get<size_t>();
    return d;
  }
  if (type == "Metaspace") {
    auto d = std::make_unique<MetaspaceDecoder>();
    d->replacement = single_char(get_string_or(spec, "replacement", "\u2581", ctx), ctx, "replacement");
    d->strip_first = parse_prepend_scheme(spec, ctx) != PrependScheme::Never;
    return d;
  }
  if (type == "BPEDecoder") {
    auto d = std::make_unique<BpeSuffixDecoder>();
    d->suffix = get_string_or(spec, "suffix", "</w>", ctx);
    return d;
  }
  fail("{}: unsupported decoder type '{}'", context, type);
}

// ---------------------------------------------------------------- post-processor

std::vector<int32_t> PostTemplate::apply(const std::vector<int32_t>& ids) const {
  if (single.empty()) return ids;
  std::vector<int32_t> out;
  out.reserve(ids.size() + 4);
  for (const auto& item : single) {
    if (item.is_sequence) out.insert(out.end(), ids.begin(), ids.end());
    else out.insert(out.end(), item.ids.begin(), item.ids.end());
  }
  return out;
}

namespace {

using namespace stages;

int32_t checked_id(const json& v, const std::string& ctx) {
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX) fail("{}: invalid token id", ctx);
  return int32_t(v.get<int64_t>());
}

// Substitutes `inner` for the $A of `outer` (post-processors of a Sequence apply one after the other).
std::vector<PostTemplate::Item> compose(const std::vector<PostTemplate::Item>& inner,
                                        const std::vector<PostTemplate::Item>& outer) {
  if (outer.empty()) return inner;
  if (inner.empty()) return outer;
  std::vector<PostTemplate::Item> out;
  for (const auto& item : outer) {
    if (item.is_sequence) out.insert(out.end(), inner.begin(), inner.end());
    else out.push_back(item);
  }
  return out;
}

std::vector<PostTemplate::Item> template_items(const json& spec, const std::string& context) {
  std::string type = type_of(spec, context);
  std::string ctx = context + " (post_processor " + type + ")";
  using Item = PostTemplate::Item;
  if (type == "ByteLevel") return {};  // only trims offsets
  if (type == "Sequence") {
    std::vector<Item> acc;
    for (const auto& part : get_array(spec, "processors", ctx)) acc = compose(acc, template_items(part, context));
    return acc;
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    auto special = [&](const char* key) {
      const json& v = member(spec, key, ctx);
      if (!v.is_array() || v.size() != 2 || !v[0].is_string()) fail("{}: \"{}\" must be [token, id]", ctx, key);
      return Item{false, {checked_id(v[1], ctx)}, {v[0].get<std::string>()}};
    };
    return {special("cls"), Item{true, {}, {}}, special("sep")};
  }
  if (type == "TemplateProcessing") {
    const json& single = get_array(spec, "single", ctx);
    const json& specials = member(spec, "special_tokens", ctx);
    if (!specials.is_object()) fail("{}: \"special_tokens\" must be an object", ctx);
    std::vector<Item> items;
    for (const auto& piece : single) {
      if (!piece.is_object() || piece.size() != 1) fail("{}: template pieces must be {{\"SpecialToken\"|\"Sequence\": ...}}", ctx);
      if (auto seq = piece.find("Sequence"); seq != piece.end()) {
        std::string id = seq->is_object() ? get_string(*seq, "id", ctx) : "";
        if (id != "A") fail("{}: the single template may only use sequence A, not '{}'", ctx, id);
        items.push_back(Item{true, {}, {}});
      } else if (auto sp = piece.find("SpecialToken"); sp != piece.end()) {
        if (!sp->is_object()) fail("{}: SpecialToken must be an object", ctx);
        std::string name = get_string(*sp, "id", ctx);
        auto entry = specials.find(name);
        if (entry == specials.end() || !entry->is_object())
          fail("{}: template uses special token '{}' missing from special_tokens", ctx, name);
        Item item;
        for (const auto& id : get_array(*entry, "ids", ctx)) item.ids.push_back(checked_id(id, ctx));
        if (auto toks = entry->find("tokens"); toks != entry->end() && toks->is_array())
          for (const auto& t : *toks)
            if (t.is_string()) item.tokens.push_back(t.get<std::string>());
        items.push_back(std::move(item));
      } else {
        fail("{}: template pieces must be {{\"SpecialToken\"|\"Sequence\": ...}}", ctx);
      }
    }
    return items;
  }
  fail("{}: unsupported post_processor type '{}'", context, type);
}

}  // namespace

PostTemplate make_post_template(const json& spec, const std::string& context) {
  PostTemplate t;
  if (!spec.is_null()) t.single = template_items(spec, context);
  return t;
}

}  // namespace quantllm
