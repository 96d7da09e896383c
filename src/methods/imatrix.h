// Importance matrix computed by our forward pass, as llama.cpp's llama-imatrix does: for every
// linear layer inside the decoder blocks, Σx² of each input channel over the calibration tokens
// (and the token count), keyed by the GGUF tensor name (blk.N.attn_q.weight …). The text is cut
// into consecutive chunks of ctx tokens (BOS first when the tokenizer adds one), like llama-imatrix.
#pragma once

#include "io/imatrix.h"
#include "methods/backend.h"
#include "model/weights.h"

#include <functional>
#include <string>

namespace quantllm {

struct ImatrixOptions {
  std::string data;       // calibration text file
  int64_t ctx = 512;      // tokens per chunk
  int64_t chunks = 128;   // at most this many chunks (<= 0: all)
  Device device = Device::CPU;
};

ImportanceMatrix compute_imatrix(const Model& model, const ImatrixOptions& opt,
                                 const std::function<void(int block, int n_blocks)>& progress = {});

// Checks an importance matrix fits a model: every entry names a tensor of the model's GGUF
// layout with the right row length (Error otherwise: "from another model?").
void check_imatrix_fits(const ImportanceMatrix& im, const ModelConfig& c, const std::string& source);

}  // namespace quantllm
