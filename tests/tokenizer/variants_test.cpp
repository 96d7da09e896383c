// Tokenizers the reference models do not cover, built by hand in the tests: a Qwen2-style byte-level
// tokenizer (Split regex + ByteLevel without regex, NFC, chat special tokens), the Llama-3 variant
// (ignore_merges), SentencePiece-style vocabularies with a Metaspace pre-tokenizer (byte fallback, unk
// fusing, prepend schemes), added non-special tokens with lstrip/single_word, the Unicode helpers, and
// the errors a malformed tokenizer.json must produce. Expected ids are derived by hand in the comments.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>

#include "core/error.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace quantllm {
namespace {

using json = nlohmann::json;

const char* kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

std::string ch(char32_t cp) {
  std::string s;
  unicode::append_utf8(s, cp);
  return s;
}

json added_token(int id, const std::string& content, bool special, bool normalized, bool lstrip = false,
                 bool single_word = false) {
  return {{"id", id},           {"content", content}, {"single_word", single_word}, {"lstrip", lstrip},
          {"rstrip", false},    {"normalized", normalized}, {"special", special}};
}

// Byte-level vocabulary: id b is the GPT-2 stand-in char of byte b (so "h" = 104, "Ġ" = 32, ...), then:
//   256 he (h e, rank 0)    257 ll (l l, rank 1)    258 hell (he ll, rank 2)   259 hello (hell o, rank 3)
//   260 Ġw (Ġ w, rank 4)    261 or (o r, rank 5)    262 Ġwor (Ġw or, rank 6)  266 12 (1 2, rank 7)
//   263 <|endoftext|>, 264 <|im_start|>, 265 <|im_end|> (special), 267 [name] (non-special, lstrip),
//   268 ab (non-special, single_word), 269 ld (in the vocabulary, produced by no merge).
json qwen2_tokenizer(const char* regex = kQwen2Regex, bool ignore_merges = false) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[ch(unicode::byte_to_char()[b])] = b;
  const std::string G = ch(unicode::byte_to_char()[' ']);  // "Ġ"
  vocab["he"] = 256;
  vocab["ll"] = 257;
  vocab["hell"] = 258;
  vocab["hello"] = 259;
  vocab[G + "w"] = 260;
  vocab["or"] = 261;
  vocab[G + "wor"] = 262;
  vocab["12"] = 266;
  vocab["ld"] = 269;
  json merges = json::array({json::array({"h", "e"}), json::array({"l", "l"}), json::array({"he", "ll"}),
                             json::array({"hell", "o"}), json::array({G, "w"}), json::array({"o", "r"}),
                             json::array({G + "w", "or"}), json::array({"1", "2"})});
  return {
      {"version", "1.0"},
      {"added_tokens", json::array({added_token(263, "<|endoftext|>", true, false),
                                    added_token(264, "<|im_start|>", true, false),
                                    added_token(265, "<|im_end|>", true, false),
                                    added_token(267, "[name]", false, true, /*lstrip=*/true),
                                    added_token(268, "ab", false, true, false, /*single_word=*/true)})},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         json::array({{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}},
                      {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}})}}},
      {"post_processor", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", ""},
        {"end_of_word_suffix", ""}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", ignore_merges},
        {"vocab", vocab}, {"merges", merges}}}};
}

const json kQwenConfig = {{"tokenizer_class", "Qwen2Tokenizer"},
                          {"bos_token", nullptr},
                          {"eos_token", "<|im_end|>"},
                          {"pad_token", "<|endoftext|>"},
                          {"chat_template", "{% for m in messages %}{{ m.content }}{% endfor %}"}};

using Ids = std::vector<int32_t>;

