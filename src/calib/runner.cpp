// Block-by-block calibration runner (see runner.h).
#include "calib/runner.h"

#include "core/error.h"

#include <algorithm>

namespace quantllm {

BlockRunner::BlockRunner(const LoadedModel& model, const CalibWindows& w, int64_t chunk_tokens)
    : model_(model), windows_(w.n), seqlen_(w.seqlen) {
  QL_ASSERT(w.n > 0 && w.seqlen > 0 && int64_t(w.tokens.size()) == w.n * w.seqlen);
  chunk_ = std::max<int64_t>(1, chunk_tokens / seqlen_);
  // Only the embedding part of the globals is needed here.
  const ModelConfig& c = model.config;
  GlobalWeights g;
  const ArchSpec& a = *c.arch;
  g.embed = model.weights->load(std::string(a.embed_tokens) + ".weight");
  if (a.pos == PosKind::Learned) g.positions = model.weights->load(std::string(a.embed_positions) + ".weight");
  if (c.word_embed_proj_dim != c.hidden && !a.project_in.empty())
    g.project_in = model.weights->load(std::string(a.project_in) + ".weight");
  hidden_ = embed(c, g, w.tokens, w.n, w.seqlen);
}

void BlockRunner::observe(int layer, const BlockWeights& w, PointObserver& obs) {
  const int64_t d = model_.config.hidden;
  for (int64_t s0 = 0; s0 < windows_; s0 += chunk_) {
    const int64_t ns = std::min(chunk_, windows_ - s0);
    Tensor x(Shape{ns * seqlen_, d});
    std::copy_n(hidden_.row(s0 * seqlen_), ns * seqlen_ * d, x.ptr());
    block_forward(model_.config, w, layer, x, ns, seqlen_, &obs);
  }
}

void BlockRunner::advance(int layer, const BlockWeights& w) {
  const int64_t d = model_.config.hidden;
  for (int64_t s0 = 0; s0 < windows_; s0 += chunk_) {
    const int64_t ns = std::min(chunk_, windows_ - s0);
    Tensor x(Shape{ns * seqlen_, d});
    std::copy_n(hidden_.row(s0 * seqlen_), ns * seqlen_ * d, x.ptr());
    block_forward(model_.config, w, layer, x, ns, seqlen_);
    std::copy_n(x.ptr(), ns * seqlen_ * d, hidden_.row(s0 * seqlen_));
  }
}

}  // namespace quantllm
