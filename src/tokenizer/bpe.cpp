// BPE model (see bpe.h). The merge loop is the one of `tokenizers`' Word::merge_all: a min-heap of
// candidate pairs ordered by (merge rank, position), entries re-validated when popped, so the result is
// "always apply the lowest-ranked pair, leftmost first" in O(n log n).
#include "tokenizer/bpe.h"

#include <nlohmann/json.hpp>

#include <queue>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace quantllm {
namespace {

using json = nlohmann::json;

// Entries beyond this many words are not cached: bounds memory on huge inputs of unique words.
constexpr size_t kMaxCacheEntries = 200000;
// Longer words are not cached (tokenizers does the same); they are rare and each costs memory.
constexpr size_t kMaxCachedWordBytes = 256;

std::optional<std::string> optional_string(const json& obj, const char* key, const std::string& source) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) fail("{}: model.{} must be a string or null", source, key);
  return it->get<std::string>();
}

bool optional_bool(const json& obj, const char* key, bool fallback, const std::string& source) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) fail("{}: model.{} must be true or false", source, key);
  return it->get<bool>();
}

}  // namespace

BpeModel::BpeModel(const json& model, const std::string& source) : source_(source) {
  if (!model.is_object()) fail("{}: \"model\" must be an object", source);
  auto vocab_it = model.find("vocab");
  if (vocab_it == model.end() || !vocab_it->is_object()) fail("{}: model.vocab is missing or not an object", source);
  auto dropout = model.find("dropout");
  if (dropout != model.end() && !dropout->is_null()) {
    if (!dropout->is_number()) fail("{}: model.dropout must be a number or null", source);
    if (dropout->get<double>() != 0.0) fail("{}: BPE dropout is not supported (it makes encoding random)", source);
  }
  unk_token_ = optional_string(model, "unk_token", source);
  continuing_subword_prefix_ = optional_string(model, "continuing_subword_prefix", source).value_or("");
  end_of_word_suffix_ = optional_string(model, "end_of_word_suffix", source).value_or("");
  fuse_unk_ = optional_bool(model, "fuse_unk", false, source);
  byte_fallback_ = optional_bool(model, "byte_fallback", false, source);
  ignore_merges_ = optional_bool(model, "ignore_merges", false, source);

  int64_t max_id = -1;
  vocab_.reserve(vocab_it->size());
  for (const auto& [token, id] : vocab_it->items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
      fail("{}: model.vocab['{}'] is not a valid token id", source, token);
    int64_t v = id.get<int64_t>();
    // Vocabularies are dense; a far-away id is a corrupt file, and honouring it would allocate gigabytes.
    if (v >= int64_t(vocab_it->size()) * 2 + 65536)
      fail("{}: model.vocab['{}'] has id {}, far beyond the vocabulary size {}", source, token, v, vocab_it->size());
    vocab_[token] = int32_t(v);
    max_id = std::max(max_id, v);
  }
  id_to_token_.assign(size_t(max_id + 1), std::string());
  id_present_.assign(size_t(max_id + 1), false);
  for (const auto& [token, id] : vocab_) {
    id_to_token_[id] = token;
    id_present_[id] = true;
  }
  for (int b = 0; b < 256; ++b) {
    auto it = vocab_.find(fmt::format("<0x{:02X}>", b));
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }

  for (const auto& [token, id] : vocab_) {
    size_t pos = 0;
    char32_t prev = unicode::next_code_point(token, pos);
    if (pos == token.size()) single_chars_.insert(prev);
    while (pos < token.size()) {
      char32_t cp = unicode::next_code_point(token, pos);
      inner_pairs_.insert((uint64_t(prev) << 32) | cp);
      prev = cp;
    }
  }

  auto merges_it = model.find("merges");
  producing_rank_.assign(id_to_token_.size(), -1);
  if (merges_it == model.end() || merges_it->is_null()) return;
  if (!merges_it->is_array()) fail("{}: model.merges must be an array", source);
  merges_.reserve(merges_it->size());
  merge_map_.reserve(merges_it->size() * 2);
  int32_t rank = 0;
  for (const auto& entry : *merges_it) {
    std::string a, b;
    if (entry.is_string()) {
      // "a b": exactly one space, as tokenizers requires; "#version" header lines of merges.txt are skipped.
      const std::string& line = entry.get_ref<const std::string&>();
      if (line.rfind("#version", 0) == 0) continue;
      size_t space = line.find(' ');
      if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos)
        fail("{}: merge {} ('{}') is not of the form \"a b\"", source, rank + 1, line);
      a = line.substr(0, space);
      b = line.substr(space + 1);
    } else if (entry.is_array() && entry.size() == 2 && entry[0].is_string() && entry[1].is_string()) {
      a = entry[0].get<std::string>();
      b = entry[1].get<std::string>();
    } else {
      fail("{}: merge {} is neither \"a b\" nor [\"a\", \"b\"]", source, rank + 1);
    }
    auto ia = vocab_.find(a);
    if (ia == vocab_.end()) fail("{}: merge {} ('{} {}') names token '{}' that is not in the vocabulary", source, rank + 1, a, b, a);
    auto ib = vocab_.find(b);
    if (ib == vocab_.end()) fail("{}: merge {} ('{} {}') names token '{}' that is not in the vocabulary", source, rank + 1, a, b, b);
    size_t prefix_len = continuing_subword_prefix_.size();
    if (b.size() < prefix_len)
      fail("{}: merge {} ('{} {}'): '{}' is shorter than the continuing-subword prefix", source, rank + 1, a, b, b);
    std::string merged = a + b.substr(prefix_len);
    auto im = vocab_.find(merged);
    if (im == vocab_.end())
      fail("{}: merge {} ('{} {}') produces '{}', which is not in the vocabulary", source, rank + 1, a, b, merged);
    // A repeated pair takes the later rank, as building a HashMap from the merge list does in tokenizers.
    merge_map_[pair_key(ia->second, ib->second)] = MergeTarget{rank, im->second};
    if (producing_rank_[im->second] < 0) producing_rank_[im->second] = rank;
    merges_.push_back(a + " " + b);
    ++rank;
  }
}

