// quantllm imatrix: compute an importance matrix (llama.cpp's imatrix GGUF format) from calibration text.
#include "commands.h"
#include "common.h"
#include "quantllm/eval.h"

#include <fmt/format.h>

namespace quantllm::cli {

void register_imatrix(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& runners) {
  struct Args {
    std::string model, data, out;
    ImatrixOptions o;
    int threads = 0;
    bool force = false;
  };
  auto a = std::make_shared<Args>();
  auto* sub = app.add_subcommand("imatrix", "Compute an importance matrix for GGUF quantization");
  sub->add_option("--model", a->model, "Hugging Face model directory")->required();
  sub->add_option("--data,-f", a->data, "calibration text file")->required();
  sub->add_option("--out,-o", a->out, "output file (imatrix GGUF)")->required();
  sub->add_option("--ctx,-c", a->o.ctx, "tokens per chunk")->capture_default_str();
  sub->add_option("--chunks", a->o.chunks, "chunks to process (0 = all)")->capture_default_str();
  sub->add_option("--device", a->o.device, "cpu | cuda (the forward passes on one GPU)")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  sub->add_option("--threads", a->threads, "threads (0 = all cores)");
  sub->add_flag("--force", a->force, "overwrite an existing output");
  runners.emplace_back(sub, [a] {
    apply_threads(a->threads);
    const Model m(a->model);
    Progress bar("imatrix", 1);
    const ImatrixResult r = compute_imatrix(m, a->data, a->out, a->o, a->force, bar.callback());
    bar.finish();
    fmt::print("wrote {} ({} tensors, {} chunks of {} tokens)\n", a->out, r.tensors, r.chunks, r.chunk_size);
  });
}

}  // namespace quantllm::cli
