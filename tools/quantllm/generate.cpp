// quantllm generate: text continuation with the KV cache, streamed to stdout.
#include "commands.h"
#include "common.h"
#include "core/error.h"
#include "eval/generate.h"

#include <fmt/format.h>

#include <cstdio>

namespace quantllm::cli {

void register_generate(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& runners) {
  struct Args {
    std::string model, prompt, engine = "quant";
    int max_tokens = 64, top_k = 0, threads = 0;
    double temperature = 0, top_p = 1.0;
    uint64_t seed = 0;
    bool chat = false, json = false;
  };
  auto a = std::make_shared<Args>();
  auto* sub = app.add_subcommand("generate", "Generate text from a prompt (greedy or sampled)");
  sub->add_option("--model", a->model, "HF directory, quantized directory or .gguf file")->required();
  sub->add_option("--prompt,-p", a->prompt, "prompt text")->required();
  sub->add_option("--max-tokens,-n", a->max_tokens, "tokens to generate")->capture_default_str();
  sub->add_option("--temperature", a->temperature, "0 = greedy")->capture_default_str();
  sub->add_option("--top-k", a->top_k, "sample among the k most likely (0 = off)");
  sub->add_option("--top-p", a->top_p, "sample within cumulative probability p (1 = off)");
  sub->add_option("--seed", a->seed, "sampling seed");
  sub->add_option("--threads", a->threads, "threads (0 = all cores)");
  sub->add_option("--engine", a->engine, "quant (packed weights, CPU kernels) or fp32 (reference)")->capture_default_str();
  sub->add_flag("--chat", a->chat, "wrap the prompt in the model's chat template");
  sub->add_flag("--json", a->json, "print one JSON object on stdout instead of streaming");
  runners.emplace_back(sub, [a] {
    apply_threads(a->threads);
    if (a->max_tokens < 1) fail("--max-tokens must be at least 1");
    if (a->temperature < 0) fail("--temperature must be >= 0");
    if (a->top_p <= 0 || a->top_p > 1) fail("--top-p must be in (0, 1]");
    Model m = open_model(a->model);
    const Tokenizer& tok = *m.tokenizer;
    std::vector<int32_t> prompt;
    if (a->chat) {
      if (tok.chat_template().empty()) fail("{}: the model has no chat template (tokenizer_config.json)", a->model);
      const std::string bos = tok.bos_id() ? tok.token(*tok.bos_id()) : "";
      prompt = tok.encode(apply_chat_template(tok.chat_template(), a->prompt, bos), false);
    } else {
      prompt = tok.encode(a->prompt, true);
    }
    FullModel fm(m, parse_engine(a->engine));
    SamplingOptions o;
    o.temperature = a->temperature;
    o.top_k = a->top_k;
    o.top_p = a->top_p;
    o.seed = a->seed;
    o.max_tokens = a->max_tokens;
    // Stream: decode prompt + generated tokens and print what is new since the last call, so spaces
    // that belong to a token's start and characters spanning several byte tokens come out right.
    std::vector<int32_t> out = prompt;
    const std::string prompt_text = tok.decode(prompt, true);
    std::string printed = prompt_text;
    if (!a->json) std::fputs(prompt_text.c_str(), stdout);
    const auto r = generate(fm, tok, prompt, o, [&](int32_t t) {
      out.push_back(t);
      if (a->json) return;
      const std::string text = tok.decode(out, true);
      if (text.size() > printed.size() && text.compare(0, printed.size(), printed) == 0 &&
          (text.back() & 0xc0) != 0x80 && (unsigned char)text.back() < 0xc0) {
        std::fputs(text.c_str() + printed.size(), stdout);
        std::fflush(stdout);
        printed = text;
      }
    });
    std::vector<int32_t> all = prompt;
    all.insert(all.end(), r.tokens.begin(), r.tokens.end());
    const std::string full = tok.decode(all, true);
    const std::string text = full.compare(0, prompt_text.size(), prompt_text) == 0 ? full.substr(prompt_text.size())
                                                                                  : tok.decode(r.tokens, true);
    if (a->json) {
      print_json({{"text", text}, {"tokens", r.tokens}, {"prompt_tokens", prompt.size()},
                  {"tokens_per_second", r.tokens_per_second}, {"prompt_tokens_per_second", r.prompt_tokens_per_second}});
    } else {
      if (full.size() > printed.size() && full.compare(0, printed.size(), printed) == 0)
        std::fputs(full.c_str() + printed.size(), stdout);
      std::fputc('\n', stdout);
      fmt::print(stderr, "{} prompt tokens at {:.1f} tokens/s; {} generated at {:.1f} tokens/s\n", prompt.size(),
                 r.prompt_tokens_per_second, r.tokens.size(), r.tokens_per_second);
    }
  });
}

}  // namespace quantllm::cli
