// Tokenizer: loads tokenizer.json (+ tokenizer_config.json) and runs the `tokenizers` library's
// encode pipeline: added tokens are cut out first (those with normalized=false on the raw text, the others
// on the normalized text), the rest is normalized, pre-tokenized and fed word by word to the BPE model,
// and the post-processor template adds BOS/EOS. Decoding maps ids back to token strings and runs the
// decoder chain. The stages live in stages.h (pretokenizers.cpp, decoders.cpp) and the model in bpe.cpp.
#include "tokenizer/tokenizer.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>
#include <unordered_map>

#include "core/error.h"
#include "tokenizer/bpe.h"
#include "tokenizer/stages.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace quantllm {
namespace {

using json = nlohmann::json;

// Pre-tokenizer regexes of well-known model families, mapped to llama.cpp's tokenizer.ggml.pre names.
constexpr const char* kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool single_word = false, lstrip = false, rstrip = false, normalized = false, special = false;
};

// Byte trie over added-token strings with aho-corasick's LeftmostLongest semantics: the match that starts
// first wins, the longest among those.
class TokenTrie {
 public:
  TokenTrie() : nodes_(1) {}
  void insert(const std::string& key, int32_t token_index) {
    if (key.empty()) return;
    first_byte_[static_cast<unsigned char>(key[0])] = true;
    size_t node = 0;
    for (unsigned char c : key) {
      auto& children = nodes_[node].children;
      auto it = std::find_if(children.begin(), children.end(), [c](const auto& e) { return e.first == c; });
      if (it == children.end()) {
        children.emplace_back(c, nodes_.size());
        nodes_.emplace_back();
        node = nodes_.size() - 1;
      } else {
        node = it->second;
      }
    }
    // A duplicate string keeps its first token, as the first pattern wins among equal matches.
    if (nodes_[node].token < 0) nodes_[node].token = token_index;
  }
  bool empty() const { return nodes_.size() == 1; }
  // Finds the leftmost-longest match at or after `from`: {begin, end, token index}, or token -1.
  std::tuple<size_t, size_t, int32_t> find(std::string_view text, size_t from) const {
    for (size_t i = from; i < text.size(); ++i) {
      if (!first_byte_[static_cast<unsigned char>(text[i])]) continue;
      size_t node = 0, best_end = 0;
      int32_t best = -1;
      for (size_t j = i; j < text.size(); ++j) {
        unsigned char c = text[j];
        const auto& children = nodes_[node].children;
        auto it = std::find_if(children.begin(), children.end(), [c](const auto& e) { return e.first == c; });
        if (it == children.end()) break;
        node = it->second;
        if (nodes_[node].token >= 0) {
          best = nodes_[node].token;
          best_end = j + 1;
        }
      }
      if (best >= 0) return {i, best_end, best};
    }
    return {text.size(), text.size(), -1};
  }

 private:
  struct Node {
    std::vector<std::pair<unsigned char, size_t>> children;
    int32_t token = -1;
  };
  std::vector<Node> nodes_;
  bool first_byte_[256] = {};
};

// A piece of the input during added-token extraction: text still to tokenize, or an added token's id.
struct Segment {
  std::string text;
  int32_t id = -1;
  bool at_start = false;
};

// Rust regex's \w (Alphabetic, marks, decimal digits, connector punctuation, joiners) for single_word.
bool is_word_char(char32_t cp) {
  static const Regex word(R"(^[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D}]$)", "word-character regex");
  std::string s;
  unicode::append_utf8(s, cp);
  return !word.find_all(s).empty();
}

char32_t last_code_point(std::string_view s) {
  size_t start = s.size() - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  return unicode::next_code_point(s, start);
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open", path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail("{}: read error", path.string());
  return ss.str();
}

// A special-token entry of tokenizer_config.json: a string, {"content": ...} (AddedToken), or null.
std::optional<std::string> config_token(const json& config, const char* key, const std::string& source) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    auto c = it->find("content");
    if (c != it->end() && c->is_string()) return c->get<std::string>();
  }
  fail("{}: \"{}\" must be a string, an AddedToken object or null", source, key);
}

