// QuantizedModel: the result of a group-wise method (RTN, GPTQ, AWQ) over a model, before export.
//
// It keeps a reference to the source model for everything that was not quantized (embeddings,
// norms, lm_head, tokenizer files) and, per quantized linear layer, the integer codes, scales and
// zeros. AWQ folds scales into the preceding norm / linear, so those modified tensors are kept too.
#pragma once

#include "core/tensor.h"
#include "model/weights.h"
#include "quant/gptq_format.h"
#include "quant/group_quant.h"
#include "quantllm/quantize.h"

#include "io/safetensors.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <optional>
#include <set>
#include <map>
#include <string>

namespace quantllm {

// What a layer's quantization measured: the public LayerReport (include/quantllm/quantize.h).
using LayerStats = LayerReport;

enum class QuantMethod { RTN, GPTQ, AWQ };

struct QuantizedModel {
  const LoadedModel* base = nullptr;
  QuantMethod method = QuantMethod::GPTQ;
  QuantParams params;
  // Method settings recorded in quantization_config.
  bool act_order = false, static_groups = false, true_sequential = true;
  double damp_percent = 0.01;
  std::map<std::string, GroupQuantized> layers;  // by HF base name ("model.layers.0.mlp.up_proj")
  std::map<std::string, Tensor> replaced;        // full-precision tensors changed by the method (AWQ)
  std::map<std::string, LayerStats> stats;
  double finish_seconds = 0;  // a streamed result: the time finishing the directory took (join, index, config)

  // Full-precision view with the quantized weights dequantized (for evaluation and chaining).
  std::unique_ptr<WeightSource> as_weights() const;
  // Writes the Hugging Face directory (see save_quantized). format: "gptq", "gptq_v2", "awq_gemm";
  // empty = the method's usual one (AWQ → awq_gemm, else gptq).
  void save(const std::filesystem::path& dir, const std::string& format = "", bool overwrite = false) const;
};

enum class HfQuantFormat { GptqV1, GptqV2, AwqGemm, CompressedTensors };
// "gptq", "gptq_v2", "awq_gemm"/"awq", "compressed-tensors"
HfQuantFormat parse_hf_quant_format(const std::string& name);
// The format called `name`, or for an empty name the method's usual one (AWQ → awq_gemm, else gptq).
HfQuantFormat hf_quant_format(const std::string& name, QuantMethod method);

// Writes a Hugging Face directory that transformers / vLLM load: config.json with
// quantization_config, quantize_config.json (GPTQ), model.safetensors with the packed layers and
// every other tensor in its original dtype, and the tokenizer files (shards and an index above 5 GB).
// Atomic: built under a temporary name and renamed into place.
void save_quantized(const QuantizedModel& qm, const std::filesystem::path& dir, HfQuantFormat format,
                    bool overwrite);

// What save_quantized shares between the formats: every tensor of the base model in its dtype (those the
// method replaced from qm.replaced), each quantized layer's "X.weight" replaced by the tensors pack_layer
// appends for it, config.json = the source's with quantization_config, extra_files (name → text), the
// tokenizer files. Atomic: built under a temporary name (DIR.partial) and renamed into place.
using PackLayer = std::function<void(const std::string& layer, const GroupQuantized& q, std::vector<TensorData>& out)>;
// Layers encoded elsewhere (FP8) come as `own_layers` (their "X.weight" is not copied) and `own_tensors`.
void write_quantized_dir(const QuantizedModel& qm, const std::filesystem::path& dir, bool overwrite,
                         const PackLayer& pack_layer, const nlohmann::json& quantization_config,
                         const std::map<std::string, std::string>& extra_files = {},
                         const std::set<std::string>& own_layers = {}, std::vector<TensorData> own_tensors = {});

// The same with the format's parts (formats/quantized_dir_writer.h), which write_quantized_dir feeds one
// block at a time to the streamed writer.
struct QuantDirFormat;
void write_quantized_dir(const QuantizedModel& qm, const std::filesystem::path& dir, bool overwrite,
                         const QuantDirFormat& format, const std::set<std::string>& own_layers = {},
                         std::vector<TensorData> own_tensors = {});

// compressed-tensors (formats/compressed_tensors.cpp): the pack-quantized writer (one config group
// targeting Linear; the unquantized linears — lm_head, MoE routers — in `ignore`) and the reader of such
// directories, ours or llm-compressor's; open_quantized_dir hands them over on quant_method.
void save_compressed_tensors(const QuantizedModel& qm, const std::filesystem::path& dir, bool overwrite);
std::optional<LoadedModel> open_compressed_tensors_dir(const std::filesystem::path& dir, const std::string& config_text,
                                                       const nlohmann::json& quantization_config);
// The quantization_config of a one-group compressed-tensors directory (targets Linear) with this weight
// scheme, format ("pack-quantized", "float-quantized") and ignore list.
nlohmann::json compressed_tensors_config(const nlohmann::json& weights, const std::string& format,
                                         const std::vector<std::string>& ignore);
// The linear layers a writer leaves in full precision: lm_head and MoE routers.
std::vector<std::string> unquantized_linears(const ModelConfig& c);

// Whether s ends with suffix; if so, base = s without it ("X.qweight" → "X"). The packed formats name a
// layer's parts this way.
inline bool strip_suffix(const std::string& s, std::string_view suffix, std::string& base) {
  if (s.size() < suffix.size() || s.compare(s.size() - suffix.size(), suffix.size(), suffix) != 0) return false;
  base = s.substr(0, s.size() - suffix.size());
  return true;
}

// A 2-D F32 / F16 / BF16 tensor of a checkpoint as the engine's packed weight (its ggml type), else none.
std::optional<PackedWeight> dense_packed(const TensorView& v);

// For a quantized directory: which vLLM / SGLang kernel family it targets, and a "warning: " line for each
// choice that leaves the fast path (formats/serving.cpp). Empty for anything else.
std::vector<std::string> serving_notes(const LoadedModel& m);

// FP8 (formats/fp8.cpp). The reader of block-scaled Hub FP8 directories (quant_method "fp8") and of
// compressed-tensors "float-quantized" ones; open_quantized_dir hands them over.
std::optional<LoadedModel> open_fp8_dir(const std::filesystem::path& dir, const std::string& config_text,
                                        const nlohmann::json& quantization_config);
// Writes compressed-tensors float-quantized W8A16: every quantizable linear of the blocks as float8 e4m3fn
// with one fp32 scale per output row (max |w| / 448), rounded to nearest even; lm_head and MoE routers
// stay as they are (listed in `ignore`). Returns the weights' relative squared error.
struct Fp8Summary {
  int64_t params = 0;
  double squared_error = 0, squared_norm = 0;
};
Fp8Summary save_fp8(const LoadedModel& model, const std::filesystem::path& dir, bool overwrite,
                    const std::function<void(int done, int total)>& progress = {});

// Bytes a packed layer takes on disk: codes + zeros (bits each) + fp16 scales + int32 g_idx.
size_t packed_layer_bytes(int64_t in, int64_t out, int64_t groups, int bits, bool with_g_idx = true);


}  // namespace quantllm
