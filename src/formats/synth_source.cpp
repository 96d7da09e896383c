// "synth:" model sources: a named shape's synthetic checkpoint (model/synthetic.h) served tensor by tensor
// from its seed, without writing its weights — the same values `quantllm synth` would store — so a 70B
// shape can be quantized on a machine whose disk holds only the output. The spec:
//   synth:SHAPE[,layers=N][,hidden=N][,ffn=N][,heads=N][,kv_heads=N][,vocab=N][,seed=N][,dtype=bf16|f16]
//         [,tokenizer=DIR]
// config.json and the tokenizer files are written once to ~/.cache/quantllm/synth/<spec hash>/ (writers of
// quantized directories copy them from there).
#include "core/error.h"
#include "core/fs.h"
#include "formats/open.h"
#include "model/config.h"
#include "model/synthetic.h"
#include "tokenizer/tokenizer.h"

#include <fmt/format.h>

#include <cstdlib>

namespace quantllm {

namespace {

class SynthWeights final : public WeightSource {
 public:
  SynthWeights(const ModelConfig& c, uint64_t seed, DType dtype) : seed_(seed), dtype_(dtype) {
    for (const auto& [name, shape] : expected_tensors(c)) shapes_[name] = shape;
  }
  bool has(const std::string& n) const override { return shapes_.count(n) != 0; }
  Shape shape(const std::string& n) const override { return at(n); }
  Tensor load(const std::string& n) const override { return synth_tensor(seed_, n, at(n), dtype_); }
  std::vector<std::string> names() const override {
    std::vector<std::string> v;
    for (const auto& [n, s] : shapes_) v.push_back(n);
    return v;
  }
  std::string format(const std::string& n) const override { return (void)at(n), std::string(dtype_name(dtype_)); }
  size_t stored_bytes(const std::string& n) const override { return size_t(shape_numel(at(n))) * dtype_size(dtype_); }
  bool mapped() const override { return false; }

 private:
  const Shape& at(const std::string& n) const {
    auto it = shapes_.find(n);
    if (it == shapes_.end()) fail("synthetic source: no tensor '{}'", n);
    return it->second;
  }
  uint64_t seed_;
  DType dtype_;
  std::map<std::string, Shape> shapes_;
};

int64_t positive(const std::string& key, const std::string& v, const std::string& spec) {
  try {
    size_t used = 0;
    const long long x = std::stoll(v, &used);
    if (used == v.size() && x >= 0) return int64_t(x);
  } catch (const std::exception&) {
  }
  fail("{}: '{}={}' is not a non-negative integer", spec, key, v);
}

}  // namespace

std::optional<LoadedModel> open_synth_source(const std::string& spec) {
  if (spec.rfind("synth:", 0) != 0) return std::nullopt;
  std::vector<std::string> parts;
  for (size_t a = 6, b; a <= spec.size(); a = b + 1) {
    b = spec.find(',', a);
    if (b == std::string::npos) b = spec.size();
    parts.push_back(spec.substr(a, b - a));
  }
  SynthOptions o;
  o.shape = synth_shape(parts.front());
  for (size_t i = 1; i < parts.size(); ++i) {
    const size_t eq = parts[i].find('=');
    if (eq == std::string::npos) fail("{}: '{}' is not key=value", spec, parts[i]);
    const std::string k = parts[i].substr(0, eq), v = parts[i].substr(eq + 1);
    if (k == "layers") o.shape.layers = positive(k, v, spec);
    else if (k == "hidden") o.shape.hidden = positive(k, v, spec);
    else if (k == "ffn") o.shape.ffn = positive(k, v, spec);
    else if (k == "heads") o.shape.heads = positive(k, v, spec);
    else if (k == "kv_heads") o.shape.kv_heads = positive(k, v, spec);
    else if (k == "vocab") o.shape.vocab = positive(k, v, spec);
    else if (k == "seed") o.seed = uint64_t(positive(k, v, spec));
    else if (k == "dtype") o.dtype = v;
    else if (k == "tokenizer") o.tokenizer_from = v;
    else fail("{}: unknown key '{}' (known: layers, hidden, ffn, heads, kv_heads, vocab, seed, dtype, tokenizer)", spec, k);
  }
  if (o.shape.architecture == "OPTForCausalLM") o.shape.kv_heads = o.shape.heads;
  if (o.tokenizer_from.empty()) {  // as `quantllm synth`: a small real model's tokenizer from ../shared
    const char* shared = std::getenv("QUANTLLM_SHARED_DIR");
    const std::filesystem::path models = std::filesystem::path(shared ? shared : "../shared") / "models";
    o.tokenizer_from = models / (o.shape.architecture == "OPTForCausalLM" ? "gutenberg-opt-28m" : "gutenberg-llama-33m");
  }
  const char* home = std::getenv("HOME");
  const std::filesystem::path cache = std::filesystem::path(home ? home : "/tmp") / ".cache/quantllm/synth";
  const std::string key = fmt::format("{:016x}", synth_tensor_key(0, spec + "|" + std::filesystem::absolute(o.tokenizer_from).string()));
  o.out = cache / key;
  o.weights = false;
  o.overwrite = true;
  std::error_code ec;
  std::filesystem::create_directories(cache, ec);
  if (!std::filesystem::exists(o.out / "config.json", ec)) write_synthetic_checkpoint(o);  // validates the shape too

  LoadedModel m;
  m.path = o.out;
  m.config = load_config(o.out);
  m.kind = "synth";
  m.weights = std::make_shared<SynthWeights>(m.config, o.seed, o.dtype == "f16" ? DType::F16 : DType::BF16);
  resolve_tied_head(m.config, *m.weights);
  check_tensors(m.config, *m.weights, spec);
  m.tokenizer = std::make_shared<Tokenizer>(Tokenizer::from_dir(o.out));
  return m;
}

}  // namespace quantllm
