// Weights of a model, by Hugging Face tensor name, widened to fp32 on request or handed out as stored.
//
// A WeightSource hides where the weights live: a plain safetensors checkpoint, a GPTQ/AWQ directory
// (packed integers dequantized on load) or a GGUF file (blocks dequantized, names and q/k row order
// mapped back). Quantization asks for "model.layers.3.mlp.up_proj.weight" as fp32, one decoder block
// at a time, so peak memory is one block plus the embeddings and head; the quantized engine asks for
// the stored bytes instead (packed(): views into the mapping) and never widens a whole tensor.
#pragma once

#include "core/tensor.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "quant/group_quant.h"
#include "tokenizer/tokenizer.h"

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace quantllm {

// A weight as it is stored, for engines that compute on the packed bytes (runtime/cpu) instead of
// widening it. Views point into the source's mapping and stay valid while the source lives.
struct PackedWeight {
  enum class Kind { Ggml, Gptq, Awq, Ct };  // Ct: compressed-tensors pack-quantized (quant/ct_format.h)
  Kind kind = Kind::Ggml;
  Shape shape;  // [out, in], as load() returns it
  // Ggml: one ggml type (F32, F16, BF16, Q8_0, Q4_K …; llama.cpp's type ids), rows of shape[1] weights.
  uint32_t ggml_type = 0;
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
  // GGUF q/k projections of llama-type models: rows are in llama.cpp's interleaved RoPE order for this
  // many heads (load() undoes it with permute_rope_rows); 0 otherwise.
  int64_t rope_heads = 0;
  // Gptq / Awq: the checkpoint's tensors (quant/gptq_format.h describes them); g_idx.data is null
  // when the checkpoint has none.
  int bits = 0, group_size = 0;
  bool gptq_v1 = true;  // checkpoint_format "gptq" (zeros stored minus one) rather than "gptq_v2"
  bool symmetric = false;  // Ct: no zero points stored (qzeros.data null)
  TensorView qweight, qzeros, scales, g_idx;
};

// The groups of a Gptq / Awq / Ct packed weight, unpacked (quant/gptq_format.h describes the layouts).
// Error naming `where` and the tensor when a part is not stored as the format says (I32 qweight,
// qzeros, g_idx) or the group size does not divide the input size.
GroupQuantized unpack_groups(const PackedWeight& p, const std::string& where, const std::string& layer);

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual bool has(const std::string& name) const = 0;
  virtual Shape shape(const std::string& name) const = 0;  // HF orientation: linear weights [out, in]
  virtual Tensor load(const std::string& name) const = 0;   // fp32 copy; Error when missing
  virtual std::vector<std::string> names() const = 0;       // every HF tensor name this source provides
  // What the weights are stored as ("BF16", "GPTQ 4-bit g128", "Q4_K" …) and their bytes, for inspect.
  virtual std::string format(const std::string& name) const = 0;
  virtual size_t stored_bytes(const std::string& name) const = 0;
  // The stored form of a 2-D weight, when this source has one an engine can compute on; nullopt
  // otherwise (the engine then load()s it).
  virtual std::optional<PackedWeight> packed(const std::string& name) const { return std::nullopt; }
  // Whether the tensors are pages of a mapped file (they count in RSS once read); a generated source
  // (synth:) holds none.
  virtual bool mapped() const { return true; }
};

struct LinearWeights {
  Tensor w;  // [out, in]; empty when an engine keeps the weight packed (runtime/cpu/qmatrix.h)
  Tensor b;  // [out], empty when the layer has no bias
};
struct NormWeights {
  Tensor w;  // [hidden]
  Tensor b;  // [hidden], LayerNorm only
};
// One decoder block in fp32, keyed by the slots of its BlockSpec (model/block_spec.h).
struct BlockWeights {
  std::vector<LinearWeights> linear;  // by linear slot
  std::vector<NormWeights> norm;      // by norm slot
};
// Everything outside the decoder blocks.
struct GlobalWeights {
  Tensor embed;        // [vocab, word_embed_proj_dim]
  Tensor positions;    // OPT: [max_positions + offset, hidden]
  Tensor project_in;   // OPT: [hidden, word_embed_proj_dim], empty when not needed
  Tensor project_out;  // OPT: [word_embed_proj_dim, hidden]
  NormWeights final_norm;
  Tensor lm_head;      // [vocab, word_embed_proj_dim]; a copy of embed when tied
};

// Expected HF tensor names and shapes of a config (all of them, blocks included).
std::vector<std::pair<std::string, Shape>> expected_tensors(const ModelConfig& c);
// A checkpoint without lm_head.weight shares the embedding matrix whatever config.json says.
void resolve_tied_head(ModelConfig& c, const WeightSource& src);
// Checks the source holds exactly the expected tensors with the expected shapes; Error names the
// first tensor missing, left over, or of the wrong shape.
void check_tensors(const ModelConfig& c, const WeightSource& src, const std::string& where);

// linear_weights = false leaves the linear layers' weight matrices empty (an engine that keeps them
// packed fills them in); their biases and the norms are loaded either way.
BlockWeights load_block(const ModelConfig& c, const WeightSource& src, int layer, bool linear_weights = true);
// Throws Error naming the first tensor of block `layer` (linear weights and biases, norms) that holds
// a NaN or Inf. Quantizers call it on each block they load: a NaN in a norm gain is not quantized
// itself, but it turns every calibration activation after it into NaN.
void check_block_finite(const ModelConfig& c, const BlockWeights& b, int layer);
// embed_and_head = false leaves embed and lm_head empty (for an engine that keeps them packed).
GlobalWeights load_globals(const ModelConfig& c, const WeightSource& src, bool embed_and_head = true);
// Throws Error naming the first tensor outside the decoder blocks (embeddings, final norm, lm_head …)
// that holds a NaN or Inf; loads them one at a time. Quantizers call it before any work: these
// tensors are copied to the output, not quantized, and would otherwise be found only at the end.
void check_globals_finite(const ModelConfig& c, const WeightSource& src);

// A model opened from disk: config, tokenizer and weights (formats/open.h open_model reads every kind).
struct LoadedModel {
  std::filesystem::path path;
  ModelConfig config;
  std::shared_ptr<Tokenizer> tokenizer;
  std::shared_ptr<WeightSource> weights;
  std::string kind;  // "hf", "gptq", "awq", "gguf"
};

// The dtype a tensor is stored in, from its source's format name (F32 when absent or not a plain dtype):
// what writers copy it as and what AWQ rounds the norms it folds to.
DType stored_dtype(const WeightSource& src, const std::string& name);

}  // namespace quantllm