TEST(Qwen2Style, ChatTokensSplitRegexAndMerges) {
  Tokenizer tok = Tokenizer::from_json(qwen2_tokenizer().dump(), kQwenConfig.dump());
  // <|im_start|> is cut out first (264). "hello world" splits into "hello" and " world":
  //   hello: (h,e)->he, (l,l)->ll, (he,ll)->hell, (hell,o)->hello = 259.
  //   Ġworld: (Ġ,w)->Ġw, (o,r)->or, (Ġw,or)->Ġwor; "l","d" stay (no merge; "ld" only by ignore_merges) = 262 108 100.
  EXPECT_EQ(tok.encode("<|im_start|>hello world<|im_end|>"), (Ids{264, 259, 262, 108, 100, 265}));
  // The Qwen2 regex isolates every digit, so the "1 2" merge never applies: 1 2 3 = 49 50 51.
  EXPECT_EQ(tok.encode("123"), (Ids{49, 50, 51}));
  // Contractions are case-insensitive: "IT'S" -> "IT" + "'S"; all single bytes.
  EXPECT_EQ(tok.encode("IT'S"), (Ids{'I', 'T', '\'', 'S'}));
  // No BOS: the post-processor is ByteLevel only.
  EXPECT_EQ(tok.encode("hello", true), (Ids{259}));
  EXPECT_FALSE(tok.adds_bos());
  EXPECT_EQ(tok.decode({264, 259, 262, 108, 100, 265}), "<|im_start|>hello world<|im_end|>");
  EXPECT_EQ(tok.decode({264, 259, 262, 108, 100, 265}, /*skip_special=*/true), "hello world");
  EXPECT_EQ(tok.pre_tokenizer_name(), "qwen2");
  EXPECT_EQ(tok.kind(), TokenizerKind::ByteLevelBPE);
  EXPECT_EQ(tok.token_type(264), TokenType::Control);
  EXPECT_EQ(tok.token_type(267), TokenType::UserDefined);
  EXPECT_EQ(tok.token_type(259), TokenType::Normal);
  EXPECT_EQ(tok.eos_id(), 265);
  EXPECT_EQ(tok.pad_id(), 263);
  EXPECT_EQ(tok.bos_id(), std::nullopt);
  EXPECT_EQ(tok.vocab_size(), 270);
  EXPECT_EQ(tok.chat_template(), kQwenConfig["chat_template"].get<std::string>());
  EXPECT_EQ(tok.merges()[4], ch(unicode::byte_to_char()[' ']) + " w");
}

TEST(Qwen2Style, NfcNormalizerComposesBeforeBytes) {
  Tokenizer tok = Tokenizer::from_json(qwen2_tokenizer().dump());
  // "e" + U+0301 becomes U+00E9 = bytes C3 A9 (ids 195, 169) instead of 65 CC 81.
  EXPECT_EQ(tok.encode("e\xCC\x81"), (Ids{0xC3, 0xA9}));
  EXPECT_EQ(tok.decode({0xC3, 0xA9}), "\xC3\xA9");
  // A lone continuation byte's id decodes to U+FFFD (from_utf8_lossy).
  EXPECT_EQ(tok.decode({0xA9, 'a'}), "\xEF\xBF\xBD" "a");
}

TEST(Qwen2Style, AddedNonSpecialTokens) {
  Tokenizer tok = Tokenizer::from_json(qwen2_tokenizer().dump());
  // [name] has lstrip: the space before it is swallowed: "hi" [name] "!" = 104 105 267 33.
  EXPECT_EQ(tok.encode("hi [name]!"), (Ids{104, 105, 267, 33}));
  EXPECT_EQ(tok.decode({104, 105, 267, 33}), "hi[name]!");
  // Non-special tokens survive skip_special.
  EXPECT_EQ(tok.decode({267}, true), "[name]");
  // "ab" is single_word: matched alone, not inside "cab" (preceded by a word char), where " cab" is
  // byte-level Ġ c a b = 32 99 97 98.
  EXPECT_EQ(tok.encode("ab cab"), (Ids{268, 32, 99, 97, 98}));
}

TEST(Llama3Style, IgnoreMergesAndPreName) {
  Tokenizer with = Tokenizer::from_json(qwen2_tokenizer(kLlama3Regex, /*ignore_merges=*/true).dump());
  Tokenizer without = Tokenizer::from_json(qwen2_tokenizer(kLlama3Regex, false).dump());
  EXPECT_EQ(with.pre_tokenizer_name(), "llama-bpe");
  // "ld" is a vocabulary entry no merge produces: whole with ignore_merges, bytes without.
  EXPECT_EQ(with.encode("ld"), (Ids{269}));
  EXPECT_EQ(without.encode("ld"), (Ids{108, 100}));
  // Llama 3 groups up to three digits, so "12" + "3": the "1 2" merge applies = 266 51.
  EXPECT_EQ(with.encode("123"), (Ids{266, 51}));
}

