// quantllm inspect PATH: architecture, hyperparameters, tokenizer, and every tensor.
#include "commands.h"
#include "common.h"
#include "core/progress.h"
#include "model/weights.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace quantllm::cli {

void register_inspect(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& runners) {
  auto* sub = app.add_subcommand("inspect", "Show a model's architecture, tokenizer and tensors");
  auto path = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  sub->add_option("PATH", *path, "HF directory, quantized directory or .gguf file")->required();
  sub->add_flag("--json", *json, "print one JSON object on stdout");
  runners.emplace_back(sub, [path, json] {
    Model m = open_model(*path);
    const ModelConfig& c = m.config;
    const Tokenizer& t = *m.tokenizer;
    nlohmann::json j;
    j["path"] = *path;
    j["kind"] = m.kind;
    j["architecture"] = std::string(c.arch->hf_architecture);
    j["hyperparameters"] = {{"hidden_size", c.hidden},        {"num_hidden_layers", c.n_layers},
                            {"num_attention_heads", c.n_heads}, {"num_key_value_heads", c.n_kv_heads},
                            {"head_dim", c.head_dim},         {"intermediate_size", c.ffn},
                            {"vocab_size", c.vocab},          {"max_position_embeddings", c.max_positions},
                            {"norm_eps", c.norm_eps},         {"rope_theta", c.rope_theta},
                            {"tie_word_embeddings", c.tied_embeddings}, {"qkv_bias", c.qkv_bias},
                            {"dtype", std::string(dtype_name(c.dtype))}};
    j["tokenizer"] = {{"kind", t.kind() == TokenizerKind::SentencePieceBPE ? "sentencepiece-bpe" : "byte-level-bpe"},
                      {"vocab_size", t.vocab_size()},
                      {"bos_id", t.bos_id() ? nlohmann::json(*t.bos_id()) : nlohmann::json(nullptr)},
                      {"eos_id", t.eos_id() ? nlohmann::json(*t.eos_id()) : nlohmann::json(nullptr)},
                      {"adds_bos", t.adds_bos()}};
    auto tensors = nlohmann::json::array();
    size_t total = 0;
    int64_t params = 0;
    for (const auto& name : m.weights->names()) {
      const Shape s = m.weights->shape(name);
      const size_t bytes = m.weights->stored_bytes(name);
      total += bytes;
      params += shape_numel(s);
      tensors.push_back({{"name", name}, {"shape", s}, {"format", m.weights->format(name)}, {"bytes", bytes}});
    }
    j["parameters"] = params;
    j["bytes"] = total;
    j["bits_per_weight"] = params ? 8.0 * double(total) / double(params) : 0.0;
    j["tensors"] = tensors;
    if (*json) {
      print_json(j);
      return;
    }
    fmt::print("{} ({}): {}\n", *path, m.kind, c.arch->hf_architecture);
    fmt::print("  hidden {}, layers {}, heads {} (kv {}), head_dim {}, ffn {}, vocab {}, dtype {}\n", c.hidden,
               c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.ffn, c.vocab, dtype_name(c.dtype));
    fmt::print("  tokenizer: {} tokens, bos {}, eos {}, adds BOS: {}\n", t.vocab_size(),
               t.bos_id() ? std::to_string(*t.bos_id()) : "none", t.eos_id() ? std::to_string(*t.eos_id()) : "none",
               t.adds_bos() ? "yes" : "no");
    fmt::print("  {} tensors, {} parameters, {} ({:.2f} bits per weight)\n", tensors.size(), params,
               format_bytes(total), j["bits_per_weight"].get<double>());
    for (const auto& e : tensors)
      fmt::print("  {:<56} {:<16} {:<12} {}\n", e["name"].get<std::string>(),
                 shape_str(e["shape"].get<Shape>()), e["format"].get<std::string>(),
                 format_bytes(e["bytes"].get<size_t>()));
  });
}

}  // namespace quantllm::cli
