// open_model: the one entry to every container reader (see open.h).
#include "formats/open.h"

#include "core/error.h"

namespace quantllm {

LoadedModel open_model(const std::filesystem::path& path) {
  if (auto m = open_synth_source(path.string())) return std::move(*m);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) fail("{}: no such file or directory", path.string());
  if (auto m = open_gguf(path)) return std::move(*m);
  if (auto m = open_quantized_dir(path)) return std::move(*m);
  if (auto m = open_hf_dir(path)) return std::move(*m);
  fail("{}: not a model directory or .gguf file", path.string());
}

}  // namespace quantllm
