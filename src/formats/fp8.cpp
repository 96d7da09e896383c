// FP8 checkpoints (float8 e4m3fn weights with scales): the reader of the Hub's block-scaled FP8 models
// (quant_method "fp8", DeepSeek-V3 / Qwen3-FP8 style: X.weight F8_E4M3 with X.weight_scale_inv per
// 128 × 128 block, or one X.weight_scale per tensor) and of compressed-tensors "float-quantized"
// directories (X.weight_scale per tensor, per channel [out, 1] or per block), which serves every method
// as a source, dequantizing one tensor at a time when asked (never the whole model); and the writer of
// compressed-tensors float-quantized W8A16 (per-channel scales) from any model.
#include "core/error.h"
#include "core/fs.h"
#include "formats/open.h"
#include "formats/quantized_model.h"
#include "io/safetensors.h"
#include "model/config.h"

#include <fmt/format.h>

#include <array>
#include <cmath>
#include <set>

namespace quantllm {

using json = nlohmann::json;

namespace {

class Fp8Weights final : public WeightSource {
 public:
  // scale_suffix: ".weight_scale_inv" (Hub fp8 with blocks) or ".weight_scale"; block: [rows, cols] of a
  // scale block when the scales are per block (0, 0 otherwise).
  Fp8Weights(const std::filesystem::path& dir, std::string scale_suffix, std::array<int64_t, 2> block)
      : dir_(dir), ckpt_(dir), scale_suffix_(std::move(scale_suffix)), block_(block) {
    for (const auto& n : ckpt_.names()) {
      std::string b;
      if (!strip_suffix(n, ".weight", b) || ckpt_.get(n).dtype != DType::F8_E4M3) continue;
      if (!ckpt_.has(b + scale_suffix_))
        fail("{}: FP8 tensor '{}' has no scale '{}{}'", dir.string(), n, b, scale_suffix_);
      const TensorView& w = ckpt_.get(n);
      const TensorView& s = ckpt_.get(b + scale_suffix_);
      if (w.shape.size() != 2) fail("{}: FP8 tensor '{}' has shape {}; 2-D expected", dir.string(), n, shape_str(w.shape));
      const int64_t out = w.shape[0], in = w.shape[1];
      Shape want;
      if (s.numel() == 1) want = s.shape;                                    // per tensor
      else if (block_[0] > 0) want = {(out + block_[0] - 1) / block_[0], (in + block_[1] - 1) / block_[1]};
      else want = {out, 1};                                                 // per channel
      if (s.shape != want)
        fail("{}: scale '{}{}' has shape {}, {} expected for a [{}, {}] weight", dir.string(), b, scale_suffix_,
             shape_str(s.shape), shape_str(want), out, in);
      fp8_.insert(b);
    }
    if (fp8_.empty()) fail("{}: no F8_E4M3 weights found", dir.string());
  }

  bool has(const std::string& n) const override { return ckpt_.has(n) && !hidden(n); }
  Shape shape(const std::string& n) const override { return ckpt_.get(n).shape; }
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (const auto& n : ckpt_.names())
      if (!hidden(n)) out.push_back(n);
    return out;
  }
  Tensor load(const std::string& n) const override {
    std::string b;
    Tensor t = ckpt_.get(n).to_f32();
    if (!strip_suffix(n, ".weight", b) || !fp8_.count(b)) return t;
    const Tensor s = ckpt_.get(b + scale_suffix_).to_f32();
    const int64_t out = t.dim(0), in = t.dim(1);
    for (int64_t r = 0; r < out; ++r)
      for (int64_t c = 0; c < in; ++c) {
        const size_t si = s.numel() == 1 ? 0 : block_[0] > 0 ? size_t((r / block_[0]) * s.dim(1) + c / block_[1]) : size_t(r);
        t.data[size_t(r * in + c)] *= s.data[si];
      }
    for (float v : t.data)
      if (!std::isfinite(v)) fail("{}: FP8 tensor '{}' dequantizes to {}", dir_.string(), n, v);
    return t;
  }
  std::string format(const std::string& n) const override {
    std::string b;
    if (strip_suffix(n, ".weight", b) && fp8_.count(b)) {
      const TensorView& s = ckpt_.get(b + scale_suffix_);
      return s.numel() == 1 ? "FP8 e4m3 tensor"
             : block_[0] > 0 ? fmt::format("FP8 e4m3 b{}x{}", block_[0], block_[1])
                             : "FP8 e4m3 channel";
    }
    return std::string(dtype_name(ckpt_.get(n).dtype));
  }
  size_t stored_bytes(const std::string& n) const override {
    std::string b;
    size_t s = ckpt_.get(n).nbytes;
    if (strip_suffix(n, ".weight", b) && fp8_.count(b)) s += ckpt_.get(b + scale_suffix_).nbytes;
    return s;
  }
  std::optional<PackedWeight> packed(const std::string& n) const override {
    std::string b;
    if (strip_suffix(n, ".weight", b) && fp8_.count(b)) return std::nullopt;  // the engine computes these in fp32
    return dense_packed(ckpt_.get(n));
  }

 private:
  // The scales and activation scales of FP8 layers are parts of their weights, not tensors of the model.
  bool hidden(const std::string& n) const {
    std::string b;
    for (const char* part : {".weight_scale_inv", ".weight_scale", ".input_scale"})
      if (strip_suffix(n, part, b) && fp8_.count(b)) return true;
    return false;
  }

