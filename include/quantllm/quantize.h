// One request object for every way quantllm makes a model smaller. The CLI (`quantllm quantize`), the
// Python package and C++ callers fill a QuantizeRequest and call quantize(); plan() answers --dry-run.
//
//   quantllm::QuantizeRequest r;
//   r.model = "gutenberg-llama-33m";
//   r.method = "gptq";                       // rtn | gptq | awq | gguf  (quantize_methods())
//   r.bits = 4, r.group_size = 128, r.gptq.act_order = true;
//   r.calib.source = "gutenberg-calib.txt";
//   r.out = "llama-gptq-w4g128";
//   quantllm::QuantizeResult res = quantllm::quantize(r);
//
// A method is a combination of parts (src/methods/registry.cpp): what it collects from calibration
// (Hessians, importance sums, activation magnitudes), how it transforms the model (AWQ's scaling, also in
// front of another method: awq.scale_first), how it rounds (integer groups, GGML blocks) and what writes
// the result (a GPTQ / AWQ directory, a GGUF file). Everything a user can get wrong is checked here, once,
// before any work: an Error names the option.
#pragma once

#include "quantllm/calibration.h"
#include "quantllm/model.h"
#include "quantllm/util.h"

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace quantllm {

struct QuantizedModel;  // the library's in-memory result (src/formats/quantized_model.h)

struct GptqOptions {
  double damp = 0.01;           // damping, fraction of the mean Hessian diagonal
  int block_size = 128;         // lazy-batch width
  bool act_order = false;       // columns by decreasing Hessian diagonal (desc_act)
  bool static_groups = false;   // with act_order: group parameters fixed up front
  bool true_sequential = true;  // each group of a block's layers sees the earlier ones quantized
};

struct AwqOptions {
  bool scale_first = false;      // rtn / gptq / gguf: AWQ's scale search and folding first (--awq-scale)
  int64_t search_tokens = 8192;  // tokens (the first whole windows) of the grid and clip searches
  bool clip = true;               // awq: search each group's clipping range (AutoAWQ's apply_clip)
  bool duo_scaling = true;        // scales from activation and weight magnitudes, x^a / w^(1-a) (AutoAWQ's
                                  // duo_scaling); off: from the activations alone, x^a
  // Each channel's mean |activation| in the scale search is raised to at least act_floor × the mean over
  // the group's channels (0: AutoAWQ's search). Channels the calibration text seldom uses otherwise get
  // scales near 0, and a text that does use them meets their weights crushed: on OPT (ReLU, scales down to
  // 0.004) AWQ lost to RTN out of domain; 0.3 fixes that and is neutral on Llama, Gemma 3 and Qwen3-MoE
  // (docs/benchmarks-awq.md#awq-out-of-domain).
  double act_floor = 0.3;
};

struct GgufOptions {
  std::string type = "Q4_K_M";            // a llama.cpp type or mix: Q8_0, Q6_K, Q5_K_M, Q4_K_M, IQ4_XS, Q2_K, F16 …
  bool pure = false;                      // every quantizable tensor gets the mix's default type
  std::vector<std::string> tensor_types;  // "REGEX=TYPE" overrides, first match wins
  std::string output_tensor_type, token_embedding_type;
  std::filesystem::path imatrix;          // importance matrix file (llama.cpp's format), optional
  bool gptq = false;                      // GPTQ's Hessian error feedback into the GGML blocks (calibrated)
  double target_bpw = 0;                  // > 0: each tensor's type chosen for this size (bits a weight); type
                                          // must then be empty
};

// Mixture-of-experts models: how calibration reaches the experts (gptq). routed: each expert's statistics
// from the tokens the router sends it; an expert with fewer than min_tokens of them is rounded to nearest
// instead (reported, never silently). all-experts: every calibration token passes through every expert
// for its statistics while the block's output still follows the router (llm-compressor's
// moe_calibrate_all_experts, GPTQModel's routing bypass). Routers are never quantized.
struct MoeOptions {
  std::string calibration = "routed";  // routed | all-experts
  int64_t min_tokens = 128;
};

struct DeviceOptions {
  std::string device = "cpu";            // where calibration and searches run: "cpu" or "cuda" (one GPU)
  bool gpu_tf32 = true;                  // cuda: products on tensor cores with tf32 operands (else fp32)
  bool gpu_bf16 = false;                 // cuda: the blocks' linear layers forward and the Hessians' products
                                         // with bf16 operands (fp32 accumulation); GPTQ keeps gpu_tf32's
  int64_t chunk_tokens = 8192;           // cpu: tokens per forward chunk
  int64_t gpu_chunk_tokens = 8192;       // cuda: tokens per forward chunk
  bool gpu_activations_on_host = false;  // cuda: activations in pinned host memory even when they fit
};

struct QuantizeRequest {
  std::filesystem::path model;  // what to read (quantize(Model, …) takes an opened one instead)
  std::string method = "gptq";  // rtn | gptq | awq | gguf
  // Integer groups (rtn, gptq, awq; with awq.scale_first also the scale search of gguf).
  std::optional<int> bits;        // 2..8; default 4 (gguf: the type's)
  std::optional<int> group_size;  // input columns per group, −1: one group per row; default 128 (gguf: 32)
  bool sym = false;               // symmetric: no zero point
  bool mse = false;               // search each group's range for the least squared error (rtn, gptq)
  GptqOptions gptq;
  AwqOptions awq;
  GgufOptions gguf;
  MoeOptions moe;
  Calibration calib;
  DeviceOptions device;
  // What to write: a directory (rtn, gptq, awq) or a .gguf file. format: "gptq", "gptq_v2", "awq_gemm";
  // empty: the method's own (awq → awq_gemm, else gptq).
  std::filesystem::path out;
  std::string format;
  bool overwrite = false;
  // Finished blocks are kept in OUT.resume; resume continues an interrupted run from there (same bytes).
  bool resume = false;
};

// What a layer's quantization measured.
struct LayerReport {
  double relative_error = 0;      // tr((W−Q) H (W−Q)ᵀ) / tr(W H Wᵀ)
  double rtn_relative_error = 0;  // the same for round-to-nearest (GPTQ)
  double damp = 0;                // GPTQ: the damping used
  double seconds = 0;
  int64_t dead_inputs = 0;        // GPTQ: inputs that were 0 in every calibration token
  int64_t tokens = -1;            // MoE experts (gptq): the calibration tokens the layer saw; −1: every token
  bool rtn_fallback = false;      // MoE experts (gptq, routed): fewer than moe.min_tokens, rounded to nearest
};

struct QuantizeResult {
  std::filesystem::path out;
  std::string method, type;       // type: the GGUF mix
  double seconds = 0;             // the whole run
  double write_seconds = 0;
  uint64_t bytes = 0;             // written
  double bits_per_weight = 0;     // of the quantized layers (GGUF: of all tensors)
  int64_t tensors = 0;            // GGUF: tensors written
  std::map<std::string, LayerReport> layers;  // by HF layer name (rtn, gptq, awq)
};

// One planned tensor or layer of a --dry-run.
struct PlannedLayer {
  std::string name;  // HF layer name (group methods), GGUF tensor name (gguf)
  std::vector<int64_t> shape;
  std::string type;  // "4-bit" / the GGUF type
  int bits = 0;
  int64_t groups = 0;
  uint64_t bytes = 0;
  std::string note;  // GGUF: why a tensor's type differs from the mix (override, fallback)
};

struct QuantizePlan {
  std::string method, type;
  std::vector<PlannedLayer> layers;
  uint64_t bytes = 0;
  double bits_per_weight = 0;
  // Group methods: resident memory at the peak, itemized, against what the system has; the arithmetic,
  // and the time it takes at the matrix-product rate this machine reaches now.
  std::vector<std::pair<std::string, double>> memory;
  double peak_bytes = 0, available_bytes = 0;
  double flops = 0, matmul_flops_per_second = 0, seconds_estimate = 0;
};

// The registered methods: name and one line each.
std::vector<std::pair<std::string, std::string>> quantize_methods();

// Checks the request (options, paths; not the model) and runs it; Error for anything a user can cause,
// before any work. The output is written atomically, never over an existing one unless overwrite.
QuantizeResult quantize(const QuantizeRequest& request, const ProgressCallback& progress = {});
QuantizeResult quantize(const Model& model, const QuantizeRequest& request, const ProgressCallback& progress = {});
// --dry-run: the plan, the memory and the time, without quantizing.
QuantizePlan plan(const QuantizeRequest& request);
QuantizePlan plan(const Model& model, const QuantizeRequest& request);

// The in-memory result of a group method (rtn, gptq, awq), for the seed-shaped API (gptq.h, awq.h):
// quantize_in_memory runs the request without writing; save writes it as the request says.
class QuantizedResult {
 public:
  QuantizedResult(Model base, std::shared_ptr<QuantizedModel> qm, QuantizeRequest request);
  // Writes the checkpoint directory atomically (an existing one only with overwrite).
  void save(const std::filesystem::path& dir, bool overwrite = false) const;
  // The model as it will run: quantized layers dequantized to fp32 over the base (for evaluation).
  Model as_model() const;
  std::map<std::string, LayerReport> layers() const;
  const QuantizedModel& result() const { return *qm_; }

 private:
  Model base_;
  std::shared_ptr<QuantizedModel> qm_;
  QuantizeRequest request_;
};
QuantizedResult quantize_in_memory(const Model& model, const QuantizeRequest& request,
                                   const ProgressCallback& progress = {});
// The checks quantize_in_memory makes before any work (options only; calibration data may come later).
void quantize_in_memory_check(const QuantizeRequest& request);

}  // namespace quantllm