bool config_bool(const json& config, const char* key, bool fallback) {
  auto it = config.find(key);
  return (it != config.end() && it->is_boolean()) ? it->get<bool>() : fallback;
}

// Walks a pre_tokenizer spec collecting Split regexes and whether ByteLevel applies the GPT-2 regex.
void scan_pre_tokenizer(const json& spec, std::vector<std::string>& split_regexes, bool& byte_level,
                        bool& byte_level_regex) {
  if (!spec.is_object()) return;
  std::string type = spec.value("type", "");
  if (type == "Sequence" && spec.contains("pretokenizers") && spec["pretokenizers"].is_array()) {
    for (const auto& p : spec["pretokenizers"]) scan_pre_tokenizer(p, split_regexes, byte_level, byte_level_regex);
  } else if (type == "ByteLevel") {
    byte_level = true;
    auto it = spec.find("use_regex");
    if (it == spec.end() || !it->is_boolean() || it->get<bool>()) byte_level_regex = true;
  } else if (type == "Split" && spec.contains("pattern") && spec["pattern"].is_object()) {
    auto r = spec["pattern"].find("Regex");
    if (r != spec["pattern"].end() && r->is_string()) split_regexes.push_back(r->get<std::string>());
  }
}

// transformers' clean_up_tokenization (when tokenizer_config asks for it).
std::string clean_up_tokenization(std::string s) {
  static const std::pair<const char*, const char*> kRules[] = {
      {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
      {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (auto [from, to] : kRules) {
    std::string out;
    std::string_view f(from);
    size_t pos = 0;
    for (size_t hit; (hit = s.find(f, pos)) != std::string::npos; pos = hit + f.size()) out.append(s, pos, hit - pos).append(to);
    out.append(s, pos);
    s = std::move(out);
  }
  return s;
}

}  // namespace

struct Tokenizer::Impl {
  std::string source;
  std::unique_ptr<BpeModel> model;
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<Decoder> decoder;
  PostTemplate post;

  std::vector<AddedToken> added;                       // in file order
  std::unordered_map<int32_t, size_t> added_by_id;     // id -> index in `added`
  std::unordered_map<std::string, int32_t> added_by_content;
  TokenTrie raw_trie;         // normalized=false tokens, matched on the raw input
  TokenTrie normalized_trie;  // normalized=true tokens (their content normalized too), matched after normalizing

  TokenizerKind kind = TokenizerKind::SentencePieceBPE;
  std::string pre_name = "default";
  int32_t vocab_size = 0;
  std::optional<int32_t> bos, eos, unk, pad, model_unk;
  bool clean_up_spaces = false;
  std::string chat_template;

  std::optional<int32_t> find_id(std::string_view token) const {
    if (auto it = added_by_content.find(std::string(token)); it != added_by_content.end()) return it->second;
    return model->token_id(token);
  }

  // AddedVocabulary::find_matches: cuts `text` at the trie's tokens, honouring single_word/lstrip/rstrip.
  void split_added(const Segment& seg, const TokenTrie& trie, std::vector<Segment>& out) const {
    const std::string& text = seg.text;
    if (trie.empty()) {
      out.push_back(seg);
      return;
    }
    size_t start_offset = 0, search = 0;
    while (true) {
      auto [mb, me, index] = trie.find(text, search);
      if (index < 0) break;
      search = me;  // the underlying iterator resumes after the raw match, whatever stripping did
      const AddedToken& tok = added[size_t(index)];
      size_t start = mb, stop = me;
      if (tok.single_word) {
        bool start_space = start == 0 || !is_word_char(last_code_point(std::string_view(text).substr(0, start)));
        size_t p = stop;
        bool stop_space = stop == text.size() || !is_word_char(unicode::next_code_point(text, p));
        if (!start_space || !stop_space) continue;
      }
      if (tok.lstrip) {
        size_t s = start;
        while (s > 0) {
          size_t prev = s - 1;
          while (prev > 0 && (static_cast<unsigned char>(text[prev]) & 0xC0) == 0x80) --prev;
          size_t q = prev;
          if (!unicode::is_whitespace(unicode::next_code_point(text, q))) break;
          s = prev;
        }
        start = std::max(s, start_offset);
      }
      if (tok.rstrip) {
        while (stop < text.size()) {
          size_t q = stop;
          if (!unicode::is_whitespace(unicode::next_code_point(text, q))) break;
          stop = q;
        }
      }
      if (start > start_offset)
        out.push_back({text.substr(start_offset, start - start_offset), -1, seg.at_start && start_offset == 0});
      out.push_back({std::string(), tok.id, false});
      start_offset = std::max(start_offset, stop);
    }
    if (start_offset < text.size())
      out.push_back({text.substr(start_offset), -1, seg.at_start && start_offset == 0});
  }

  std::vector<int32_t> encode(std::string_view text, bool add_special) const {
    std::vector<int32_t> ids;
    if (!text.empty()) {
      std::vector<Segment> raw;
      split_added(Segment{std::string(text), -1, true}, raw_trie, raw);
      std::vector<Segment> segments;
      for (auto& seg : raw) {
        if (seg.id >= 0) {
          segments.push_back(std::move(seg));
          continue;
        }
        if (normalizer) seg.text = normalizer->normalize(std::move(seg.text));
        if (seg.text.empty()) continue;
        split_added(seg, normalized_trie, segments);
      }
      std::vector<PreToken> pieces;
      for (auto& seg : segments) {
        if (seg.id >= 0) {
          ids.push_back(seg.id);
          continue;
        }
        pieces.clear();
        pieces.push_back(PreToken{std::move(seg.text), seg.at_start});
        if (pre_tokenizer) pre_tokenizer->pre_tokenize(pieces);
        for (const auto& piece : pieces) model->tokenize(piece.text, ids);
      }
    }
    return add_special ? post.apply(ids) : ids;
  }
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

Tokenizer Tokenizer::from_dir(const std::filesystem::path& dir) {
  std::filesystem::path tok_path = dir / "tokenizer.json";
  std::error_code ec;
  if (!std::filesystem::exists(tok_path, ec))
    fail("{}: not found (only tokenizer.json tokenizers are supported)", tok_path.string());
  std::string tok = read_file(tok_path);
  std::filesystem::path cfg_path = dir / "tokenizer_config.json";
  std::string cfg = std::filesystem::exists(cfg_path, ec) ? read_file(cfg_path) : std::string();
  return from_json(tok, cfg, tok_path.string());
}

Tokenizer Tokenizer::from_json(std::string_view tokenizer_json, std::string_view tokenizer_config_json,
                               const std::string& source_name) {
  auto impl = std::make_unique<Impl>();
  Impl& t = *impl;
  t.source = source_name;
  const std::string& src = source_name;
  json root;
  try {
    root = json::parse(tokenizer_json);
  } catch (const json::exception& e) {
    fail("{}: malformed JSON: {}", src, e.what());
  }
  json config = json::object();
  // tokenizer_config.json is named after the tokenizer file's folder for messages.
  std::string cfg_src = std::filesystem::path(src).has_parent_path()
                            ? (std::filesystem::path(src).parent_path() / "tokenizer_config.json").string()
                            : "tokenizer_config.json";
  if (!tokenizer_config_json.empty()) {
    try {
      config = json::parse(tokenizer_config_json);
    } catch (const json::exception& e) {
      fail("{}: malformed JSON: {}", cfg_src, e.what());
    }
    if (!config.is_object()) fail("{}: must be a JSON object", cfg_src);
  }

  try {
    if (!root.is_object()) fail("{}: must be a JSON object", src);
    auto model_it = root.find("model");
    if (model_it == root.end() || !model_it->is_object()) fail("{}: \"model\" is missing or not an object", src);
    const json& model = *model_it;
    std::string type = model.contains("type") && model["type"].is_string() ? model["type"].get<std::string>()
                       : model.contains("merges")                          ? "BPE"
                                                                           : "(none)";
    if (type != "BPE") fail("{}: unsupported model type '{}' (only BPE is supported)", src, type);
    t.model = std::make_unique<BpeModel>(model, src);

    auto get = [&](const char* key) -> const json& {
      static const json null_value;
      auto it = root.find(key);
      return it == root.end() ? null_value : *it;
    };
    t.normalizer = make_normalizer(get("normalizer"), src);
    t.pre_tokenizer = make_pre_tokenizer(get("pre_tokenizer"), src);
    t.decoder = make_decoder(get("decoder"), src);
    t.post = make_post_template(get("post_processor"), src);

    // Added tokens.
    int64_t id_limit = t.model->id_limit();
    const json& added = get("added_tokens");
    if (!added.is_null() && !added.is_array()) fail("{}: \"added_tokens\" must be an array", src);
    if (added.is_array()) {
      for (const auto& a : added) {
        if (!a.is_object()) fail("{}: added_tokens entries must be objects", src);
        AddedToken tok;
        auto id = a.find("id");
        auto content = a.find("content");
        if (id == a.end() || !id->is_number_integer() || id->get<int64_t>() < 0 ||
            id->get<int64_t>() >= int64_t(t.model->id_limit()) + int64_t(added.size()) + 65536)
          fail("{}: added token {} has a missing or invalid id", src, content != a.end() ? content->dump() : "?");
        if (content == a.end() || !content->is_string() || content->get_ref<const std::string&>().empty())
          fail("{}: added token {} has a missing or empty content", src, id->get<int64_t>());
        tok.id = int32_t(id->get<int64_t>());
        tok.content = content->get<std::string>();
        auto flag = [&](const char* key, bool fallback) {
          auto it = a.find(key);
          if (it == a.end() || it->is_null()) return fallback;
          if (!it->is_boolean()) fail("{}: added token '{}': \"{}\" must be true or false", src, tok.content, key);
          return it->get<bool>();
        };
        tok.special = flag("special", false);
        tok.single_word = flag("single_word", false);
        tok.lstrip = flag("lstrip", false);
        tok.rstrip = flag("rstrip", false);
        tok.normalized = flag("normalized", !tok.special);
        t.added_by_id[tok.id] = t.added.size();
        t.added_by_content[tok.content] = tok.id;
        id_limit = std::max<int64_t>(id_limit, int64_t(tok.id) + 1);
        t.added.push_back(std::move(tok));
      }
    }
    for (size_t i = 0; i < t.added.size(); ++i) {
      const AddedToken& tok = t.added[i];
      if (!tok.normalized) {
        t.raw_trie.insert(tok.content, int32_t(i));
      } else {
        // Normalized tokens are looked for in normalized text, so their own text is normalized first.
        t.normalized_trie.insert(t.normalizer ? t.normalizer->normalize(tok.content) : tok.content, int32_t(i));
      }
    }
    t.vocab_size = int32_t(id_limit);

    // Kind and GGUF pre-tokenizer name.
    std::vector<std::string> split_regexes;
    bool byte_level = false, byte_level_regex = false;
    scan_pre_tokenizer(get("pre_tokenizer"), split_regexes, byte_level, byte_level_regex);
    const json& dec = get("decoder");
    if (byte_level || (dec.is_object() && dec.value("type", "") == "ByteLevel")) t.kind = TokenizerKind::ByteLevelBPE;
    if (byte_level_regex) t.pre_name = "gpt-2";
    for (const auto& r : split_regexes) {
      if (r == kQwen2Pattern) t.pre_name = "qwen2";
      else if (r == kLlama3Pattern) t.pre_name = "llama-bpe";
    }

    // Special ids: tokenizer_config.json names them; the post-processor and model fill gaps.
    if (auto unk = t.model->unk_token()) t.model_unk = t.model->token_id(*unk);
    auto lookup = [&](const char* key) -> std::optional<int32_t> {
      auto name = config_token(config, key, cfg_src);
      if (!name) return std::nullopt;
      auto id = t.find_id(*name);
      if (!id) fail("{}: {} '{}' is not in the vocabulary", cfg_src, key, *name);
      return id;
    };
    t.bos = lookup("bos_token");
    t.eos = lookup("eos_token");
    t.pad = lookup("pad_token");
    t.unk = lookup("unk_token");
    if (!t.unk) t.unk = t.model_unk;

    // transformers' Llama/Gemma tokenizers rebuild the template from add_bos_token/add_eos_token rather than
    // trusting tokenizer.json's post-processor; reproduce that so add_special matches tokenizer(text).
    std::string tokenizer_class = config.value("tokenizer_class", "");
    static const char* kTemplateFromFlags[] = {"LlamaTokenizer", "LlamaTokenizerFast", "CodeLlamaTokenizer",
                                               "CodeLlamaTokenizerFast", "GemmaTokenizer", "GemmaTokenizerFast"};
    if (std::find(std::begin(kTemplateFromFlags), std::end(kTemplateFromFlags), tokenizer_class) !=
        std::end(kTemplateFromFlags)) {
      bool add_bos = config_bool(config, "add_bos_token", true);
      bool add_eos = config_bool(config, "add_eos_token", false);
      if (add_bos && !t.bos) fail("{}: add_bos_token is set but bos_token is missing", cfg_src);
      if (add_eos && !t.eos) fail("{}: add_eos_token is set but eos_token is missing", cfg_src);
      PostTemplate rebuilt;
      if (add_bos) rebuilt.single.push_back({false, {*t.bos}, {}});
      rebuilt.single.push_back({true, {}, {}});
      if (add_eos) rebuilt.single.push_back({false, {*t.eos}, {}});
      t.post = std::move(rebuilt);
    }
    if (!t.bos && !t.post.single.empty() && !t.post.single.front().is_sequence && !t.post.single.front().ids.empty())
      t.bos = t.post.single.front().ids.front();
    if (!t.eos && t.post.single.size() > 1 && !t.post.single.back().is_sequence && !t.post.single.back().ids.empty())
      t.eos = t.post.single.back().ids.front();
    for (const auto& item : t.post.single)
      for (int32_t id : item.ids)
        if (id >= t.vocab_size) fail("{}: post_processor uses token id {} beyond the vocabulary", src, id);

    t.clean_up_spaces = config_bool(config, "clean_up_tokenization_spaces", false);
    if (auto ct = config.find("chat_template"); ct != config.end()) {
      if (ct->is_string()) {
        t.chat_template = ct->get<std::string>();
      } else if (ct->is_array()) {
        // Named templates: the "default" one, else the first.
        for (const auto& entry : *ct) {
          if (!entry.is_object() || !entry.contains("template") || !entry["template"].is_string()) continue;
          if (t.chat_template.empty() || entry.value("name", "") == "default")
            t.chat_template = entry["template"].get<std::string>();
        }
      }
    }
  } catch (const json::exception& e) {
    fail("{}: unexpected structure: {}", src, e.what());
  }
  return Tokenizer(std::move(impl));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special) const {
  return impl_->encode(text, add_special);
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (auto it = impl_->added_by_id.find(id); it != impl_->added_by_id.end()) {
      const AddedToken& tok = impl_->added[it->second];
      if (skip_special && tok.special) continue;
      tokens.push_back(tok.content);
    } else if (const std::string* s = impl_->model->token(id)) {
      // A vocabulary string equal to a special added token's content is skipped too (tokenizers checks by text).
      if (skip_special) {
        auto a = impl_->added_by_content.find(*s);
        if (a != impl_->added_by_content.end() && impl_->added[impl_->added_by_id.at(a->second)].special) continue;
      }
      tokens.push_back(*s);
    }
    // Ids that name no token are dropped, as tokenizers does.
  }
  std::string text;
  if (impl_->decoder) {
    for (auto& piece : impl_->decoder->decode_chain(std::move(tokens))) text += piece;
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) text += (i ? " " : "") + tokens[i];
  }
  return impl_->clean_up_spaces ? clean_up_tokenization(std::move(text)) : text;
}

std::string Tokenizer::token_to_piece(int32_t id) const {
  if (auto it = impl_->added_by_id.find(id); it != impl_->added_by_id.end()) return impl_->added[it->second].content;
  const std::string* s = impl_->model->token(id);
  if (!s) return {};
  if (impl_->kind == TokenizerKind::ByteLevelBPE) {
    std::string bytes;
    for (size_t pos = 0; pos < s->size();) {
      int b = unicode::char_to_byte(unicode::next_code_point(*s, pos));
      if (b < 0) return *s;
      bytes.push_back(char(b));
    }
    return bytes;
  }
  if (token_type(id) == TokenType::Byte) {
    int hi = std::stoi(s->substr(3, 2), nullptr, 16);
    return std::string(1, char(hi));
  }
  std::string out;
  std::string_view view(*s);
  static const std::string kSpaceMark = "\u2581";
  for (size_t pos = 0; pos < view.size();) {
    if (view.substr(pos, kSpaceMark.size()) == kSpaceMark) {
      out.push_back(' ');
      pos += kSpaceMark.size();
    } else {
      out.push_back(view[pos++]);
    }
  }
  return out;
}

TokenizerKind Tokenizer::kind() const { return impl_->kind; }
int32_t Tokenizer::vocab_size() const { return impl_->vocab_size; }

const std::string& Tokenizer::token(int32_t id) const {
  static const std::string kNone;
  if (id < 0 || id >= impl_->vocab_size) fail("{}: token id {} is outside the vocabulary [0, {})", impl_->source, id, impl_->vocab_size);
  if (auto it = impl_->added_by_id.find(id); it != impl_->added_by_id.end()) return impl_->added[it->second].content;
  const std::string* s = impl_->model->token(id);
  return s ? *s : kNone;
}

std::optional<int32_t> Tokenizer::token_id(std::string_view token) const { return impl_->find_id(token); }

float Tokenizer::score(int32_t id) const {
  // Merge results score -rank (earlier merges win in a score-driven BPE such as llama.cpp's SPM);
  // single characters, bytes and specials 0; multi-character tokens no merge produces rank last.
  if (impl_->added_by_id.count(id)) return 0.0f;
  int32_t rank = impl_->model->producing_merge_rank(id);
  if (rank >= 0) return -float(rank);
  const std::string* s = impl_->model->token(id);
  if (!s || unicode::count_code_points(*s) <= 1 || token_type(id) == TokenType::Byte) return 0.0f;
  return -float(impl_->model->merges().size());
}

TokenType Tokenizer::token_type(int32_t id) const {
  if (impl_->model_unk && id == *impl_->model_unk) return TokenType::Unknown;
  if (auto it = impl_->added_by_id.find(id); it != impl_->added_by_id.end())
    return impl_->added[it->second].special ? TokenType::Control : TokenType::UserDefined;
  const std::string* s = impl_->model->token(id);
  if (!s) return TokenType::Unused;
  if (s->size() == 6 && s->compare(0, 3, "<0x") == 0 && (*s)[5] == '>' && std::isxdigit((unsigned char)(*s)[3]) &&
      std::isxdigit((unsigned char)(*s)[4]))
    return TokenType::Byte;
  return TokenType::Normal;
}

const std::vector<std::string>& Tokenizer::merges() const { return impl_->model->merges(); }
std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos; }
std::optional<int32_t> Tokenizer::eos_id() const { return impl_->eos; }
std::optional<int32_t> Tokenizer::unk_id() const { return impl_->unk; }
std::optional<int32_t> Tokenizer::pad_id() const { return impl_->pad; }

bool Tokenizer::adds_bos() const {
  const auto& s = impl_->post.single;
  return !s.empty() && !s.front().is_sequence;
}

bool Tokenizer::adds_eos() const {
  const auto& s = impl_->post.single;
  return s.size() > 1 && !s.back().is_sequence;
}

std::string Tokenizer::pre_tokenizer_name() const { return impl_->pre_name; }
const std::string& Tokenizer::chat_template() const { return impl_->chat_template; }

void copy_tokenizer_files(const std::filesystem::path& from, const std::filesystem::path& to,
                          const std::filesystem::path& named) {
  std::error_code ec;
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json",
                        "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja", "generation_config.json"}) {
    if (!std::filesystem::exists(from / f, ec)) continue;
    std::filesystem::copy_file(from / f, to / f, std::filesystem::copy_options::overwrite_existing, ec);
    // A copy of a read-only source (a shared models folder) would stay read-only: make it ours.
    if (!ec) std::filesystem::permissions(to / f, std::filesystem::perms::owner_write, std::filesystem::perm_options::add, ec);
    if (ec) fail("{}: cannot copy {}: {}", named.string(), f, ec.message());
  }
}

}  // namespace quantllm
