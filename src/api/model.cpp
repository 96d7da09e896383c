// quantllm::Model of the public API (include/quantllm/model.h): a shared handle on the library's
// LoadedModel (src/model/weights.h), opened by formats/open.h.
#include "quantllm/model.h"

#include "core/dtype.h"
#include "core/error.h"
#include "formats/open.h"
#include "formats/quantized_model.h"
#include "eval/generate.h"

namespace quantllm {

Model::Model(const std::filesystem::path& path) : impl_(std::make_shared<const LoadedModel>(open_model(path))) {}
Model::Model(std::shared_ptr<const LoadedModel> loaded) : impl_(std::move(loaded)) { QL_ASSERT(impl_); }

Model load_model(const std::filesystem::path& path) { return Model(path); }

const std::filesystem::path& Model::path() const { return impl_->path; }
const std::string& Model::kind() const { return impl_->kind; }

ModelInfo Model::info() const {
  const ModelConfig& c = impl_->config;
  ModelInfo i;
  i.kind = impl_->kind;
  i.architecture = std::string(c.arch->hf_architecture);
  i.model_type = std::string(c.arch->model_type);
  i.dtype = std::string(dtype_name(c.dtype));
  i.hidden_size = c.hidden, i.num_hidden_layers = c.n_layers, i.num_attention_heads = c.n_heads;
  i.num_key_value_heads = c.n_kv_heads, i.head_dim = c.head_dim, i.intermediate_size = c.ffn, i.vocab_size = c.vocab;
  i.max_position_embeddings = c.max_positions;
  i.norm_eps = c.norm_eps, i.rope_theta = c.rope_theta;
  i.tie_word_embeddings = c.tied_embeddings, i.qkv_bias = c.qkv_bias;
  i.serving = serving_notes(*impl_);
  return i;
}

TokenizerInfo Model::tokenizer_info() const {
  const Tokenizer& t = *impl_->tokenizer;
  TokenizerInfo i;
  i.kind = t.kind() == TokenizerKind::SentencePieceBPE ? "sentencepiece-bpe" : "byte-level-bpe";
  i.vocab_size = t.vocab_size();
  if (t.bos_id()) i.bos_id = int32_t(*t.bos_id());
  if (t.eos_id()) i.eos_id = int32_t(*t.eos_id());
  i.adds_bos = t.adds_bos();
  i.has_chat_template = !t.chat_template().empty();
  return i;
}

std::vector<TensorInfo> Model::tensors() const {
  const WeightSource& w = *impl_->weights;
  std::vector<TensorInfo> out;
  for (const auto& name : w.names()) out.push_back({name, w.shape(name), w.format(name), w.stored_bytes(name)});
  return out;
}

TextTokenizer Model::tokenizer() const { return TextTokenizer(impl_->tokenizer); }

TextTokenizer TextTokenizer::from_dir(const std::filesystem::path& dir) {
  return TextTokenizer(std::make_shared<const Tokenizer>(Tokenizer::from_dir(dir)));
}
TextTokenizer::TextTokenizer(std::shared_ptr<const Tokenizer> t) : impl_(std::move(t)) { QL_ASSERT(impl_); }
std::vector<int32_t> TextTokenizer::encode(const std::string& text, bool add_special) const {
  return impl_->encode(text, add_special);
}
std::string TextTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  return impl_->decode(ids, skip_special);
}
int64_t TextTokenizer::vocab_size() const { return impl_->vocab_size(); }
std::optional<int32_t> TextTokenizer::bos_id() const {
  return impl_->bos_id() ? std::optional<int32_t>(int32_t(*impl_->bos_id())) : std::nullopt;
}
std::optional<int32_t> TextTokenizer::eos_id() const {
  return impl_->eos_id() ? std::optional<int32_t>(int32_t(*impl_->eos_id())) : std::nullopt;
}
std::optional<int32_t> TextTokenizer::pad_id() const {
  return impl_->pad_id() ? std::optional<int32_t>(int32_t(*impl_->pad_id())) : std::nullopt;
}
bool TextTokenizer::adds_bos() const { return impl_->adds_bos(); }

std::vector<int32_t> Model::encode(const std::string& text, bool add_special) const {
  return impl_->tokenizer->encode(text, add_special);
}

std::string Model::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  return impl_->tokenizer->decode(ids, skip_special);
}

std::vector<int32_t> Model::chat_prompt(const std::string& user_message) const {
  const Tokenizer& tok = *impl_->tokenizer;
  if (tok.chat_template().empty())
    fail("{}: the model has no chat template (tokenizer_config.json)", impl_->path.string());
  const std::string bos = tok.bos_id() ? tok.token(*tok.bos_id()) : "";
  return tok.encode(apply_chat_template(tok.chat_template(), user_message, bos), false);
}

}  // namespace quantllm
