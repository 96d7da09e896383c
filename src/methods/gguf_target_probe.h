// The measured sensitivity behind --target-bpw (formats/gguf_target.h): how far the model's next-token
// distributions move (KL divergence from the unquantized model, over a few calibration windows) when one
// tensor alone is rounded to a probe type with llama.cpp's quantizer. Dividing by that tensor's
// importance-weighted rounding error at the probe type gives its gain: the KL divergence one unit of its
// error costs, which turns every tensor's measured errors into one currency.
#pragma once

#include "formats/gguf_plan.h"
#include "eval/perplexity.h"
#include "io/imatrix.h"
#include "model/weights.h"

#include <filesystem>
#include <vector>

namespace quantllm {

class TargetProbe {
 public:
  // windows × ctx tokens of `text` (its first complete windows); the unquantized logits are computed once.
  TargetProbe(const LoadedModel& m, const std::filesystem::path& text, int64_t windows, int64_t ctx,
              const ImportanceMatrix* imatrix);
  // Mean KL divergence with only `p` (every expert of a stacked tensor) quantized to `type`.
  double kld(const PlannedTensor& p, ggml::GgmlType type) const;

 private:
  const LoadedModel& model_;
  const ImportanceMatrix* imatrix_;
  Windows windows_;
  std::vector<Tensor> base_;  // per window: [ctx − 1, vocab] logits of the unquantized model
};

}  // namespace quantllm
