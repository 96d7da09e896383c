// quantllm: the command-line entry point. Parses the subcommand, runs it, and maps errors to exit
// codes: 0 success, 1 a user error (one line on stderr), 2 an internal error.
#include "commands.h"
#include "quantllm/error.h"

#include <cstdio>
#include <exception>

int main(int argc, char** argv) {
  CLI::App app{"quantllm: quantize Hugging Face language models (GPTQ, AWQ, GGUF) and measure the cost"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "quantllm 0.1.0");
  std::vector<std::pair<CLI::App*, quantllm::cli::Runner>> runners;
  quantllm::cli::register_eval(app, runners);
  quantllm::cli::register_inspect(app, runners);
  quantllm::cli::register_quantize(app, runners);
  quantllm::cli::register_imatrix(app, runners);
  quantllm::cli::register_generate(app, runners);
  quantllm::cli::register_compare(app, runners);
  quantllm::cli::register_synth(app, runners);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "quantllm: %s\n", e.what());
    return 1;
  }
  try {
    for (auto& [sub, run] : runners) {
      if (sub->parsed()) run();
    }
  } catch (const quantllm::Error& e) {
    std::fprintf(stderr, "quantllm: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "quantllm: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "quantllm: internal error: %s\n", e.what());
    return 2;
  }
  return 0;
}
