// load_model and perplexity of the public API (include/quantllm/model.h).
#include "quantllm/model.h"

#include "core/fs.h"
#include "eval/perplexity.h"
#include "runtime/forward.h"
#include "export/gguf_export.h"
#include "export/quantized_model.h"

namespace quantllm {

namespace {

// A model whose weights are replaced by another source (e.g. a quantized view).
Model with_weights(const Model& m, const WeightSource& w) {
  struct Borrowed final : WeightSource {
    const WeightSource& s;
    explicit Borrowed(const WeightSource& src) : s(src) {}
    bool has(const std::string& n) const override { return s.has(n); }
    Shape shape(const std::string& n) const override { return s.shape(n); }
    Tensor load(const std::string& n) const override { return s.load(n); }
    std::vector<std::string> names() const override { return s.names(); }
    std::string format(const std::string& n) const override { return s.format(n); }
    size_t stored_bytes(const std::string& n) const override { return s.stored_bytes(n); }
  };
  Model out = m;
  out.weights = std::make_shared<Borrowed>(w);
  return out;
}

}  // namespace

Model load_model(const std::filesystem::path& path) {
  register_quantized_dir_reader();
  register_gguf_reader();
  return open_model(path);
}

double perplexity(const Model& model, const std::filesystem::path& text_file, PerplexityOptions opt) {
  return perplexity(model, *model.weights, text_file, opt);
}

double perplexity(const Model& model, const WeightSource& weights, const std::filesystem::path& text_file,
                  PerplexityOptions opt) {
  const Windows w = make_windows(*model.tokenizer, read_text_file(text_file), opt.ctx, opt.max_windows);
  FullModel fm(with_weights(model, weights));
  return perplexity(fm, w).ppl;
}

}  // namespace quantllm