// SentencePiece-style vocabulary: <unk> 0, <s> 1, </s> 2, <0x00>..<0xFF> 3..258, then
//   259 ▁  260 h  261 i  262 ▁h (▁ h, rank 0)  263 ▁hi (▁h i, rank 1).
json metaspace_tokenizer(const std::string& scheme, bool split, bool byte_fallback = true, bool fuse_unk = true) {
  const std::string M = "\u2581";
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) vocab[fmt::format("<0x{:02X}>", b)] = 3 + b;
  vocab[M] = 259;
  vocab["h"] = 260;
  vocab["i"] = 261;
  vocab[M + "h"] = 262;
  vocab[M + "hi"] = 263;
  return {
      {"version", "1.0"},
      {"added_tokens", json::array({added_token(0, "<unk>", true, false), added_token(1, "<s>", true, false),
                                    added_token(2, "</s>", true, false)})},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "Metaspace"}, {"replacement", M}, {"prepend_scheme", scheme}, {"split", split}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
        {"pair", json::array()},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders", json::array({{{"type", "ByteFallback"}},
                                  {{"type", "Metaspace"}, {"replacement", M}, {"prepend_scheme", scheme}, {"split", split}}})}}},
      {"model",
       {{"type", "BPE"}, {"unk_token", "<unk>"}, {"fuse_unk", fuse_unk}, {"byte_fallback", byte_fallback},
        {"vocab", vocab}, {"merges", json::array({M + " h", M + "h i"})}}}};
}

TEST(MetaspaceStyle, PrependSchemesAndSplit) {
  for (bool split : {false, true}) {
    Tokenizer first = Tokenizer::from_json(metaspace_tokenizer("first", split).dump());
    Tokenizer always = Tokenizer::from_json(metaspace_tokenizer("always", split).dump());
    Tokenizer never = Tokenizer::from_json(metaspace_tokenizer("never", split).dump());
    // "hi hi" -> "▁hi▁hi": (▁,h) at both places, then (▁h,i) = 263 263, however the word is split.
    EXPECT_EQ(first.encode("hi hi"), (Ids{263, 263})) << split;
    EXPECT_EQ(always.encode("hi hi"), (Ids{263, 263})) << split;
    // never: "hi▁hi" = h i ▁hi = 260 261 263.
    EXPECT_EQ(never.encode("hi hi"), (Ids{260, 261, 263})) << split;
    // After an added token the text no longer starts the input: "first" does not prepend, "always" does.
    EXPECT_EQ(first.encode("<s>hi"), (Ids{1, 260, 261})) << split;
    EXPECT_EQ(always.encode("<s>hi"), (Ids{1, 263})) << split;
    EXPECT_EQ(first.encode("hi", true), (Ids{1, 263}));
    // Decoder: the Metaspace decoder drops the first token's ▁ (scheme != never) and turns the rest into spaces.
    EXPECT_EQ(first.decode({263, 263}), "hi hi");
    EXPECT_EQ(never.decode({260, 261, 263}), "hi hi");
    EXPECT_EQ(first.pre_tokenizer_name(), "default");
    EXPECT_EQ(first.kind(), TokenizerKind::SentencePieceBPE);
  }
}

TEST(MetaspaceStyle, ByteFallbackAndUnk) {
  Tokenizer tok = Tokenizer::from_json(metaspace_tokenizer("first", false).dump());
  // "é" -> "▁é": ▁ = 259, é is not in the vocabulary -> bytes C3 A9 = <0xC3> <0xA9> = 198 172.
  EXPECT_EQ(tok.encode("\xC3\xA9"), (Ids{259, 3 + 0xC3, 3 + 0xA9}));
  // ByteFallback reassembles the bytes; the Metaspace decoder then drops the first token's ▁.
  EXPECT_EQ(tok.decode({259, 3 + 0xC3, 3 + 0xA9}), "\xC3\xA9");
  // An invalid byte sequence decodes to one U+FFFD per byte.
  EXPECT_EQ(tok.decode({263, 3 + 0xC3}), "hi\xEF\xBF\xBD");
  EXPECT_EQ(tok.token_type(3 + 0xC3), TokenType::Byte);
  EXPECT_EQ(tok.token_type(0), TokenType::Unknown);
  EXPECT_EQ(tok.token_to_piece(3 + 'A'), "A");

  // Without byte fallback, unknown chars become <unk>; fuse_unk joins a run of them:
  // "hxxi" -> ▁ h x x i -> (▁,h) -> ▁h <unk> i = 262 0 261.
  Tokenizer fused = Tokenizer::from_json(metaspace_tokenizer("first", false, false, true).dump());
  EXPECT_EQ(fused.encode("hxxi"), (Ids{262, 0, 261}));
  Tokenizer unfused = Tokenizer::from_json(metaspace_tokenizer("first", false, false, false).dump());
  EXPECT_EQ(unfused.encode("hxxi"), (Ids{262, 0, 0, 261}));
}

