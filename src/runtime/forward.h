// The forward pass of a whole model on the CPU, in fp32 activations: embeddings, the decoder blocks
// (interpreted from their BlockSpecs by runtime/block.h over the CPU ops, runtime/cpu/ops.h) and the head.
// A linear layer's weight is either an fp32 matrix or a packed one (the quantized engine:
// runtime/cpu/qmatrix.h); everything else is the same code for both.
//   embed():         tokens [n_seq, T]        -> x [n_seq*T, hidden]
//   block_forward(): x [n_seq*T, hidden]      -> x (in place), one decoder block (run_block, runtime/block.h)
//   head():          x [rows, hidden]         -> logits [rows, vocab]
// Sequences in a batch are independent windows that all start at position `pos0` (0 for
// evaluation); generation passes a KVCache to continue a single sequence.
#pragma once

#include "core/tensor.h"
#include "model/config.h"
#include "model/weights.h"
#include "runtime/block.h"
#include "runtime/model_runner.h"

#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace quantllm {

namespace cpu {
struct QMatrix;
}

// Keys and values of past positions of one sequence, per layer.
struct KVCache {
  int64_t capacity = 0;  // positions
  int64_t length = 0;    // positions filled (shared by all layers after a full step)
  std::vector<Tensor> k, v;  // per layer: [capacity, kv_dim]
  KVCache(const ModelConfig& c, int64_t capacity);
};

// RoPE inverse frequencies with the model's scaling folded in (linear, llama3, or GGUF rope_freqs). [head_dim / 2]
std::vector<double> rope_inv_freq(const ModelConfig& c);
// The same for an attention sub-layer: its base, with the scaling only where it applies (Gemma 3's
// sliding layers have their own base and none).
std::vector<double> rope_inv_freq(const ModelConfig& c, const Sublayer& s);

// Token (and, for OPT, position) embeddings, with OPT's project_in. embed_packed: the table kept packed
// (the quantized engine), else g.embed.
Tensor embed(const ModelConfig& c, const GlobalWeights& g, const std::vector<int32_t>& tokens, int64_t n_seq,
             int64_t seq_len, int64_t pos0 = 0, const cpu::QMatrix* embed_packed = nullptr);

// Block `layer` on x [n_seq·T, hidden] in place, with fp32 weights (calibration); false when the observer
// stopped it.
bool block_forward(const ModelConfig& c, const BlockWeights& w, int layer, Tensor& x, int64_t n_seq,
                   int64_t seq_len, PointObserver* observer = nullptr);
// Sub-layer s's output before the residual add, from its input h [rows, hidden] (n_seq windows).
Tensor sublayer_output(const ModelConfig& c, const BlockWeights& w, int layer, int s, const Tensor& h, int64_t n_seq,
                       int64_t seq_len);

// Final norm, project_out and the LM head for `rows` rows of x starting at row `row0`.
Tensor head(const ModelConfig& c, const GlobalWeights& g, const Tensor& x, int64_t row0, int64_t rows,
            const cpu::QMatrix* lm_head_packed = nullptr);

// Where forward time goes (for benchmarks): seconds in the linear layers' matrix products and in
// attention, accumulated while enabled.
struct ForwardProfile {
  double linear_seconds = 0, attention_seconds = 0;
  double linear_flops = 0, attention_flops = 0;
};
void set_forward_profiling(bool on);
ForwardProfile forward_profile();  // totals since profiling was last enabled

// GELU with the tanh approximation (PyTorch's approximate="tanh", Gemma's gelu_pytorch_tanh).
inline float gelu_tanh(float x) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * (x + 0.044715f * x * x * x)));
}

// Y[rows, out] = X[rows, in] · Wᵀ (+ b). W: [out, in].
void linear(const Tensor& x, const LinearWeights& w, Tensor& y);
void linear(const Tensor& x, const Tensor& w, Tensor& y);

// How FullModel holds its weights. Fp32: every weight widened on load (the reference path).
// Quant: the 2-D weights stay as stored — GGUF blocks and F16/BF16 tensors read in place from the
// mapped file, GPTQ/AWQ groups repacked (runtime/cpu/qmatrix.h) — and the linear layers run the CPU
// kernels on them; memory ≈ the file's size plus the KV cache. Weights of a format without kernels
// fall back to fp32 (with a note on stderr).
enum class Engine { Fp32, Quant };
// "fp32" or "quant"; Error otherwise.
Engine parse_engine(const std::string& name);

// A whole model on the CPU for evaluation and generation.
class FullModel final : public ModelRunner {
 public:
  explicit FullModel(const LoadedModel& m, Engine engine = Engine::Fp32);
  Engine engine() const { return engine_; }
  const ModelConfig& config() const override { return config_; }
  // logits for each position of each window: calls on_logits(seq, logits [seq_len, vocab]).
  void forward(const std::vector<int32_t>& tokens, int64_t n_seq, int64_t seq_len,
               const std::function<void(int64_t seq, const Tensor& logits)>& on_logits) const override;
  // One generation step: feeds `tokens` after the cached ones and returns the last position's logits.
  std::vector<float> step(const std::vector<int32_t>& tokens, KVCache& cache) const;

 private:
  ModelConfig config_;
  Engine engine_ = Engine::Fp32;
  GlobalWeights globals_;
  std::vector<BlockWeights> blocks_;
  // The quantized engine's packed matrices: per block, by linear slot (null: fp32 in blocks_); embed and head.
  std::vector<std::vector<std::shared_ptr<const cpu::QMatrix>>> packed_;
  std::shared_ptr<const cpu::QMatrix> embed_packed_, lm_head_packed_;
};

}  // namespace quantllm
