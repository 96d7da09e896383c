// Importance matrix collection through a calibration backend (see imatrix.h).
#include "methods/imatrix.h"

#include "methods/backend.h"
#include "core/error.h"
#include "core/fs.h"
#include "eval/perplexity.h"
#include "model/gguf_names.h"

#include <fmt/format.h>

namespace quantllm {

ImportanceMatrix compute_imatrix(const LoadedModel& model, const std::filesystem::path& text_file,
                                 const ImatrixOptions& opt,
                                 const std::function<void(int, int)>& progress) {
  const ModelConfig& c = model.config;
  // The same consecutive windows as perplexity (BOS first when the tokenizer adds one).
  const std::string text = read_text_file(text_file);
  Windows ev;
  try {
    ev = make_windows(*model.tokenizer, text, opt.ctx, opt.chunks);
  } catch (const Error& e) {
    fail("{}: {}", text_file.string(), e.what());
  }
  CalibWindows w;
  w.n = ev.n_windows;
  w.seqlen = ev.ctx;
  w.tokens = std::move(ev.tokens);
  const int64_t n = w.n;
  ImportanceMatrix im;
  im.datasets = {text_file.filename().string()};
  im.chunk_count = int32_t(n);
  im.chunk_size = int32_t(opt.ctx);
  BackendOptions bo;
  bo.device = parse_device(opt.device);
  const std::unique_ptr<CalibrationBackend> be = make_calibration_backend(model, w, bo);
  for (int i = 0; i < c.n_layers; ++i) {
    const BlockSpec& spec = c.block(i);
    be->load_block(i, false);
    const std::vector<PointSums> sums = be->collect_square_sums();
    for (size_t l = 0; l < spec.linears.size(); ++l) {
      const PointSums& s = sums[size_t(spec.linears[l].input)];
      const std::vector<float> sf(s.sum.begin(), s.sum.end());
      if (spec.linears[l].expert >= 0)  // one row of the stacked tensor's matrix per expert, with its own count
        im.accumulate(spec.gguf_prefix + spec.linears[l].gguf + ".weight", sf, s.tokens, spec.linears[l].expert,
                      c.n_experts);
      else
        im.accumulate(spec.gguf_prefix + spec.linears[l].gguf + ".weight", sf, s.tokens);
    }
    be->advance();
    if (progress) progress(i + 1, int(c.n_layers));
  }
  be->finish();
  return im;
}

namespace {
// The shape config.json gives an HF tensor name.
Shape expected_shape(const ModelConfig& c, const std::string& hf_name) {
  for (const auto& [n, shape] : expected_tensors(c))
    if (n == hf_name) return shape;
  QL_ASSERT(false, "no tensor {}", hf_name);
  return {};
}
}  // namespace

void check_imatrix_fits(const ImportanceMatrix& im, const ModelConfig& c, const std::string& source) {
  for (const auto& [name, e] : im.entries) {
    if (const auto members = gguf_expert_members(c, name); !members.empty()) {  // a MoE layer's stacked experts
      const int64_t in = c.n_experts > 0 ? int64_t(expected_shape(c, members.front()).back()) : 0;
      if (e.n_mat() != int64_t(members.size()) || e.n_per_row() != in)
        fail("{}: entry '{}' has statistics of {} experts × {} values, the model's layer has {} × {} (is the "
             "importance matrix from another model?)", source, name, e.n_mat(), e.n_per_row(), members.size(), in);
      continue;
    }
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
