// Importance matrix computed by our forward pass, as llama.cpp's llama-imatrix does: for every
// linear layer inside the decoder blocks, Σx² of each input channel over the calibration tokens
// (and the token count), keyed by the GGUF tensor name (blk.N.attn_q.weight …). The text is cut
// into consecutive chunks of ctx tokens (BOS first when the tokenizer adds one), like llama-imatrix.
#pragma once

#include "io/imatrix.h"
#include "methods/backend.h"
#include "quantllm/eval.h"
#include "model/weights.h"

#include <functional>
#include <string>

namespace quantllm {

// opt: the public ImatrixOptions (include/quantllm/eval.h): tokens per chunk, at most this many chunks
// (<= 0: all), the device.
ImportanceMatrix compute_imatrix(const LoadedModel& model, const std::filesystem::path& text_file,
                                 const ImatrixOptions& opt,
                                 const std::function<void(int block, int n_blocks)>& progress = {});

// Checks an importance matrix fits a model: every entry names a tensor of the model's GGUF
// layout with the right row length (Error otherwise: "from another model?").
void check_imatrix_fits(const ImportanceMatrix& im, const ModelConfig& c, const std::string& source);

}  // namespace quantllm
