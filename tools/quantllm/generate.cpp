// quantllm generate: text continuation with the KV cache, streamed to stdout.
#include "commands.h"
#include "common.h"
#include "quantllm/eval.h"

#include <fmt/format.h>

#include <cstdio>

namespace quantllm::cli {

void register_generate(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& runners) {
  struct Args {
    std::string model, prompt;
    GenerateOptions o;
    int threads = 0;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  auto* sub = app.add_subcommand("generate", "Generate text from a prompt (greedy or sampled)");
  sub->add_option("--model", a->model, "HF directory, quantized directory or .gguf file")->required();
  sub->add_option("--prompt,-p", a->prompt, "prompt text")->required();
  sub->add_option("--max-tokens,-n", a->o.max_tokens, "tokens to generate")->capture_default_str();
  sub->add_option("--temperature", a->o.temperature, "0 = greedy")->capture_default_str();
  sub->add_option("--top-k", a->o.top_k, "sample among the k most likely (0 = off)");
  sub->add_option("--top-p", a->o.top_p, "sample within cumulative probability p (1 = off)");
  sub->add_option("--seed", a->o.seed, "sampling seed");
  sub->add_option("--threads", a->threads, "threads (0 = all cores)");
  sub->add_option("--engine", a->o.engine, "quant (packed weights, CPU kernels) or fp32 (reference)")->capture_default_str();
  sub->add_flag("--chat", a->o.chat, "wrap the prompt in the model's chat template");
  sub->add_flag("--json", a->json, "print one JSON object on stdout instead of streaming");
  runners.emplace_back(sub, [a] {
    apply_threads(a->threads);
    const Model m(a->model);
    std::function<void(const std::string&)> stream;
    if (!a->json) stream = [](const std::string& text) {
      std::fputs(text.c_str(), stdout);
      std::fflush(stdout);
    };
    const GenerateResult r = generate(m, a->prompt, a->o, stream);
    if (a->json) {
      print_json({{"text", r.text}, {"tokens", r.tokens}, {"prompt_tokens", r.prompt_tokens},
                  {"tokens_per_second", r.tokens_per_second}, {"prompt_tokens_per_second", r.prompt_tokens_per_second}});
    } else {
      std::fputc('\n', stdout);
      fmt::print(stderr, "{} prompt tokens at {:.1f} tokens/s; {} generated at {:.1f} tokens/s\n", r.prompt_tokens,
                 r.prompt_tokens_per_second, r.tokens.size(), r.tokens_per_second);
    }
  });
}

}  // namespace quantllm::cli
