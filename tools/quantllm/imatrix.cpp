// quantllm imatrix: compute an importance matrix (llama.cpp's imatrix GGUF format) from calibration text.
#include "commands.h"
#include "common.h"
#include "core/fs.h"
#include "core/progress.h"
#include "methods/imatrix.h"

#include <fmt/format.h>

namespace quantllm::cli {

void register_imatrix(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& runners) {
  struct Args {
    std::string model, data, out;
    int64_t ctx = 512, chunks = 128;
    int threads = 0;
    bool force = false;
  };
  auto a = std::make_shared<Args>();
  auto* sub = app.add_subcommand("imatrix", "Compute an importance matrix for GGUF quantization");
  sub->add_option("--model", a->model, "Hugging Face model directory")->required();
  sub->add_option("--data,-f", a->data, "calibration text file")->required();
  sub->add_option("--out,-o", a->out, "output file (imatrix GGUF)")->required();
  sub->add_option("--ctx,-c", a->ctx, "tokens per chunk")->capture_default_str();
  sub->add_option("--chunks", a->chunks, "chunks to process (0 = all)")->capture_default_str();
  sub->add_option("--threads", a->threads, "threads (0 = all cores)");
  sub->add_flag("--force", a->force, "overwrite an existing output");
  runners.emplace_back(sub, [a] {
    apply_threads(a->threads);
    check_output_path(a->out, a->force);
    Model m = open_model(a->model);
    Progress bar("imatrix", m.config.n_layers);
    const auto im = compute_imatrix(m, {a->data, a->ctx, a->chunks}, [&](int done, int) { bar.update(done); });
    bar.finish();
    im.save(a->out);
    fmt::print("wrote {} ({} tensors, {} chunks of {} tokens)\n", a->out, im.entries.size(), im.chunk_count,
               im.chunk_size);
  });
}

}  // namespace quantllm::cli
