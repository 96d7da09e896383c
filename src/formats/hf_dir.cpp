// Plain Hugging Face checkpoints: config.json, safetensors (one file, or shards with an index) and the
// tokenizer files, read in place from the mapped files (see open.h).
#include "core/dtype.h"
#include "core/error.h"
#include "formats/open.h"
#include "io/safetensors.h"
#include "quant/ggml/types.h"

namespace quantllm {

namespace {

class SafetensorsWeights final : public WeightSource {
 public:
  explicit SafetensorsWeights(const std::filesystem::path& p) : ckpt_(p) {}
  bool has(const std::string& name) const override { return ckpt_.has(name); }
  Shape shape(const std::string& name) const override { return ckpt_.get(name).shape; }
  Tensor load(const std::string& name) const override {
    const TensorView& v = ckpt_.get(name);
    try {
      return v.to_f32();
    } catch (const Error& e) {  // an integer tensor where weights belong: say which checkpoint
      fail("{}: {}", ckpt_.path().string(), e.what());
    }
  }
  std::vector<std::string> names() const override { return ckpt_.names(); }
  std::string format(const std::string& name) const override {
    return std::string(dtype_name(ckpt_.get(name).dtype));
  }
  size_t stored_bytes(const std::string& name) const override { return ckpt_.get(name).nbytes; }
  std::optional<PackedWeight> packed(const std::string& name) const override {
    const TensorView& v = ckpt_.get(name);
    PackedWeight p;
    switch (v.dtype) {  // the float formats' rows of the type table
      case DType::F32: p.ggml_type = uint32_t(ggml::GgmlType::F32); break;
      case DType::F16: p.ggml_type = uint32_t(ggml::GgmlType::F16); break;
      case DType::BF16: p.ggml_type = uint32_t(ggml::GgmlType::BF16); break;
      default: return std::nullopt;
    }
    if (v.shape.size() != 2) return std::nullopt;
    p.shape = v.shape;
    p.data = v.data;
    p.nbytes = v.nbytes;
    return p;
  }

 private:
  Checkpoint ckpt_;
};

}  // namespace

std::unique_ptr<WeightSource> open_safetensors_weights(const std::filesystem::path& path) {
  return std::make_unique<SafetensorsWeights>(path);
}

std::optional<LoadedModel> open_hf_dir(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_directory(path, ec)) return std::nullopt;
  if (!std::filesystem::exists(path / "config.json", ec)) fail("{}: no config.json in this directory", path.string());
  LoadedModel m;
  m.path = path;
  m.kind = "hf";
  m.config = load_config(path);
  m.weights = open_safetensors_weights(path);
  resolve_tied_head(m.config, *m.weights);
  check_tensors(m.config, *m.weights, path.string());
  m.tokenizer = std::make_shared<Tokenizer>(Tokenizer::from_dir(path));
  return m;
}

}  // namespace quantllm
