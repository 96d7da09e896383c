// Text generation with the KV cache: greedy (temperature 0) or sampled with temperature, top-k and
// top-p, seeded. Tokens are handed to a callback as they are produced so the CLI can stream them.
#pragma once

#include "runtime/forward.h"
#include "tokenizer/tokenizer.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace quantllm {

struct SamplingOptions {
  double temperature = 0.0;  // 0: greedy
  int top_k = 0;             // 0: off
  double top_p = 1.0;        // 1: off
  uint64_t seed = 0;
  int max_tokens = 64;
  bool stop_at_eos = true;
};

struct GenerationStats {
  std::vector<int32_t> tokens;  // generated ids (prompt excluded)
  double prompt_seconds = 0, gen_seconds = 0;
  double prompt_tokens_per_second = 0, tokens_per_second = 0;
};

// Picks the next token from logits [vocab] (exposed for tests).
int32_t sample_token(const std::vector<float>& logits, const SamplingOptions& opt, uint64_t& rng_state);

GenerationStats generate(const FullModel& model, const Tokenizer& tok, const std::vector<int32_t>& prompt,
                        const SamplingOptions& opt, const std::function<void(int32_t token)>& on_token = {});

// Applies a chat template to one user message. Recognizes the common template families (ChatML of Qwen,
// Llama 2 [INST], Llama 3 headers, Gemma's <start_of_turn>, Phi-3's <|user|> … <|end|>, Zephyr/TinyLlama)
// from the template text; Error for others.
std::string apply_chat_template(const std::string& chat_template, const std::string& user_message,
                                const std::string& bos_token);

}  // namespace quantllm
