// Test support: a model's fp32 logits for one sequence of tokens, [tokens, vocab] row-major, through the
// engine `eval` runs (runtime/forward.h FullModel), from any directory or file open_model reads.
#pragma once

#include "formats/open.h"
#include "runtime/forward.h"

#include <filesystem>
#include <vector>

namespace quantllm::test {

inline std::vector<float> fp32_logits(const std::filesystem::path& model, const std::vector<int32_t>& tokens) {
  const FullModel fm(open_model(model), Engine::Fp32);
  std::vector<float> out;
  fm.forward(tokens, 1, int64_t(tokens.size()), [&](int64_t, const Tensor& l) { out = l.data; });
  return out;
}

}  // namespace quantllm::test