  std::filesystem::path dir_;
  Checkpoint ckpt_;
  std::string scale_suffix_;
  std::array<int64_t, 2> block_;
  std::set<std::string> fp8_;
};

std::array<int64_t, 2> block_of(const json& v, const std::string& where) {
  if (v.is_null()) return {0, 0};
  if (!v.is_array() || v.size() != 2 || !v[0].is_number_integer() || !v[1].is_number_integer() || v[0].get<int64_t>() < 1 ||
      v[1].get<int64_t>() < 1)
    fail("{}: FP8 block size {} is not two positive integers", where, v.dump());
  return {v[0].get<int64_t>(), v[1].get<int64_t>()};
}

}  // namespace

std::optional<LoadedModel> open_fp8_dir(const std::filesystem::path& path, const std::string& config_text, const json& qc) {
  const std::string where = (path / "config.json").string();
  std::shared_ptr<WeightSource> w;
  const std::string method = qc.value("quant_method", "");
  if (method == "fp8") {
    const std::string fmt_name = qc.value("fmt", "e4m3");
    if (fmt_name != "e4m3") fail("{}: FP8 format '{}' is not supported (supported: e4m3)", where, fmt_name);
    const auto block = block_of(qc.value("weight_block_size", json(nullptr)), where);
    w = std::make_shared<Fp8Weights>(path, block[0] > 0 ? ".weight_scale_inv" : ".weight_scale", block);
  } else {  // compressed-tensors float-quantized
    if (!qc.contains("config_groups") || !qc["config_groups"].is_object() || qc["config_groups"].size() != 1)
      fail("{}: float-quantized compressed-tensors with {} config groups (one is supported)", where,
           qc.contains("config_groups") ? qc["config_groups"].size() : 0);
    const json& wq = qc["config_groups"].begin().value().value("weights", json::object());
    if (wq.value("type", "") != "float" || wq.value("num_bits", 0) != 8)
      fail("{}: float-quantized weights of type '{}' with {} bits (supported: float, 8)", where, wq.value("type", ""),
           wq.value("num_bits", 0));
    const std::string strategy = wq.value("strategy", "tensor");
    std::array<int64_t, 2> block = {0, 0};
    if (strategy == "block") block = block_of(wq.value("block_structure", json(nullptr)), where);
    else if (strategy != "tensor" && strategy != "channel")
      fail("{}: FP8 weight strategy '{}' is not supported (supported: tensor, channel, block)", where, strategy);
    w = std::make_shared<Fp8Weights>(path, ".weight_scale", block);
  }
  LoadedModel m;
  m.path = path;
  m.config = parse_config_json(config_text, where);
  m.kind = "fp8";
  m.weights = w;
  resolve_tied_head(m.config, *m.weights);
  check_tensors(m.config, *m.weights, path.string());
  m.tokenizer = std::make_shared<Tokenizer>(Tokenizer::from_dir(path));
  return m;
}

Fp8Summary save_fp8(const LoadedModel& model, const std::filesystem::path& dir, bool overwrite,
                    const std::function<void(int, int)>& progress) {
  const ModelConfig& c = model.config;
  std::set<std::string> targets;  // the blocks' quantized linears (not lm_head, not MoE routers)
  for (int i = 0; i < int(c.n_layers); ++i) {
    const BlockSpec& spec = c.block(i);
    for (size_t l = 0; l < spec.linears.size(); ++l)
      if (spec.linears[l].quantized) targets.insert(spec.linear_tensor(int(l)));
  }
  QuantizedModel shell;  // no integer layers: write_quantized_dir copies every other tensor as stored
  shell.base = &model;
  Fp8Summary sum;
  int done = 0;
  const PackLayer none = [](const std::string&, const GroupQuantized&, std::vector<TensorData>&) {};
  std::vector<TensorData> fp8_tensors;  // each target's weight, encoded here, one tensor at a time
  for (const auto& b : targets) {
    const Tensor w = model.weights->load(b + ".weight");
    const int64_t out = w.dim(0), in = w.dim(1);
    std::vector<uint8_t> q(size_t(out * in));
    Tensor scale({out, 1});
    for (int64_t r = 0; r < out; ++r) {
      float amax = 0;
      for (int64_t k = 0; k < in; ++k) amax = std::max(amax, std::fabs(w.data[size_t(r * in + k)]));
      if (!std::isfinite(amax)) fail("tensor '{}.weight': row {} is not finite", b, r);
      const float s = amax > 0 ? amax / kFp8E4M3Max : 1.0f;
      scale.data[size_t(r)] = s;
      for (int64_t k = 0; k < in; ++k) {
        const uint8_t e = f32_to_fp8e4m3(w.data[size_t(r * in + k)] / s);
        q[size_t(r * in + k)] = e;
        const double d = double(fp8e4m3_to_f32(e)) * s - w.data[size_t(r * in + k)];
        sum.squared_error += d * d;
      }
    }
    for (float v : w.data) sum.squared_norm += double(v) * double(v);
    sum.params += out * in;
    fp8_tensors.push_back(TensorData::from_values(b + ".weight", DType::F8_E4M3, {out, in}, q));
    fp8_tensors.push_back(TensorData::from_f32(b + ".weight_scale", scale));
    if (progress) progress(++done, int(targets.size()));
  }
  const json weights = {{"num_bits", 8},          {"type", "float"},          {"symmetric", true},
                        {"group_size", nullptr},  {"strategy", "channel"},    {"block_structure", nullptr},
                        {"dynamic", false},       {"actorder", nullptr},      {"observer", "minmax"},
                        {"observer_kwargs", json::object()}};
  const json qc = compressed_tensors_config(weights, "float-quantized", unquantized_linears(c));
  write_quantized_dir(shell, dir, overwrite, none, qc, {}, targets, std::move(fp8_tensors));
  return sum;
}

}  // namespace quantllm
