// The forward pass of the generic decoder (every row of the architecture table), in fp32 activations.
// A linear layer's weight is either an fp32 matrix or a packed one (LinearWeights::packed, the
// quantized engine: runtime/cpu/qmatrix.h); everything else is the same code for both.
//
// The pieces are separate so that calibration can run one decoder block at a time over all
// calibration windows and observe the input of every linear layer:
//   embed():         tokens [n_seq, T]        -> x [n_seq*T, hidden]
//   block_forward(): x [n_seq*T, hidden]      -> x (in place), one decoder block
//     = x + attention_sublayer(norm(x)), then x + ffn_sublayer(norm(x)) (pre-LN; OPT-350m norms after)
//   head():          x [rows, hidden]         -> logits [rows, vocab]
// Sequences in a batch are independent windows that all start at position `pos0` (0 for
// evaluation); generation passes a KVCache to continue a single sequence.
#pragma once

#include "core/tensor.h"
#include "model/config.h"
#include "model/weights.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace quantllm {

// The four distinct inputs of a block's linear layers.
enum class LinearInput { AttnIn /* q, k, v */, AttnOut /* o */, FfnIn /* gate, up */, FfnMid /* down */ };
LinearInput linear_input_of(Linear l);
int64_t linear_input_width(const ModelConfig& c, LinearInput which);  // its width (q_dim for o's input, …)

// Receives the input of every linear layer during block_forward (x: [rows, in]). Returning false
// stops the block there (x is then partly updated: pass a copy): calibration often needs only the inputs of
// the first layers of a block, not its output.
class BlockObserver {
 public:
  virtual ~BlockObserver() = default;
  virtual bool observe(int layer, LinearInput which, const Tensor& x) = 0;
};

// Keys and values of past positions of one sequence, per layer.
struct KVCache {
  int64_t capacity = 0;  // positions
  int64_t length = 0;    // positions filled (shared by all layers after a full step)
  std::vector<Tensor> k, v;  // per layer: [capacity, kv_dim]
  KVCache(const ModelConfig& c, int64_t capacity);
};

// RoPE inverse frequencies with the model's scaling folded in (linear, llama3, or GGUF rope_freqs). [head_dim / 2]
std::vector<double> rope_inv_freq(const ModelConfig& c);

// Token (and, for OPT, position) embeddings, with OPT's project_in.
Tensor embed(const ModelConfig& c, const GlobalWeights& g, const std::vector<int32_t>& tokens, int64_t n_seq,
             int64_t seq_len, int64_t pos0 = 0);

// One decoder block, in place (unless the observer stops it early; then returns false). With a cache (n_seq must be 1) the new keys/values are appended at
// positions cache->length … and attention covers the cached ones; the caller advances length.
bool block_forward(const ModelConfig& c, const BlockWeights& w, int layer, Tensor& x, int64_t n_seq,
                   int64_t seq_len, BlockObserver* observer = nullptr, KVCache* cache = nullptr, int64_t pos0 = 0);

// The pieces of block_forward, for methods that inspect one sub-layer (AWQ's scale search).
// h is the sub-layer's input after its norm (the q/k/v resp. gate/up input), [n_seq*T, hidden].
// attention_mix: o's input, the attention of q(h), k(h), v(h) → [n_seq*T, q_dim] (cache as in block_forward).
Tensor attention_mix(const ModelConfig& c, const BlockWeights& w, int layer, const Tensor& h, int64_t n_seq,
                     int64_t seq_len, KVCache* cache = nullptr, int64_t pos0 = 0);
// ffn_mix: down's input, act(gate(h)) ⊙ up(h) (or act(up(h))) → [rows, ffn].
Tensor ffn_mix(const ModelConfig& c, const BlockWeights& w, const Tensor& h);
// The sub-layers' outputs before the residual add: o(attention_mix(h)) resp. down(ffn_mix(h)), [rows, hidden].
Tensor attention_sublayer(const ModelConfig& c, const BlockWeights& w, const Tensor& h, int64_t n_seq,
                          int64_t seq_len);
Tensor ffn_sublayer(const ModelConfig& c, const BlockWeights& w, const Tensor& h);

// Final norm, project_out and the LM head for `rows` rows of x starting at row `row0`.
Tensor head(const ModelConfig& c, const GlobalWeights& g, const Tensor& x, int64_t row0, int64_t rows);

// Where forward time goes (for benchmarks): seconds in the linear layers' matrix products and in
// attention, accumulated while enabled.
struct ForwardProfile {
  double linear_seconds = 0, attention_seconds = 0;
  double linear_flops = 0, attention_flops = 0;
};
void set_forward_profiling(bool on);
ForwardProfile forward_profile();  // totals since profiling was last enabled

// Y[rows, out] = X[rows, in] · Wᵀ (+ b). W: [out, in].
void linear(const Tensor& x, const LinearWeights& w, Tensor& y);

// How FullModel holds its weights. Fp32: every weight widened on load (the reference path).
// Quant: the 2-D weights stay as stored — GGUF blocks and F16/BF16 tensors read in place from the
// mapped file, GPTQ/AWQ groups repacked (runtime/cpu/qmatrix.h) — and the linear layers run the CPU
// kernels on them; memory ≈ the file's size plus the KV cache. Weights of a format without kernels
// fall back to fp32 (with a note on stderr).
enum class Engine { Fp32, Quant };
// "fp32" or "quant"; Error otherwise.
Engine parse_engine(const std::string& name);

// A whole model for evaluation and generation.
class FullModel {
 public:
  explicit FullModel(const Model& m, Engine engine = Engine::Fp32);
  Engine engine() const { return engine_; }
  const ModelConfig& config() const { return config_; }
  // logits for each position of each window: calls on_logits(seq, logits [seq_len, vocab]).
  void forward(const std::vector<int32_t>& tokens, int64_t n_seq, int64_t seq_len,
               const std::function<void(int64_t seq, const Tensor& logits)>& on_logits) const;
  // One generation step: feeds `tokens` after the cached ones and returns the last position's logits.
  std::vector<float> step(const std::vector<int32_t>& tokens, KVCache& cache) const;

 private:
  ModelConfig config_;
  Engine engine_ = Engine::Fp32;
  GlobalWeights globals_;
  std::vector<BlockWeights> blocks_;
};

}  // namespace quantllm