TEST(Unicode, Normalization) {
  EXPECT_EQ(unicode::nfc("e\xCC\x81"), "\xC3\xA9");                           // e + acute -> é
  EXPECT_EQ(unicode::nfd("\xC3\xA9"), "e\xCC\x81");
  EXPECT_EQ(unicode::nfc("\xE1\x84\x80\xE1\x85\xA1"), "\xEA\xB0\x80");        // Hangul L+V -> GA
  EXPECT_EQ(unicode::nfc("\xE0\xA5\x98"), "\xE0\xA4\x95\xE0\xA4\xBC");        // U+0958 is excluded from composition
  EXPECT_EQ(unicode::nfc("\xE1\xB8\x8B\xCC\xA3"), "\xE1\xB8\x8D\xCC\x87");    // ḋ + dot below -> ḍ + dot above
  EXPECT_EQ(unicode::nfc("\xE2\x84\xAB"), "\xC3\x85");                        // Angstrom sign (singleton) -> Å
  EXPECT_EQ(unicode::nfc("plain ascii"), "plain ascii");
}

TEST(Unicode, LossyUtf8) {
  // A truncated 4-byte sequence is one maximal subpart: one U+FFFD; an overlong C0 AF is two.
  EXPECT_EQ(unicode::utf8_lossy("\xF0\x9F\x98" "A"), "\xEF\xBF\xBD" "A");
  EXPECT_EQ(unicode::utf8_lossy("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(unicode::utf8_lossy("ok \xF0\x9F\x99\x82"), "ok \xF0\x9F\x99\x82");
}

// ---------------------------------------------------------------- errors

class TokenizerErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("quantllm_tok_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  // Writes tokenizer.json and returns the error message from_dir gives.
  std::string error_for(const std::string& content) {
    std::ofstream(dir_ / "tokenizer.json", std::ios::binary) << content;
    try {
      Tokenizer::from_dir(dir_);
    } catch (const Error& e) {
      return e.what();
    }
    ADD_FAILURE() << "no error for: " << content.substr(0, 200);
    return {};
  }
  std::filesystem::path dir_;
};

TEST_F(TokenizerErrors, EachNamesTheFileAndTheProblem) {
  const std::string file = (dir_ / "tokenizer.json").string();
  auto expect = [&](const std::string& content, const std::string& problem) {
    std::string msg = error_for(content);
    EXPECT_NE(msg.find(file), std::string::npos) << msg;
    EXPECT_NE(msg.find(problem), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  };
  expect("{\"model\": {\"type\": \"BPE\", \"vocab\": {", "malformed JSON");
  expect("[1, 2]", "must be a JSON object");
  expect(R"({"model": {"type": "Unigram", "vocab": []}})", "unsupported model type 'Unigram'");
  expect(R"({"model": {"type": "BPE", "merges": []}})", "model.vocab is missing");
  expect(R"({"normalizer": null})", "\"model\" is missing");
  expect(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}})", "not in the vocabulary");
  expect(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}})", "produces 'ab'");
  expect(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a"]}})", "not of the form");
  expect(R"({"model": {"type": "BPE", "vocab": {"a": -3}, "merges": []}})", "not a valid token id");
  expect(R"({"model": {"type": "BPE", "vocab": {"a": 2000000000}, "merges": []}})", "far beyond");
  expect(R"({"normalizer": {"type": "Lowercase"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})",
         "unsupported normalizer type 'Lowercase'");
  expect(R"({"pre_tokenizer": {"type": "BertPreTokenizer"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})",
         "unsupported pre_tokenizer type");
  expect(R"({"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(a"}, "behavior": "Isolated"},
             "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})",
         "does not compile");
  expect(R"({"added_tokens": [{"id": 5}], "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})",
         "missing or empty content");
  expect(R"({"post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}],
             "special_tokens": {}}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})",
         "missing from special_tokens");
  expect(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "dropout": 0.1}})", "dropout");
}

TEST_F(TokenizerErrors, MissingFileAndBadConfig) {
  try {
    Tokenizer::from_dir(dir_);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.json"), std::string::npos) << e.what();
  }
  std::ofstream(dir_ / "tokenizer.json") << R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})";
  std::ofstream(dir_ / "tokenizer_config.json") << R"({"bos_token": "<nope>"})";
  try {
    Tokenizer::from_dir(dir_);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer_config.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("<nope>"), std::string::npos) << e.what();
  }
}

TEST(TokenizerRobustness, UnkTokenMissingFromVocabularyFailsOnUse) {
  Tokenizer tok = Tokenizer::from_json(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "unk_token": "<unk>"}})");
  EXPECT_EQ(tok.encode("aaa"), (Ids{0, 0, 0}));
  EXPECT_THROW(tok.encode("b"), Error);
  EXPECT_EQ(tok.encode(""), Ids{});
  EXPECT_THROW(tok.token(7), Error);
}

}  // namespace
}  // namespace quantllm
