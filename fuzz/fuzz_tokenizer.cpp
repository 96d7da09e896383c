// libFuzzer target for the tokenizer.json parser: the input bytes are a tokenizer.json; when it loads,
// a fixed string exercising added tokens, Unicode and whitespace runs is encoded and decoded. Any
// quantllm::Error is an accepted outcome; crashes, leaks and sanitizer reports are bugs.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  try {
    quantllm::Tokenizer tok = quantllm::Tokenizer::from_json(input, {}, "fuzz/tokenizer.json");
    static constexpr std::string_view kText =
        "Hello  world!\n\t<s> caf\xC3\xA9 e\xCC\x81 \xF0\x9F\x99\x82 123456 it's <|im_start|>x</s>   \xE2\x96\x81";
    auto ids = tok.encode(kText, true);
    (void)tok.decode(ids);
    (void)tok.decode(ids, true);
    for (int32_t id = 0; id < tok.vocab_size() && id < 64; ++id) {
      (void)tok.token(id);
      (void)tok.token_to_piece(id);
      (void)tok.score(id);
      (void)tok.token_type(id);
    }
  } catch (const quantllm::Error&) {
  }
  return 0;
}
