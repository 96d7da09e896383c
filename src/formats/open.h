// Every container a model comes in, read by one open_model(): a Hugging Face directory (hf_dir.cpp), a
// GPTQ / AWQ / compressed-tensors / FP8 directory (quantized_dir.cpp and the files it hands over to), a
// .gguf file (gguf_model.cpp), or a "synth:SHAPE,…" source generated from a seed (synth_source.cpp). Writers live beside their
// readers: save_quantized (quantized_model.h), write_gguf (gguf_model.h).
#pragma once

#include "model/weights.h"

#include <filesystem>
#include <memory>
#include <optional>

namespace quantllm {

// Opens any supported model path (dispatching on what it finds there); Error when unsupported.
LoadedModel open_model(const std::filesystem::path& path);

// The readers open_model tries, each nullopt for a path of another kind.
std::optional<LoadedModel> open_gguf(const std::filesystem::path& path);
std::optional<LoadedModel> open_quantized_dir(const std::filesystem::path& path);
std::optional<LoadedModel> open_hf_dir(const std::filesystem::path& path);
std::optional<LoadedModel> open_synth_source(const std::string& spec);

// A plain Hugging Face checkpoint directory's weights (or one .safetensors file's).
std::unique_ptr<WeightSource> open_safetensors_weights(const std::filesystem::path& path);

}  // namespace quantllm
