// Synthetic checkpoints (the public side: include/quantllm/synth.h): a Hugging Face directory with the
// shapes of a real model (Llama-3.2-1B, Llama-2-7B, …) and random weights, so that speed can be measured
// at sizes where kernels, not overheads, dominate, without downloading anything.
//
// The output is an ordinary checkpoint: config.json (transformers 4 layout), safetensors shards with
// model.safetensors.index.json (or one model.safetensors when it fits in one shard), and the tokenizer
// files of a small real model (its vocabulary must fit in the synthetic one; ids past it are never
// produced by the tokenizer, which is all a speed measurement needs).
//
// Weights: linear layers, embeddings and biases ≈ N(0, 0.02) (the Irwin–Hall sum of four uniforms:
// mean 0, the right variance, tails cut at 3.46 σ, so no outlier ever overflows a 16-bit float);
// norm gains 1 + N(0, 0.02), LayerNorm biases N(0, 0.02). Activations stay finite through any
// number of layers. Every value is a hash of (seed, tensor name, element index): the bytes do not
// depend on the thread count, the sharding, or on which other tensors exist (a --layers 2 variant
// holds exactly the first two blocks of the full model).
//
// Writing is parallel: the files are sized first, then threads fill chunks of tensors and pwrite them
// in place; the directory is assembled under a temporary name and renamed when complete.
#pragma once

#include "core/dtype.h"
#include "core/tensor.h"
#include "quantllm/synth.h"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace quantllm {

// The config.json text of a shape (exposed for tests).
std::string synth_config_json(const SynthShape& s, DType dtype, int64_t bos_id, int64_t eos_id);

// The unit-variance random number behind element `index` of a tensor (a counter-based hash of the
// tensor's key and the index; the stored value is 0.02 times it, plus 1 for norm gains, rounded to
// the dtype). synth_tensor_key mixes the seed with the tensor's name. Exposed for tests.
uint64_t synth_tensor_key(uint64_t seed, std::string_view name);
float synth_value(uint64_t tensor_key, int64_t index);

// The tensor `name` of shape `shape` exactly as write_synthetic_checkpoint stores it (rounded to dtype,
// BF16 or F16), widened to fp32: what a "synth:" source (formats/synth_source.cpp) serves.
Tensor synth_tensor(uint64_t seed, const std::string& name, const Shape& shape, DType dtype);

}  // namespace quantllm
