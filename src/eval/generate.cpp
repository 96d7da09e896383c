// Generation loop and sampling (see generate.h).
#include "eval/generate.h"

#include "core/error.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

namespace quantllm {

namespace {

// splitmix64: a small, well-mixed, seedable generator; uniform double in [0, 1).
double next_uniform(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return double(z >> 11) * (1.0 / 9007199254740992.0);
}

}  // namespace

int32_t sample_token(const std::vector<float>& logits, const SamplingOptions& opt, uint64_t& rng) {
  const int64_t n = int64_t(logits.size());
  if (opt.temperature <= 0) return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
  std::vector<int32_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  // Highest logits first; ties by id so the order is total.
  std::sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) {
    return logits[size_t(a)] != logits[size_t(b)] ? logits[size_t(a)] > logits[size_t(b)] : a < b;
  });
  size_t keep = idx.size();
  if (opt.top_k > 0) keep = std::min(keep, size_t(opt.top_k));
  std::vector<double> p(keep);
  const double mx = logits[size_t(idx[0])];
  double sum = 0;
  for (size_t i = 0; i < keep; ++i) sum += (p[i] = std::exp((double(logits[size_t(idx[i])]) - mx) / opt.temperature));
  if (opt.top_p < 1.0) {
    double acc = 0;
    size_t k = 0;
    while (k < keep) {
      acc += p[k] / sum;
      ++k;
      if (acc >= opt.top_p) break;
    }
    keep = k;
    sum = 0;
    for (size_t i = 0; i < keep; ++i) sum += p[i];
  }
  double u = next_uniform(rng) * sum;
  for (size_t i = 0; i < keep; ++i)
    if ((u -= p[i]) < 0) return idx[i];
  return idx[keep - 1];
}

GenerationStats generate(const FullModel& model, const Tokenizer& tok, const std::vector<int32_t>& prompt,
                        const SamplingOptions& opt, const std::function<void(int32_t)>& on_token) {
  if (prompt.empty()) fail("the prompt is empty");
  const int64_t cap = int64_t(prompt.size()) + opt.max_tokens;
  const ModelConfig& c = model.config();
  if (c.arch->pos == PosKind::Learned && cap > c.max_positions)
    fail("prompt + --max-tokens = {} exceeds the model's {} positions", cap, c.max_positions);
  KVCache cache(c, cap);
  uint64_t rng = opt.seed;
  GenerationStats r;
  auto t0 = std::chrono::steady_clock::now();
  std::vector<float> logits = model.step(prompt, cache);
  auto t1 = std::chrono::steady_clock::now();
  r.prompt_seconds = std::chrono::duration<double>(t1 - t0).count();
  for (int i = 0; i < opt.max_tokens; ++i) {
    const int32_t next = sample_token(logits, opt, rng);
    r.tokens.push_back(next);
    if (on_token) on_token(next);
    if (opt.stop_at_eos && tok.eos_id() && next == *tok.eos_id()) break;
    if (i + 1 < opt.max_tokens) logits = model.step({next}, cache);
  }
  r.gen_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  r.prompt_tokens_per_second = double(prompt.size()) / std::max(1e-9, r.prompt_seconds);
  r.tokens_per_second = double(r.tokens.size()) / std::max(1e-9, r.gen_seconds);
  return r;
}

std::string apply_chat_template(const std::string& tmpl, const std::string& user, const std::string& bos) {
  if (tmpl.find("<|im_start|>") != std::string::npos)
    return "<|im_start|>user\n" + user + "<|im_end|>\n<|im_start|>assistant\n";
  if (tmpl.find("<|start_header_id|>") != std::string::npos)
    return bos + "<|start_header_id|>user<|end_header_id|>\n\n" + user +
           "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
  if (tmpl.find("<start_of_turn>") != std::string::npos)  // Gemma's turns (the assistant is "model")
    return bos + "<start_of_turn>user\n" + user + "<end_of_turn>\n<start_of_turn>model\n";
  if (tmpl.find("<|user|>") != std::string::npos && tmpl.find("<|end|>") != std::string::npos)  // Phi-3 / Phi-4-mini
    return "<|user|>\n" + user + "<|end|>\n<|assistant|>\n";
  if (tmpl.find("<|user|>") != std::string::npos) return "<|user|>\n" + user + "</s>\n<|assistant|>\n";
  if (tmpl.find("[INST]") != std::string::npos) return bos + "[INST] " + user + " [/INST]";
  fail("the model's chat template is not one quantllm recognizes (ChatML, Llama 2, Llama 3, Gemma, Phi-3, Zephyr)");
}

}  // namespace quantllm
