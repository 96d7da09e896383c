// Importance matrix collection through the block runner (see imatrix.h).
#include "pipeline/imatrix.h"

#include "calib/runner.h"
#include "core/error.h"
#include "core/fs.h"
#include "model/gguf_names.h"

#include <fmt/format.h>

namespace quantllm {

namespace {

// Σx² per input channel of each block input, in fixed chunk order.
class SquareSumObserver final : public BlockObserver {
 public:
  explicit SquareSumObserver(const ModelConfig& c) : c_(c) {}
  bool observe(int, LinearInput which, const Tensor& x) override {
    const int64_t in = x.shape.back(), rows = x.numel() / in;
    auto& s = sums_[which];
    s.resize(size_t(in), 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = x.row(r);
      for (int64_t j = 0; j < in; ++j) s[size_t(j)] += double(xr[j]) * xr[j];
    }
    tokens_[which] += rows;
    return true;
  }
  std::map<LinearInput, std::vector<double>> sums_;
  std::map<LinearInput, int64_t> tokens_;

 private:
  const ModelConfig& c_;
};

}  // namespace

ImportanceMatrix compute_imatrix(const Model& model, const ImatrixOptions& opt,
                                 const std::function<void(int, int)>& progress) {
  const ModelConfig& c = model.config;
  const std::string text = read_text_file(opt.data);
  const auto ids = model.tokenizer->encode(text, false);
  const bool bos = model.tokenizer->adds_bos() && model.tokenizer->bos_id();
  const int64_t span = bos ? opt.ctx - 1 : opt.ctx;
  if (opt.ctx < 2) fail("--ctx must be at least 2");
  int64_t n = int64_t(ids.size()) / span;
  if (opt.chunks > 0) n = std::min(n, opt.chunks);
  if (n == 0) fail("{}: {} tokens, fewer than one chunk of {}", opt.data, ids.size(), opt.ctx);
  CalibWindows w;
  w.n = n;
  w.seqlen = opt.ctx;
  for (int64_t i = 0; i < n; ++i) {
    if (bos) w.tokens.push_back(*model.tokenizer->bos_id());
    w.tokens.insert(w.tokens.end(), ids.begin() + i * span, ids.begin() + (i + 1) * span);
  }
  ImportanceMatrix im;
  im.datasets = {std::filesystem::path(opt.data).filename().string()};
  im.chunk_count = int32_t(n);
  im.chunk_size = int32_t(opt.ctx);
  BlockRunner runner(model, w);
  for (int i = 0; i < c.n_layers; ++i) {
    const BlockWeights bw = runner.load(i);
    SquareSumObserver obs(c);
    runner.observe(i, bw, obs);
    for (int l = 0; l < kNumLinear; ++l) {
      const auto lin = Linear(l);
      if (!c.has_linear(lin)) continue;
      const auto& s = obs.sums_.at(linear_input_of(lin));
      std::vector<float> sf(s.begin(), s.end());
      const auto name = hf_to_gguf_name(c, c.linear_tensor(i, lin) + ".weight");
      im.accumulate(*name, sf, obs.tokens_.at(linear_input_of(lin)));
    }
    runner.advance(i, bw);
    if (progress) progress(i + 1, int(c.n_layers));
  }
  return im;
}

void check_imatrix_fits(const ImportanceMatrix& im, const ModelConfig& c, const std::string& source) {
  for (const auto& [name, e] : im.entries) {
    const auto hf = gguf_to_hf_name(c, name);
    if (!hf) fail("{}: entry '{}' is not a tensor of this model (is the importance matrix from another model?)",
                  source, name);
    bool found = false;
    for (int i = 0; i < c.n_layers && !found; ++i)
      for (int l = 0; l < kNumLinear && !found; ++l)
        if (c.has_linear(Linear(l)) && c.linear_tensor(i, Linear(l)) + ".weight" == *hf) {
          found = true;
          if (e.n_per_row() != c.linear_in(Linear(l)))
            fail("{}: entry '{}' has {} values per row, the model's tensor has rows of {} (is the importance "
                 "matrix from another model?)", source, name, e.n_per_row(), c.linear_in(Linear(l)));
        }
  }
}

}  // namespace quantllm