BpeModel::BpeModel(BpeModel&& o) noexcept
    : source_(std::move(o.source_)),
      vocab_(std::move(o.vocab_)),
      id_to_token_(std::move(o.id_to_token_)),
      id_present_(std::move(o.id_present_)),
      merges_(std::move(o.merges_)),
      producing_rank_(std::move(o.producing_rank_)),
      merge_map_(std::move(o.merge_map_)),
      inner_pairs_(std::move(o.inner_pairs_)),
      single_chars_(std::move(o.single_chars_)),
      unk_token_(std::move(o.unk_token_)),
      continuing_subword_prefix_(std::move(o.continuing_subword_prefix_)),
      end_of_word_suffix_(std::move(o.end_of_word_suffix_)),
      fuse_unk_(o.fuse_unk_),
      byte_fallback_(o.byte_fallback_),
      ignore_merges_(o.ignore_merges_),
      cache_(std::move(o.cache_)) {
  std::copy(std::begin(o.byte_ids_), std::end(o.byte_ids_), std::begin(byte_ids_));
}

std::optional<int32_t> BpeModel::token_id(std::string_view token) const {
  auto it = vocab_.find(std::string(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::token(int32_t id) const {
  if (id < 0 || size_t(id) >= id_to_token_.size() || !id_present_[id]) return nullptr;
  return &id_to_token_[id];
}

int32_t BpeModel::producing_merge_rank(int32_t id) const {
  if (id < 0 || size_t(id) >= producing_rank_.size()) return -1;
  return producing_rank_[id];
}

int32_t BpeModel::unk_id_or_fail() const {
  auto it = vocab_.find(*unk_token_);
  if (it == vocab_.end()) fail("{}: unk_token '{}' is not in the vocabulary", source_, *unk_token_);
  return it->second;
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    // Llama 3: a pre-token that is itself a vocabulary entry is taken whole, merges notwithstanding.
    auto it = vocab_.find(std::string(word));
    if (it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  if (word.size() <= kMaxCachedWordBytes || !continuing_subword_prefix_.empty() || !end_of_word_suffix_.empty()) {
    merge_cached(word, out);
    return;
  }
  // A long word (the whole text, in the SentencePiece layout without pre-tokenizer) is cut where no merge
  // can reach across, and the chunks are merged separately: the same result, but chunks repeat and hit
  // the cache, and the merge heap stays small.
  size_t chunk_start = 0, pos = 0;
  char32_t prev = unicode::next_code_point(word, pos);
  while (pos < word.size()) {
    size_t boundary = pos;
    char32_t cp = unicode::next_code_point(word, pos);
    if (is_hard_boundary(prev, cp)) {
      merge_cached(word.substr(chunk_start, boundary - chunk_start), out);
      chunk_start = boundary;
    }
    prev = cp;
  }
  merge_cached(word.substr(chunk_start), out);
}

bool BpeModel::is_hard_boundary(char32_t a, char32_t b) const {
  // Exact: a merge joining the two sides would produce a token containing "ab". Characters that are not
  // tokens themselves become byte-fallback or unk symbols, whose merges the pair test does not capture.
  return !inner_pairs_.count((uint64_t(a) << 32) | b) && single_chars_.count(a) && single_chars_.count(b);
}

void BpeModel::merge_cached(std::string_view word, std::vector<int32_t>& out) const {
  bool cacheable = word.size() <= kMaxCachedWordBytes;
  std::string key;
  if (cacheable) {
    key.assign(word);
    std::lock_guard lock(cache_mutex_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  size_t before = out.size();
  merge_word(word, out);
  if (cacheable) {
    std::lock_guard lock(cache_mutex_);
    if (cache_.size() < kMaxCacheEntries) cache_.emplace(std::move(key), std::vector<int32_t>(out.begin() + before, out.end()));
  }
}

void BpeModel::merge_word(std::string_view w, std::vector<int32_t>& out) const {
  // Initial symbols: one per character (with prefix/suffix decoration), byte-fallback tokens, or unk.
  std::vector<int32_t> ids;
  ids.reserve(w.size());
  int32_t pending_unk = -1;  // unk (run, when fused) not yet emitted
  std::string piece;
  for (size_t pos = 0; pos < w.size();) {
    size_t start = pos;
    unicode::next_code_point(w, pos);
    piece.assign(w.substr(start, pos - start));
    if (start != 0 && !continuing_subword_prefix_.empty()) piece = continuing_subword_prefix_ + piece;
    if (pos == w.size() && !end_of_word_suffix_.empty()) piece += end_of_word_suffix_;
    auto it = vocab_.find(piece);
    if (it != vocab_.end()) {
      if (pending_unk >= 0) {
        ids.push_back(pending_unk);
        pending_unk = -1;
      }
      ids.push_back(it->second);
      continue;
    }
    if (byte_fallback_) {
      bool all_present = true;
      for (unsigned char c : piece) all_present = all_present && byte_ids_[c] >= 0;
      if (all_present) {
        // As in tokenizers, a pending unk is not flushed here; it is emitted after these bytes.
        for (unsigned char c : piece) ids.push_back(byte_ids_[c]);
        continue;
      }
    }
    if (unk_token_) {
      int32_t unk = unk_id_or_fail();
      if (pending_unk >= 0 && !fuse_unk_) ids.push_back(pending_unk);
      pending_unk = unk;
    }
    // Without an unk token the character is dropped, as tokenizers does.
  }
  if (pending_unk >= 0) ids.push_back(pending_unk);

  // Merge loop over a doubly linked list of symbols.
  struct Symbol {
    int32_t id;
    int32_t prev, next;
    bool alive;
  };
  std::vector<Symbol> sym(ids.size());
  for (size_t i = 0; i < ids.size(); ++i)
    sym[i] = Symbol{ids[i], int32_t(i) - 1, i + 1 < ids.size() ? int32_t(i + 1) : -1, true};
  struct Candidate {
    int32_t rank, pos, new_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto push_pair = [&](int32_t left) {
    int32_t right = sym[left].next;
    if (right < 0) return;
    auto it = merge_map_.find(pair_key(sym[left].id, sym[right].id));
    if (it != merge_map_.end()) queue.push(Candidate{it->second.rank, left, it->second.new_id});
  };
  for (size_t i = 0; i + 1 < sym.size(); ++i) push_pair(int32_t(i));
  while (!queue.empty()) {
    Candidate top = queue.top();
    queue.pop();
    Symbol& left = sym[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = sym[left.next];
    // Stale entry: the pair at this position changed since it was queued.
    auto it = merge_map_.find(pair_key(left.id, right.id));
    if (it == merge_map_.end() || it->second.new_id != top.new_id) continue;
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) sym[right.next].prev = top.pos;
    if (left.prev >= 0) push_pair(left.prev);
    push_pair(top.pos);
  }
  for (const Symbol& s : sym)
    if (s.alive) out.push_back(s.id);
}

}  // namespace quantllm
