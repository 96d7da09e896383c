// Opening models and measuring them: the entry points of the C++ API.
//
//   quantllm::Model m = quantllm::load_model("path/to/hf-dir-or-file.gguf");
//   double ppl = quantllm::perplexity(m, "wikitext2-test.raw", {.max_windows = 16});
#pragma once

#include "model/weights.h"

#include <filesystem>
#include <string>

namespace quantllm {

// Opens a Hugging Face directory, a GPTQ / AWQ directory or a .gguf file.
Model load_model(const std::filesystem::path& path);

struct PerplexityOptions {
  int64_t ctx = 512;
  int64_t max_windows = 0;  // 0: all windows
};
// Perplexity of the model (or of `weights` standing in for its weights) on a text file.
double perplexity(const Model& model, const std::filesystem::path& text_file, PerplexityOptions opt = {});
double perplexity(const Model& model, const WeightSource& weights, const std::filesystem::path& text_file,
                  PerplexityOptions opt = {});

}  // namespace quantllm
