// GGUF writer (metadata + quantized tensors) and reader (GGUF file → LoadedModel), see gguf_model.h.
#include "formats/gguf_model.h"

#include "core/error.h"
#include "formats/open.h"
#include "core/fs.h"
#include "core/threads.h"
#include "io/gguf.h"
#include "model/gguf_names.h"

#include <fmt/format.h>
#include <cstring>
#include <nlohmann/json.hpp>

namespace quantllm {

using ggml::GgmlType;
using json = nlohmann::json;

namespace {

constexpr uint32_t kQuantizationVersion = 2;  // GGML_QNT_VERSION

// The period p with layer i global iff (i + 1) % p == 0 (llama.cpp's swa pattern), or 0 when the layers
// follow none.
uint32_t sliding_period(const ModelConfig& c) {
  for (int64_t p = 1; p <= c.n_layers + 1; ++p) {
    bool ok = true;
    for (int64_t i = 0; i < c.n_layers && ok; ++i) ok = c.layer_sliding(i) == ((i + 1) % p != 0);
    if (ok) return uint32_t(p);
  }
  return 0;
}

// Sliding windows, per-layer RoPE bases and soft-capping, under llama.cpp's keys (gemma2 / gemma3,
// Mistral's window). The layer pattern: llama.cpp's u32 period where one fits, else one bool per layer
// (ours; llama.cpp reads only the period).
void add_attention_variants(GGUFWriter& g, const std::string& a, const ModelConfig& c) {
  if (c.sliding_window > 0) {
    g.add_u32(a + ".attention.sliding_window", uint32_t(c.sliding_window));
    if (!c.sliding_layers.empty()) {
      if (const uint32_t p = sliding_period(c)) {
        g.add_u32(a + ".attention.sliding_window_pattern", p);
      } else {
        std::vector<bool> layers(c.sliding_layers.begin(), c.sliding_layers.end());
        g.add_array(a + ".attention.sliding_window_pattern", std::move(layers));
      }
    }
  }
  if (c.rope_theta_sliding > 0) g.add_f32(a + ".rope.freq_base_swa", float(c.rope_theta_sliding));
  if (c.attn_scale > 0) g.add_f32(a + ".attention.scale", float(c.attn_scale));
  if (c.attn_softcap > 0) g.add_f32(a + ".attn_logit_softcapping", float(c.attn_softcap));
  if (c.final_softcap > 0) g.add_f32(a + ".final_logit_softcapping", float(c.final_softcap));
}

// A stacked MoE tensor's experts, one after another: [n_experts · out, in].
Tensor stack_experts(const WeightSource& w, const PlannedTensor& p) {
  Tensor t(Shape{p.shape[0] * p.shape[1], p.shape[2]});
  const int64_t per = p.shape[1] * p.shape[2];
  for (size_t e = 0; e < p.stack.size(); ++e) {
    const Tensor x = w.load(p.stack[e]);
    QL_ASSERT(x.numel() == per, "{}: {} values, {} expected", p.stack[e], x.numel(), per);
    std::copy_n(x.ptr(), per, t.ptr() + int64_t(e) * per);
  }
  return t;
}

void add_hparams(GGUFWriter& g, const ModelConfig& c) {
  const std::string a(c.arch->gguf_arch);
  g.add_u32(a + ".context_length", uint32_t(c.max_positions));
  g.add_u32(a + ".embedding_length", uint32_t(c.hidden));
  g.add_u32(a + ".block_count", uint32_t(c.n_layers));
  g.add_u32(a + ".feed_forward_length", uint32_t(c.ffn));
  g.add_u32(a + ".attention.head_count", uint32_t(c.n_heads));
  g.add_u32(a + ".vocab_size", uint32_t(c.vocab));
  if (c.arch->norm == NormKind::RMSNorm) {
    g.add_u32(a + ".attention.head_count_kv", uint32_t(c.n_kv_heads));
    g.add_f32(a + ".attention.layer_norm_rms_epsilon", float(c.norm_eps));
    g.add_f32(a + ".rope.freq_base", float(c.rope_theta));
    g.add_u32(a + ".rope.dimension_count", uint32_t(c.rope_dim()));  // Phi: the rotated part of a head
    g.add_u32(a + ".attention.key_length", uint32_t(c.head_dim));
    g.add_u32(a + ".attention.value_length", uint32_t(c.head_dim));
    if (c.rope_scaling == RopeScaling::Linear) {
      g.add_string(a + ".rope.scaling.type", "linear");
      g.add_f32(a + ".rope.scaling.factor", float(c.rope_factor));
    }  // llama3 scaling: the tensor rope_freqs.weight (write_gguf), no scaling keys, as llama.cpp's converter
    if (c.rope_scaling == RopeScaling::LongRope) {  // + the tensors rope_factors_{long,short}.weight (write_gguf)
      g.add_u32(a + ".rope.scaling.original_context_length", uint32_t(c.rope_original_max_positions));
      g.add_f32(a + ".rope.scaling.attn_factor", float(c.rope_attn_factor));
    }
    add_attention_variants(g, a, c);
    if (c.n_experts > 0) {  // llama.cpp's MoE keys (qwen3moe: the experts' width apart from the dense one)
      g.add_u32(a + ".expert_count", uint32_t(c.n_experts));
      g.add_u32(a + ".expert_used_count", uint32_t(c.n_experts_used));
      g.add_u32(a + ".expert_feed_forward_length", uint32_t(c.moe_ffn));
      g.add_bool(a + ".expert_weights_norm", c.norm_topk_prob);
    }

  } else {  // OPT: our own keys (docs/gguf.md)
    g.add_f32(a + ".attention.layer_norm_epsilon", float(c.norm_eps));
    g.add_u32(a + ".word_embed_proj_dim", uint32_t(c.word_embed_proj_dim));
    g.add_bool(a + ".norm_before", c.norm_before);
    g.add_bool(a + ".final_norm", c.final_norm);
    g.add_u32(a + ".position_offset", uint32_t(c.arch->position_offset));
  }
}

void add_tokenizer(GGUFWriter& g, const LoadedModel& m) {
  const Tokenizer& t = *m.tokenizer;
  const int32_t n = t.vocab_size();
  // A model whose embedding has more rows than the tokenizer has tokens (padded vocabularies; the
  // synthetic checkpoints of `quantllm synth`) gets "[PAD<id>]" tokens of type UNUSED for the rest,
  // as llama.cpp's converter writes them: llama.cpp sizes the embedding by the token list.
  const int32_t total = int32_t(std::max<int64_t>(n, m.config.vocab));
  std::vector<std::string> tokens(static_cast<size_t>(total));
  std::vector<int32_t> types(static_cast<size_t>(total));
  for (int32_t i = 0; i < n; ++i) {
    tokens[size_t(i)] = t.token(i);
    types[size_t(i)] = int32_t(t.token_type(i));
  }
  constexpr int32_t kUnusedTokenType = 5;  // llama.cpp's LLAMA_TOKEN_TYPE_UNUSED
  for (int32_t i = n; i < total; ++i) tokens[size_t(i)] = fmt::format("[PAD{}]", i), types[size_t(i)] = kUnusedTokenType;
  if (t.kind() == TokenizerKind::SentencePieceBPE) {
    g.add_string("tokenizer.ggml.model", "llama");
    g.add_string("tokenizer.ggml.pre", "default");
    std::vector<float> scores(static_cast<size_t>(total), 0.0f);
    for (int32_t i = 0; i < n; ++i) scores[size_t(i)] = t.score(i);
    g.add_array("tokenizer.ggml.tokens", tokens);
    g.add_array("tokenizer.ggml.scores", scores);
    g.add_array("tokenizer.ggml.token_type", types);
  } else {
    g.add_string("tokenizer.ggml.model", "gpt2");
    g.add_string("tokenizer.ggml.pre", t.pre_tokenizer_name());
    g.add_array("tokenizer.ggml.tokens", tokens);
    g.add_array("tokenizer.ggml.token_type", types);
    g.add_array("tokenizer.ggml.merges", t.merges());
  }
  if (auto id = t.bos_id()) g.add_u32("tokenizer.ggml.bos_token_id", uint32_t(*id));
  if (auto id = t.eos_id()) g.add_u32("tokenizer.ggml.eos_token_id", uint32_t(*id));
  if (auto id = t.unk_id()) g.add_u32("tokenizer.ggml.unknown_token_id", uint32_t(*id));
  if (auto id = t.pad_id()) g.add_u32("tokenizer.ggml.padding_token_id", uint32_t(*id));
  g.add_bool("tokenizer.ggml.add_bos_token", t.adds_bos());
  g.add_bool("tokenizer.ggml.add_eos_token", t.adds_eos());
  if (!t.chat_template().empty()) g.add_string("tokenizer.chat_template", t.chat_template());
  std::error_code ec;
  if (std::filesystem::exists(m.path / "tokenizer.json", ec))
    g.add_string("tokenizer.huggingface.json", read_file(m.path / "tokenizer.json"));
}

}  // namespace

uint64_t write_gguf(const LoadedModel& model, const WeightSource& weights, const std::vector<PlannedTensor>& plan,
                    const std::filesystem::path& path, const GGUFExportOptions& opt) {
  const ModelConfig& c = model.config;
  check_output_path(path, opt.overwrite);
  GGUFWriter g;
  g.add_string("general.architecture", std::string(c.arch->gguf_arch));
  g.add_string("general.name", model.path.filename().string());
  g.add_u32("general.file_type", opt.ftype);
  g.add_u32("general.quantization_version", kQuantizationVersion);
  g.add_string("general.quantized_by", "quantllm 0.1.0");
  add_hparams(g, c);
  add_tokenizer(g, model);
  if (c.rope_scaling == RopeScaling::Llama3 && c.arch->norm == NormKind::RMSNorm) {
    // llama.cpp divides RoPE frequency i by rope_freqs[i]: 1 for short wavelengths (< original context /
    // high_freq_factor), the factor for long ones (> original context / low_freq_factor), and in between
    // 1 / ((1 − s) / factor + s) with s = (original context / wavelength − low) / (high − low).
    const std::vector<double> d = llama3_rope_freq_factors(c);
    const std::vector<float> f(d.begin(), d.end());
    std::vector<uint8_t> bytes(f.size() * sizeof(float));
    std::memcpy(bytes.data(), f.data(), bytes.size());
    g.add_tensor("rope_freqs.weight", uint32_t(GgmlType::F32), {int64_t(f.size())}, std::move(bytes));
  }
  if (c.rope_scaling == RopeScaling::LongRope) {  // llama.cpp's Phi-3: per-frequency divisors, F32 [rope_dim / 2]
    for (auto [name, v] : {std::pair{"rope_factors_long.weight", &c.rope_long_factor},
                           std::pair{"rope_factors_short.weight", &c.rope_short_factor}}) {
      const std::vector<float> f(v->begin(), v->end());
      std::vector<uint8_t> bytes(f.size() * sizeof(float));
      std::memcpy(bytes.data(), f.data(), bytes.size());
      g.add_tensor(name, uint32_t(GgmlType::F32), {int64_t(f.size())}, std::move(bytes));
    }
  }
  if (opt.imatrix) {
    g.add_string("quantize.imatrix.file", "imatrix");
    g.add_i32("quantize.imatrix.entries_count", int32_t(opt.imatrix->entries.size()));
    g.add_i32("quantize.imatrix.chunks_count", opt.imatrix->chunk_count);
  }
  size_t done = 0;
  for (const auto& p : plan) {
    if (opt.progress) opt.progress(done, plan.size(), p.gguf_name);
    Tensor t = p.stack.empty() ? weights.load(p.hf_name) : stack_experts(weights, p);
    if (const int64_t heads = gguf_rope_permute_heads(c, p.hf_name)) t = permute_rope_rows(t, heads, false);
    if (gguf_norm_shifted(c, p.gguf_name))
      for (float& v : t.data) v += 1.0f;  // llama.cpp's Gemma convention: the gain itself, 1 + w
    for (float v : t.data)
      if (!std::isfinite(v)) fail("tensor '{}' contains NaN or Inf", p.hf_name);
    // Matrices of the tensor (the experts of a stacked one), each quantized with its own importance row.
    const int64_t n_per_row = p.ne[0], n_mat = p.stack.empty() ? 1 : int64_t(p.stack.size());
    const int64_t nrows = t.numel() / n_per_row / n_mat;
    std::vector<float> imat;
    if (opt.imatrix && ggml::traits(p.type).is_quantized && opt.imatrix->has(p.gguf_name)) {
      imat = opt.imatrix->values(p.gguf_name);
      if (int64_t(imat.size()) != n_per_row * n_mat)
        fail("importance matrix entry '{}' has {} values, the tensor's {} matri{} of rows of {} need {} (is it from "
             "another model?)", p.gguf_name, imat.size(), n_mat, n_mat == 1 ? "x" : "ces", n_per_row, n_per_row * n_mat);
    }
    std::vector<uint8_t> bytes(p.bytes);
    const size_t mat_bytes = p.bytes / size_t(n_mat);
    for (int64_t m = 0; m < n_mat; ++m) {
      const float* rows = t.ptr() + m * nrows * n_per_row;
      const float* im = imat.empty() ? nullptr : imat.data() + m * n_per_row;
      uint8_t* dst = bytes.data() + size_t(m) * mat_bytes;
      if (opt.rounder) {
        opt.rounder(p, m, rows, nrows, im, dst);
      } else {
        const size_t written = ggml::quantize_rows(p.type, rows, dst, nrows, n_per_row, im);
        QL_ASSERT(written == mat_bytes, "{}: {} bytes written, {} planned", p.gguf_name, written, mat_bytes);
      }
    }
    g.add_tensor(p.gguf_name, uint32_t(p.type), p.ne, std::move(bytes));
    ++done;
  }
  if (opt.progress) opt.progress(done, plan.size(), "");
  g.write(path);
  return std::filesystem::file_size(path);
}

namespace {

// Weights of a GGUF file by HF name, dequantized (and q/k rows restored) on load.
class GGUFWeights final : public WeightSource {
 public:
  GGUFWeights(std::shared_ptr<GGUFFile> f, const ModelConfig& c) : file_(std::move(f)), c_(c) {
    for (const auto& t : file_->tensors()) {
      if (t.name == "rope_freqs.weight" || t.name == "rope_factors_long.weight" || t.name == "rope_factors_short.weight")
        continue;
      if (!ggml::find_type(t.type))
        fail("{}: tensor '{}' has ggml type {} which quantllm does not read", file_->name(), t.name, t.type);
      if (const auto members = gguf_expert_members(c_, t.name); !members.empty()) {
        // A layer's experts stacked: ne {in, out, n_experts}; expert e is the e-th [out, in] block of rows.
        if (t.ne.size() != 3 || t.ne[2] != int64_t(members.size()))
          fail("{}: tensor '{}' must hold {} experts (ne[2]), has shape {}", file_->name(), t.name, members.size(),
               shape_str(t.shape()));
        const size_t per = size_t(t.ne[1]) * ggml::row_size(GgmlType(t.type), t.ne[0]);
        for (size_t e = 0; e < members.size(); ++e)
          by_hf_[members[e]] = View{&t, t.data + e * per, per, Shape{t.ne[1], t.ne[0]}};
        continue;
      }
      const auto hf = gguf_to_hf_name(c_, t.name);
      if (!hf) fail("{}: tensor '{}' is not used by architecture {}", file_->name(), t.name, c_.arch->gguf_arch);
      by_hf_[*hf] = View{&t, t.data, t.nbytes, t.shape()};
    }
  }
  bool has(const std::string& n) const override { return by_hf_.count(n) != 0; }
  Shape shape(const std::string& n) const override { return view(n).shape; }
  std::vector<std::string> names() const override {
    std::vector<std::string> v;
    for (const auto& [k, _] : by_hf_) v.push_back(k);
    return v;
  }
  Tensor load(const std::string& n) const override {
    const View& v = view(n);
    Tensor out(v.shape);
    const int64_t n_per_row = v.shape.back();
    ggml::dequantize_rows(GgmlType(v.t->type), v.data, out.ptr(), out.numel() / n_per_row, n_per_row);
    if (const int64_t heads = gguf_rope_permute_heads(c_, n)) out = permute_rope_rows(out, heads, true);
    if (gguf_norm_shifted(c_, v.t->name))
      for (float& x : out.data) x -= 1.0f;  // back to transformers' w of 1 + w
    return out;
  }
  std::string format(const std::string& n) const override { return std::string(ggml::find_type(view(n).t->type)->name); }
  size_t stored_bytes(const std::string& n) const override { return view(n).nbytes; }
  std::optional<PackedWeight> packed(const std::string& n) const override {
    const View& v = view(n);
    if (v.shape.size() != 2) return std::nullopt;
    PackedWeight p;
    p.shape = v.shape;
    p.ggml_type = v.t->type;
    p.data = v.data;
    p.nbytes = v.nbytes;
    p.rope_heads = gguf_rope_permute_heads(c_, n);
    return p;
  }

