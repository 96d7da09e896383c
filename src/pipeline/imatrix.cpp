// Importance matrix collection through the block runner (see imatrix.h).
#include "pipeline/imatrix.h"

#include "calib/runner.h"
#include "core/error.h"
#include "core/fs.h"
#include "eval/perplexity.h"
#include "model/gguf_names.h"

#include <fmt/format.h>

namespace quantllm {

namespace {

// Σx² per input channel of each point of a block, in fixed chunk order.
class SquareSumObserver final : public PointObserver {
 public:
  bool observe(int point, Act x) override {
    const int64_t in = x.cols, rows = x.rows;
    auto& s = sums_[point];
    s.resize(size_t(in), 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = x.row(r);
      for (int64_t j = 0; j < in; ++j) s[size_t(j)] += double(xr[j]) * xr[j];
    }
    tokens_[point] += rows;
    return true;
  }
  std::map<int, std::vector<double>> sums_;
  std::map<int, int64_t> tokens_;
};

}  // namespace

ImportanceMatrix compute_imatrix(const Model& model, const ImatrixOptions& opt,
                                 const std::function<void(int, int)>& progress) {
  const ModelConfig& c = model.config;
  // The same consecutive windows as perplexity (BOS first when the tokenizer adds one).
  const std::string text = read_text_file(opt.data);
  Windows ev;
  try {
    ev = make_windows(*model.tokenizer, text, opt.ctx, opt.chunks);
  } catch (const Error& e) {
    fail("{}: {}", opt.data, e.what());
  }
  CalibWindows w;
  w.n = ev.n_windows;
  w.seqlen = ev.ctx;
  w.tokens = std::move(ev.tokens);
  const int64_t n = w.n;
  ImportanceMatrix im;
  im.datasets = {std::filesystem::path(opt.data).filename().string()};
  im.chunk_count = int32_t(n);
  im.chunk_size = int32_t(opt.ctx);
  BlockRunner runner(model, w);
  for (int i = 0; i < c.n_layers; ++i) {
    const BlockWeights bw = runner.load(i);
    const BlockSpec& spec = c.block(i);
    SquareSumObserver obs;
    runner.observe(i, bw, obs);
    for (size_t l = 0; l < spec.linears.size(); ++l) {
      const int point = spec.linears[l].input;
      const auto& s = obs.sums_.at(point);
      std::vector<float> sf(s.begin(), s.end());
      im.accumulate(spec.gguf_prefix + spec.linears[l].gguf + ".weight", sf, obs.tokens_.at(point));
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
    for (int i = 0; i < c.n_layers && !found; ++i) {
      const BlockSpec& spec = c.block(i);
      for (size_t l = 0; l < spec.linears.size() && !found; ++l)
        if (spec.linear_tensor(int(l)) + ".weight" == *hf) {
          found = true;
          if (e.n_per_row() != spec.linears[l].in)
            fail("{}: entry '{}' has {} values per row, the model's tensor has rows of {} (is the importance "
                 "matrix from another model?)", source, name, e.n_per_row(), spec.linears[l].in);
        }
    }
  }
}

}  // namespace quantllm
