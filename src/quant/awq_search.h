// The numeric pieces of AWQ (Lin et al. 2024) that know nothing about models: the per-channel weight
// statistic, the 20-point grid over α of s = x̄^α / w̄^(1−α), and the per-group clipping search.
// The caller (the calibration runner) supplies the model-specific part: which linears share an input,
// a callback that applies candidate scales, runs the group's forward pass and returns the output
// error, and the folding of the chosen scales into the preceding operation.
//
// Formulas follow AutoAWQ (awq/quantize/quantizer.py):
//   w̄[c]  = mean over all rows of the concatenated weights of |w[r, c]| / (max |w| in (r, group of c) + 1e−6)
//   s(α)  = clamp(x̄^α / (w̄^(1−α) + 1e−4), min 1e−4);  s /= sqrt(max(s) · min(s));  non-finite s → 1
//   α     = i / n_grid, i = 0 … n_grid−1; the first strictly smallest error wins.
//   clip: per output row and group of input channels, max_val = absmax · (1 − i/n_grid) for
//         i < max_shrink·n_grid; w clamped to ±max_val, pseudo-quantized; error = mean over the sampled
//         tokens of (x_g·q − x_g·w)²; tokens sampled as x[::max(1, n_tokens / n_sample_tokens)].
// Pseudo-quantization inside the searches uses RangeRule::kAwq with fp32 scales (no fp16 rounding);
// AutoAWQ skips the clip search for q/k projections (the caller decides).
#pragma once

#include "quant/group_quant.h"

#include <functional>
#include <span>
#include <string_view>
#include <vector>

namespace quantllm {

// w̄: [in] over the rows of every matrix in `weights` (each [out_i, in]), normalized per group.
std::vector<float> awq_weight_mean(std::span<const Tensor* const> weights, int group_size, std::string_view name);

// The normalized candidate scales s(α): [in].
std::vector<float> awq_candidate_scales(std::span<const float> x_mean, std::span<const float> w_mean, double ratio,
                                        bool duo_scaling = true);

struct AwqScaleResult {
  std::vector<float> scales;    // [in], the best candidate
  double ratio = 0.0;           // its α
  double error = 0.0;           // its error
  std::vector<double> errors;   // error of every grid point, in order
};

// evaluate(s) returns the output error of the scaling group when its linears use Q(W·diag(s))·diag(s)⁻¹
// (see awq_pseudo_quantize_scaled). Throws Error naming `name` if no candidate gives a finite error.
AwqScaleResult awq_search_scale(std::span<const float> x_mean, std::span<const float> w_mean,
                                const std::function<double(std::span<const float> scales)>& evaluate, std::string_view name,
                                int n_grid = 20, bool duo_scaling = true);

// Group-wise quantize-dequantize of w: [out, in] with fp32 scales (the searches' Q(·)).
Tensor awq_pseudo_quantize(const Tensor& w, const QuantParams& p);
// Q(W·diag(s)) · diag(s)⁻¹ : [out, in].
Tensor awq_pseudo_quantize_scaled(const Tensor& w, std::span<const float> s, const QuantParams& p);

// The best clipping threshold max_val: [out, n_groups] for w: [out, in] given the layer's inputs
// x: [n_tokens, in]. Deterministic for any thread count.
Tensor awq_search_clip(const Tensor& w, const Tensor& x, const QuantParams& p, std::string_view name, int n_grid = 20,
                       double max_shrink = 0.5, int64_t n_sample_tokens = 512);
// w[r, c] = clamp(w[r, c], −max_val[r, g], max_val[r, g]) for g the group of c.
void awq_apply_clip(Tensor& w, const Tensor& max_val);

}  // namespace quantllm
