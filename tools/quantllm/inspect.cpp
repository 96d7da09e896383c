// quantllm inspect PATH: architecture, hyperparameters, tokenizer, and every tensor.
#include "commands.h"
#include "common.h"
#include "quantllm/model.h"
#include "quantllm/util.h"

#include <fmt/format.h>

namespace quantllm::cli {

void register_inspect(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& runners) {
  auto* sub = app.add_subcommand("inspect", "Show a model's architecture, tokenizer and tensors");
  auto path = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  sub->add_option("PATH", *path, "HF directory, quantized directory or .gguf file")->required();
  sub->add_flag("--json", *json, "print one JSON object on stdout");
  runners.emplace_back(sub, [path, json] {
    const Model m(*path);
    const ModelInfo c = m.info();
    const TokenizerInfo t = m.tokenizer_info();
    nlohmann::json j;
    j["path"] = *path;
    j["kind"] = m.kind();
    j["architecture"] = c.architecture;
    j["hyperparameters"] = {{"hidden_size", c.hidden_size},        {"num_hidden_layers", c.num_hidden_layers},
                            {"num_attention_heads", c.num_attention_heads}, {"num_key_value_heads", c.num_key_value_heads},
                            {"head_dim", c.head_dim},         {"intermediate_size", c.intermediate_size},
                            {"vocab_size", c.vocab_size},          {"max_position_embeddings", c.max_position_embeddings},
                            {"norm_eps", c.norm_eps},         {"rope_theta", c.rope_theta},
                            {"tie_word_embeddings", c.tie_word_embeddings}, {"qkv_bias", c.qkv_bias},
                            {"dtype", c.dtype}};
    j["serving"] = c.serving;
    j["tokenizer"] = {{"kind", t.kind},
                      {"vocab_size", t.vocab_size},
                      {"bos_id", t.bos_id ? nlohmann::json(*t.bos_id) : nlohmann::json(nullptr)},
                      {"eos_id", t.eos_id ? nlohmann::json(*t.eos_id) : nlohmann::json(nullptr)},
                      {"adds_bos", t.adds_bos}};
    auto tensors = nlohmann::json::array();
    uint64_t total = 0;
    int64_t params = 0;
    for (const TensorInfo& ti : m.tensors()) {
      int64_t n = 1;
      for (int64_t d : ti.shape) n *= d;
      total += ti.bytes;
      params += n;
      tensors.push_back({{"name", ti.name}, {"shape", ti.shape}, {"format", ti.format}, {"bytes", ti.bytes}});
    }
    j["parameters"] = params;
    j["bytes"] = total;
    j["bits_per_weight"] = params ? 8.0 * double(total) / double(params) : 0.0;
    j["tensors"] = tensors;
    if (*json) {
      print_json(j);
      return;
    }
    fmt::print("{} ({}): {}\n", *path, m.kind(), c.architecture);
    fmt::print("  hidden {}, layers {}, heads {} (kv {}), head_dim {}, ffn {}, vocab {}, dtype {}\n", c.hidden_size,
               c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.intermediate_size,
               c.vocab_size, c.dtype);
    fmt::print("  tokenizer: {} tokens, bos {}, eos {}, adds BOS: {}\n", t.vocab_size,
               t.bos_id ? std::to_string(*t.bos_id) : "none", t.eos_id ? std::to_string(*t.eos_id) : "none",
               t.adds_bos ? "yes" : "no");
    for (const auto& s : c.serving) fmt::print("  serving: {}\n", s);
    fmt::print("  {} tensors, {} parameters, {} ({:.2f} bits per weight)\n", tensors.size(), params,
               format_bytes(total), j["bits_per_weight"].get<double>());
    for (const auto& e : tensors)
      fmt::print("  {:<56} {:<16} {:<12} {}\n", e["name"].get<std::string>(),
                 shape_text(e["shape"].get<std::vector<int64_t>>()), e["format"].get<std::string>(),
                 format_bytes(e["bytes"].get<uint64_t>()));
  });
}

}  // namespace quantllm::cli
