// Golden tests of the tokenizer against the reference models' reference.json (ids computed with the
// Hugging Face tokenizers library): the awkward-string goldens, whole-file token counts, the golden prompt,
// decode round trips, and the metadata GGUF export reads (special ids, token types, merges).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <regex>
#include <fstream>
#include <sstream>

#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace quantllm {
namespace {

using json = nlohmann::json;

const std::filesystem::path kShared = QUANTLLM_SHARED_DIR;

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  EXPECT_TRUE(in) << p;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct ModelCase {
  const char* name;
};

class ReferenceTokenizer : public ::testing::TestWithParam<const char*> {
 protected:
  std::filesystem::path dir() const { return kShared / "models" / GetParam(); }
  json reference() const { return json::parse(slurp(dir() / "reference.json")); }
  // Loading parses ~1 MB of JSON; share one instance per model across the tests.
  const Tokenizer& tokenizer() const {
    static std::map<std::string, Tokenizer> cache;
    auto it = cache.find(GetParam());
    if (it == cache.end()) it = cache.emplace(GetParam(), Tokenizer::from_dir(dir())).first;
    return it->second;
  }
};

std::vector<int32_t> ids_of(const json& j) { return j.get<std::vector<int32_t>>(); }

TEST_P(ReferenceTokenizer, GoldenIds) {
  const json ref = reference();
  const Tokenizer& tok = tokenizer();
  ASSERT_FALSE(ref["tokenizer_golden"].empty());
  for (const auto& g : ref["tokenizer_golden"]) {
    std::string text = g["text"];
    EXPECT_EQ(tok.encode(text, false), ids_of(g["ids"])) << "text: " << text;
    EXPECT_EQ(tok.encode(text, true), ids_of(g["ids_with_special"])) << "text: " << text;
  }
}

// decode(encode(text)) gives the text back for both pipelines here: byte-level BPE is lossless, and the
// SentencePiece layout's decoder strips exactly the one "▁" the Prepend normalizer added (a leading space
// of the input survives because the input then starts with two of them).
TEST_P(ReferenceTokenizer, DecodeRoundTrip) {
  const json ref = reference();
  const Tokenizer& tok = tokenizer();
  for (const auto& g : ref["tokenizer_golden"]) {
    std::string text = g["text"];
    EXPECT_EQ(tok.decode(ids_of(g["ids"])), text);
    // With BOS in front: kept as its text unless skipped; special tokens in the text itself (Qwen's ChatML
    // markers "<|im_start|>" …) are skipped too, as transformers' decode(skip_special_tokens=True) does.
    std::string without_specials;
    const std::regex marker(R"(<\|[a-z_]+\|>)");
    size_t last = 0;
    for (auto it = std::sregex_iterator(text.begin(), text.end(), marker); it != std::sregex_iterator(); ++it) {
      const auto id = tok.token_id(it->str());
      const bool special = id && tok.token_type(*id) == TokenType::Control;
      without_specials += text.substr(last, size_t(it->position()) - last) + (special ? "" : it->str());
      last = size_t(it->position() + it->length());
    }
    without_specials += text.substr(last);
    EXPECT_EQ(tok.decode(ids_of(g["ids_with_special"]), /*skip_special=*/true), without_specials);
  }
}

TEST_P(ReferenceTokenizer, WholeFileTokenCounts) {
  const json ref = reference();
  const Tokenizer& tok = tokenizer();
  struct File {
    const char* file;
    const char* key;
  };
  for (File f : {File{"wikitext2-test.raw", "wikitext2_test"}, File{"gutenberg-heldout.txt", "gutenberg_heldout"}}) {
    std::string text = slurp(kShared / "data" / f.file);
    auto t0 = std::chrono::steady_clock::now();
    auto ids = tok.encode(text, false);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(int64_t(ids.size()), ref["fp32"][f.key]["tokens"].get<int64_t>()) << f.file;
    std::printf("[ %s ] %s: %zu tokens in %.3f s\n", GetParam(), f.file, ids.size(), seconds);
  }
}

// The first 3000 characters (code points, as Python's text[:3000]) with special tokens, cut to 256 ids.
TEST_P(ReferenceTokenizer, GoldenPrompt) {
  const json ref = reference();
  const json& prompt = ref["golden_prompt"];
  std::string text = slurp(kShared / "data" / "gutenberg-heldout.txt");
  size_t chars = prompt["text_chars"].get<size_t>(), pos = 0;
  for (size_t n = 0; n < chars && pos < text.size(); ++n) unicode::next_code_point(text, pos);
  auto ids = tokenizer().encode(text.substr(0, pos), true);
  auto expected = ids_of(prompt["ids"]);
  ASSERT_GE(ids.size(), expected.size());
  ids.resize(expected.size());
  EXPECT_EQ(ids, expected);
}

TEST_P(ReferenceTokenizer, Metadata) {
  const Tokenizer& tok = tokenizer();
  if (std::string(GetParam()) == "gutenberg-qwen3moe-21m") {  // Qwen: byte-level BPE, no BOS, ChatML specials
    EXPECT_EQ(tok.kind(), TokenizerKind::ByteLevelBPE);
    EXPECT_FALSE(tok.adds_bos());
    EXPECT_FALSE(tok.adds_eos());
    EXPECT_EQ(tok.token_id("<|endoftext|>"), 0);
    EXPECT_EQ(tok.eos_id(), 10001);  // tokenizer_config: eos_token <|im_end|>
    EXPECT_EQ(tok.pad_id(), 0);
    ASSERT_TRUE(tok.token_id("<|im_start|>") && tok.token_id("<|im_end|>"));
    EXPECT_EQ(tok.token_type(*tok.token_id("<|im_start|>")), TokenType::Control);
    EXPECT_NE(tok.chat_template().find("<|im_start|>"), std::string::npos);  // ChatML
    for (int32_t id = 0; id < tok.vocab_size(); ++id) EXPECT_EQ(tok.token_id(tok.token(id)), id);
    return;
  }
  EXPECT_TRUE(tok.adds_bos());
  EXPECT_FALSE(tok.adds_eos());
  ASSERT_TRUE(tok.bos_id());
  const json ref = reference();
  EXPECT_EQ(*tok.bos_id(), ref["golden_prompt"]["ids"][0].get<int32_t>());
  EXPECT_FALSE(tok.merges().empty());
  for (int32_t id = 0; id < tok.vocab_size(); ++id) EXPECT_EQ(tok.token_id(tok.token(id)), id);
  const std::string name = GetParam();
  if (name == "gutenberg-llama-33m" || name == "gutenberg-gemma3-16m") {  // the Gemma model reuses Llama's tokenizer
    EXPECT_EQ(tok.kind(), TokenizerKind::SentencePieceBPE);
    EXPECT_EQ(tok.vocab_size(), 8000);
    EXPECT_EQ(tok.bos_id(), 1);
    EXPECT_EQ(tok.eos_id(), 2);
    EXPECT_EQ(tok.unk_id(), 0);
    EXPECT_EQ(tok.pad_id(), std::nullopt);
    EXPECT_EQ(tok.token_type(0), TokenType::Unknown);
    EXPECT_EQ(tok.token_type(1), TokenType::Control);
    EXPECT_EQ(tok.token_type(3), TokenType::Byte);
    EXPECT_EQ(tok.token(3), "<0x00>");
    EXPECT_EQ(tok.merges().front(), "\u2581 t");
    EXPECT_EQ(tok.token_type(*tok.token_id("\u2581t")), TokenType::Normal);
    EXPECT_EQ(tok.score(*tok.token_id("\u2581t")), 0.0f);  // produced by merge rank 0
    EXPECT_EQ(tok.score(*tok.token_id("he")), -1.0f);
    EXPECT_EQ(tok.token_to_piece(*tok.token_id("\u2581t")), " t");
    EXPECT_EQ(tok.token_to_piece(3 + 0x41), "A");
  } else {
    EXPECT_EQ(tok.kind(), TokenizerKind::ByteLevelBPE);
    EXPECT_EQ(tok.vocab_size(), 16384);
    EXPECT_EQ(tok.bos_id(), 2);
    EXPECT_EQ(tok.eos_id(), 2);
    EXPECT_EQ(tok.pad_id(), 1);
    EXPECT_EQ(tok.unk_id(), 2);  // tokenizer_config says </s>, as transformers reports it
    EXPECT_EQ(tok.token_type(2), TokenType::Control);
    EXPECT_EQ(tok.token_type(*tok.token_id("\u0120t")), TokenType::Normal);
    EXPECT_EQ(tok.pre_tokenizer_name(), "gpt-2");
    EXPECT_EQ(tok.merges().front(), "\u0120 t");
    EXPECT_EQ(tok.token_to_piece(*tok.token_id("\u0120t")), " t");
  }
  EXPECT_EQ(tok.chat_template(), "");
}

INSTANTIATE_TEST_SUITE_P(Models, ReferenceTokenizer,
                         ::testing::Values("gutenberg-llama-33m", "gutenberg-opt-28m", "gutenberg-gemma3-16m",
                                           "gutenberg-qwen3moe-21m"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

}  // namespace
}  // namespace quantllm