 private:
  // An HF tensor in the file: a whole GGUF tensor, or one expert's slice of a stacked one.
  struct View {
    const GGUFTensorInfo* t = nullptr;
    const uint8_t* data = nullptr;
    size_t nbytes = 0;
    Shape shape;  // HF orientation
  };
  const View& view(const std::string& n) const {
    auto it = by_hf_.find(n);
    if (it == by_hf_.end()) fail("{}: tensor '{}' not found", file_->name(), n);
    return it->second;
  }
  std::shared_ptr<GGUFFile> file_;
  ModelConfig c_;
  std::map<std::string, View> by_hf_;
};

template <typename T>
T get_num(const GGUFFile& f, const std::string& key) {
  const GGUFValue& v = f.get(key);
  if (auto p = v.get_if<uint32_t>()) return T(*p);
  if (auto p = v.get_if<int32_t>()) return T(*p);
  if (auto p = v.get_if<uint64_t>()) return T(*p);
  if (auto p = v.get_if<int64_t>()) return T(*p);
  if (auto p = v.get_if<float>()) return T(*p);
  if (auto p = v.get_if<double>()) return T(*p);
  fail("{}: key '{}' must be a number", f.name(), key);
}

// The reverse of add_attention_variants. Without a pattern key the architecture's default applies
// (gemma2: every 2nd layer global, gemma3: every 6th), as in llama.cpp.
void read_attention_variants(const GGUFFile& f, const std::string& a, ModelConfig& c) {
  if (f.find(a + ".attention.sliding_window")) c.sliding_window = get_num<int64_t>(f, a + ".attention.sliding_window");
  if (c.sliding_window > 0) {
    int64_t period = c.arch->default_sliding_pattern;
    if (const GGUFValue* v = f.find(a + ".attention.sliding_window_pattern")) {
      if (const auto* layers = v->get_array_if<bool>()) {
        if (int64_t(layers->size()) != c.n_layers)
          fail("{}: {}.attention.sliding_window_pattern lists {} layers, the model has {}", f.name(), a, layers->size(),
               c.n_layers);
        c.sliding_layers.assign(layers->begin(), layers->end());
        period = 0;
      } else {
        period = get_num<int64_t>(f, a + ".attention.sliding_window_pattern");
      }
    }
    if (period > 0)
      for (int64_t i = 0; i < c.n_layers; ++i) c.sliding_layers.push_back((i + 1) % period != 0);
  }
  if (f.find(a + ".rope.freq_base_swa")) c.rope_theta_sliding = get_num<double>(f, a + ".rope.freq_base_swa");
  else if (c.sliding_window > 0) c.rope_theta_sliding = c.arch->gguf_default_swa_theta;  // as llama.cpp assumes
  if (f.find(a + ".attention.scale")) c.attn_scale = get_num<double>(f, a + ".attention.scale");
  if (f.find(a + ".attn_logit_softcapping")) c.attn_softcap = get_num<double>(f, a + ".attn_logit_softcapping");
  if (f.find(a + ".final_logit_softcapping")) c.final_softcap = get_num<double>(f, a + ".final_logit_softcapping");
}

ModelConfig config_from_gguf(const GGUFFile& f) {
  const std::string arch = f.get_as<std::string>("general.architecture");
  ModelConfig c;
  // "llama" → LlamaForCausalLM (the first row), or MixtralForCausalLM when the file has experts.
  const bool moe = f.find(arch + ".expert_count") && get_num<int64_t>(f, arch + ".expert_count") > 0;
  for (const auto& row : arch_table())
    if (row.gguf_arch == arch && !c.arch && row.moe.router.empty() != moe) c.arch = &row;
  for (const auto& row : arch_table())
    if (row.gguf_arch == arch && !c.arch) c.arch = &row;
  if (!c.arch) {
    std::string known;
    for (const auto& row : arch_table())
      if (known.find(std::string(row.gguf_arch)) == std::string::npos) known += (known.empty() ? "" : ", ") + std::string(row.gguf_arch);
    fail("{}: GGUF architecture '{}' is not supported (supported: {})", f.name(), arch, known);
  }
  c.hidden = get_num<int64_t>(f, arch + ".embedding_length");
  c.n_layers = get_num<int64_t>(f, arch + ".block_count");
  c.ffn = get_num<int64_t>(f, arch + ".feed_forward_length");
  c.n_heads = get_num<int64_t>(f, arch + ".attention.head_count");
  c.max_positions = get_num<int64_t>(f, arch + ".context_length");
  c.vocab = int64_t(f.get("tokenizer.ggml.tokens").array_size());
  if (f.find(arch + ".vocab_size")) c.vocab = get_num<int64_t>(f, arch + ".vocab_size");
  if (c.arch->norm == NormKind::RMSNorm) {
    c.n_kv_heads = f.find(arch + ".attention.head_count_kv") ? get_num<int64_t>(f, arch + ".attention.head_count_kv")
                                                             : c.n_heads;
    c.norm_eps = get_num<double>(f, arch + ".attention.layer_norm_rms_epsilon");
    c.rope_theta = f.find(arch + ".rope.freq_base") ? get_num<double>(f, arch + ".rope.freq_base") : 10000.0;
    c.head_dim = f.find(arch + ".attention.key_length") ? get_num<int64_t>(f, arch + ".attention.key_length")
                                                        : c.hidden / c.n_heads;
    if (f.find(arch + ".rope.dimension_count")) {  // a partial rotary (Phi) when below head_dim
      const int64_t rot = get_num<int64_t>(f, arch + ".rope.dimension_count");
      if (rot <= 0 || rot > c.head_dim || rot % 2 != 0)
        fail("{}: {}.rope.dimension_count {} must be even and at most the head size {}", f.name(), arch, rot, c.head_dim);
      c.rotary_dim = rot < c.head_dim ? rot : 0;
    }
    if (const GGUFValue* s = f.find(arch + ".rope.scaling.type")) {
      const auto* type = s->get_if<std::string>();
      if (type && *type == "linear") {
        c.rope_scaling = RopeScaling::Linear;
        c.rope_factor = get_num<double>(f, arch + ".rope.scaling.factor");
      } else if (type && *type != "none") {
        fail("{}: rope scaling '{}' is not supported", f.name(), *type);
      }
    }
    read_attention_variants(f, arch, c);
    if (moe && !c.arch->moe.router.empty()) {  // a layer is MoE when it has a router (qwen3moe may start dense)
      c.n_experts = get_num<int64_t>(f, arch + ".expert_count");
      c.n_experts_used = get_num<int64_t>(f, arch + ".expert_used_count");
      c.moe_ffn = f.find(arch + ".expert_feed_forward_length") ? get_num<int64_t>(f, arch + ".expert_feed_forward_length")
                                                                : c.ffn;  // Mixtral's converter: the experts' width
      c.norm_topk_prob = true;  // llama.cpp renormalizes unless told otherwise
      if (const GGUFValue* v = f.find(arch + ".expert_weights_norm"))
        if (const auto* b = v->get_if<bool>()) c.norm_topk_prob = *b;
      if (c.n_experts_used < 1 || c.n_experts_used > c.n_experts)
        fail("{}: {}.expert_used_count {} must be between 1 and expert_count {}", f.name(), arch, c.n_experts_used,
             c.n_experts);
      for (int64_t i = 0; i < c.n_layers; ++i)
        c.moe_layers.push_back(f.find_tensor(fmt::format("blk.{}.ffn_gate_inp.weight", i)) != nullptr);
    }
    c.word_embed_proj_dim = c.hidden;
    c.qkv_bias = f.find_tensor("blk.0.attn_q.bias") != nullptr;
    c.o_bias = f.find_tensor("blk.0.attn_output.bias") != nullptr;
    c.mlp_bias = f.find_tensor("blk.0.ffn_up.bias") != nullptr;
  } else {
    c.n_kv_heads = c.n_heads;
    c.head_dim = c.hidden / c.n_heads;
    c.norm_eps = get_num<double>(f, arch + ".attention.layer_norm_epsilon");
    c.word_embed_proj_dim = get_num<int64_t>(f, arch + ".word_embed_proj_dim");
    c.norm_before = f.get_as<bool>(arch + ".norm_before");
    c.final_norm = f.get_as<bool>(arch + ".final_norm");
    c.qkv_bias = c.o_bias = c.mlp_bias = f.find_tensor("blk.0.attn_q.bias") != nullptr;
  }
  if (const GGUFTensorInfo* t = f.find_tensor("rope_freqs.weight")) {
    if (t->type != uint32_t(GgmlType::F32) || t->ne.size() != 1 || t->ne[0] != c.head_dim / 2)
      fail("{}: rope_freqs.weight must be F32 [{}]", f.name(), c.head_dim / 2);
    c.rope_freq_factors.resize(size_t(t->ne[0]));
    std::memcpy(c.rope_freq_factors.data(), t->data, c.rope_freq_factors.size() * sizeof(float));
  }
  if (const GGUFTensorInfo* s = f.find_tensor("rope_factors_short.weight")) {  // Phi-3 longrope
    const GGUFTensorInfo* l = f.find_tensor("rope_factors_long.weight");
    const int64_t half = c.rope_dim() / 2;
    for (const GGUFTensorInfo* t : {s, l})
      if (!t || t->type != uint32_t(GgmlType::F32) || t->ne.size() != 1 || t->ne[0] != half)
        fail("{}: rope_factors_short.weight and rope_factors_long.weight must both be F32 [{}]", f.name(), half);
    c.rope_scaling = RopeScaling::LongRope;
    for (auto [t, dst] : {std::pair{s, &c.rope_short_factor}, std::pair{l, &c.rope_long_factor}}) {
      std::vector<float> v(static_cast<size_t>(half));
      std::memcpy(v.data(), t->data, v.size() * sizeof(float));
      dst->assign(v.begin(), v.end());
    }
    const std::string a = std::string(c.arch->gguf_arch);
    c.rope_original_max_positions = f.find(a + ".rope.scaling.original_context_length")
                                        ? get_num<int64_t>(f, a + ".rope.scaling.original_context_length") : c.max_positions;
    c.rope_attn_factor = f.find(a + ".rope.scaling.attn_factor") ? get_num<double>(f, a + ".rope.scaling.attn_factor") : 1.0;
  }
  c.tied_embeddings = f.find_tensor("output.weight") == nullptr;
  c.dtype = DType::F32;
  if (const GGUFValue* v = f.find("tokenizer.ggml.bos_token_id")) c.bos_token_id = get_num<int64_t>(f, "tokenizer.ggml.bos_token_id"), (void)v;
  if (const GGUFValue* v = f.find("tokenizer.ggml.eos_token_id")) c.eos_token_id = get_num<int64_t>(f, "tokenizer.ggml.eos_token_id"), (void)v;
  if (c.n_layers < 1 || c.n_layers > 65536) fail("{}: block count {} is implausible", f.name(), c.n_layers);
  derive_block_specs(c);
  return c;
}

Tokenizer tokenizer_from_gguf(const GGUFFile& f) {
  const GGUFValue* hf = f.find("tokenizer.huggingface.json");
  if (!hf || !hf->get_if<std::string>())
    fail("{}: no tokenizer.huggingface.json in this GGUF file (quantllm reads the GGUF files it writes; "
         "rebuilding a tokenizer from tokenizer.ggml.* alone is not supported yet)", f.name());
  const auto& tokens = f.get_array<std::string>("tokenizer.ggml.tokens");
  json cfg = json::object();
  auto tok_at = [&](const char* key) -> std::optional<std::string> {
    if (!f.find(key)) return std::nullopt;
    const auto id = get_num<int64_t>(f, key);
    if (id < 0 || id >= int64_t(tokens.size())) fail("{}: {} {} is outside the vocabulary", f.name(), key, id);
    return tokens[size_t(id)];
  };
  if (auto s = tok_at("tokenizer.ggml.bos_token_id")) cfg["bos_token"] = *s;
  if (auto s = tok_at("tokenizer.ggml.eos_token_id")) cfg["eos_token"] = *s;
  if (auto s = tok_at("tokenizer.ggml.unknown_token_id")) cfg["unk_token"] = *s;
  if (auto s = tok_at("tokenizer.ggml.padding_token_id")) cfg["pad_token"] = *s;
  if (const GGUFValue* v = f.find("tokenizer.ggml.add_bos_token"))
    if (auto b = v->get_if<bool>()) cfg["add_bos_token"] = *b;
  if (const GGUFValue* v = f.find("tokenizer.chat_template"))
    if (auto s = v->get_if<std::string>()) cfg["chat_template"] = *s;
  return Tokenizer::from_json(*hf->get_if<std::string>(), cfg.dump(), f.name() + " (tokenizer.huggingface.json)");
}

}  // namespace

std::optional<LoadedModel> open_gguf(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return std::nullopt;
  if (path.extension() != ".gguf") {  // sniff the magic for files named otherwise
    std::FILE* fp = std::fopen(path.c_str(), "rb");
    char magic[4] = {};
    const bool ok = fp && std::fread(magic, 1, 4, fp) == 4 && std::memcmp(magic, "GGUF", 4) == 0;
    if (fp) std::fclose(fp);
    if (!ok) return std::nullopt;
  }
  auto file = std::make_shared<GGUFFile>(path);
  LoadedModel m;
  m.path = path;
  m.kind = "gguf";
  m.config = config_from_gguf(*file);
  m.weights = std::make_shared<GGUFWeights>(file, m.config);
  check_tensors(m.config, *m.weights, path.string());
  m.tokenizer = std::make_shared<Tokenizer>(tokenizer_from_gguf(*file));
  return m;
}



}  // namespace quantllm
