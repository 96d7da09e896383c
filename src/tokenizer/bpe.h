// The BPE model of a tokenizer.json ("model": {"type": "BPE", ...}): vocabulary, ranked merges and the
// word -> ids algorithm of the `tokenizers` library (byte fallback, unk fusing, ignore_merges,
// continuing-subword prefix / end-of-word suffix). Words are the pre-tokens the pipeline hands over;
// their results are cached because real text repeats the same words over and over.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace quantllm {

class BpeModel {
 public:
  // Parses the "model" object. `source` names the file in error messages.
  BpeModel(const nlohmann::json& model, const std::string& source);
  BpeModel(BpeModel&& other) noexcept;

  // Appends the ids of one pre-token.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_id(std::string_view token) const;
  // Largest vocabulary id + 1.
  int32_t id_limit() const { return int32_t(id_to_token_.size()); }
  // The vocabulary string of id, or nullptr when the vocabulary has no such id.
  const std::string* token(int32_t id) const;
  const std::vector<std::string>& merges() const { return merges_; }
  // Rank of the first merge that produces token id, or -1 when no merge does.
  int32_t producing_merge_rank(int32_t id) const;
  const std::optional<std::string>& unk_token() const { return unk_token_; }
  bool byte_fallback() const { return byte_fallback_; }

 private:
  struct MergeTarget {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  void merge_word(std::string_view word, std::vector<int32_t>& out) const;
  // merge_word through the cache.
  void merge_cached(std::string_view word, std::vector<int32_t>& out) const;
  // True when no merge can ever join the symbols on either side of the boundary between a and b.
  bool is_hard_boundary(char32_t a, char32_t b) const;
  int32_t unk_id_or_fail() const;

  std::string source_;
  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> id_present_;
  std::vector<std::string> merges_;
  std::vector<int32_t> producing_rank_;
  std::unordered_map<uint64_t, MergeTarget> merge_map_;
  // Adjacent code-point pairs occurring inside some vocabulary token, and the code points that are tokens
  // by themselves: what is_hard_boundary needs.
  std::unordered_set<uint64_t> inner_pairs_;
  std::unordered_set<char32_t> single_chars_;
  int32_t byte_ids_[256];  // <0xNN> token ids, -1 where absent
  std::optional<std::string> unk_token_;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;

  // Word -> ids cache. encode() is const and may run on several threads, hence the mutex.
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace quantllm
