// Writing a model as one GGUF file that llama.cpp runs, and reading such files back as a LoadedModel.
//
// Metadata: general.* (architecture, name, file_type, quantization_version), the architecture's
// hyperparameter keys (llama / qwen2 / qwen3 as llama.cpp defines them; "opt" is ours, see docs/gguf.md),
// the tokenizer (tokenizer.ggml.* — "llama" SentencePiece vocabularies with scores and token types,
// "gpt2" byte-level ones with merges and a pre-tokenizer name), and tokenizer.huggingface.json
// (the GGUF spec's key for the whole tokenizer.json) so that our reader tokenizes exactly.
#pragma once

#include "io/imatrix.h"
#include "model/weights.h"
#include "formats/gguf_plan.h"

#include <filesystem>
#include <functional>

namespace quantllm {

// A GGML rounder: encodes matrix `matrix` of a planned tensor (of a stacked MoE tensor: expert `matrix`,
// else 0) — rows [nrows, p.ne[0]] fp32 in the file's row order — into its share of p.bytes in p.type;
// imatrix: that matrix's importance row, or null. The GGUF writer takes any rounder; the default is
// llama.cpp's quantizer (quant/ggml/types.h quantize_rows), so the file is byte for byte what
// llama-quantize writes.
using GgmlRounder = std::function<void(const PlannedTensor& p, int64_t matrix, const float* rows, int64_t nrows,
                                       const float* imatrix, uint8_t* dst)>;

struct GGUFExportOptions {
  std::string mix_name = "Q4_K_M";
  uint32_t ftype = 15;
  const ImportanceMatrix* imatrix = nullptr;
  bool overwrite = false;
  GgmlRounder rounder;  // empty: llama.cpp's
  std::function<void(size_t done, size_t total, const std::string& tensor)> progress;
};

// Encodes every tensor of `weights` (HF names; config c) as `plan` says and writes `path` atomically.
// Returns the bytes written.
uint64_t write_gguf(const LoadedModel& model, const WeightSource& weights, const std::vector<PlannedTensor>& plan,
                    const std::filesystem::path& path, const GGUFExportOptions& opt);


}  // namespace quantllm
