// GPTQ and AWQ checkpoint directories: the writer (save_quantized) and the reader open_model uses, which
// dequantizes packed layers to fp32 on load (see quantized_model.h).
#include "core/error.h"
#include "formats/open.h"
#include "core/fs.h"
#include "formats/quantized_model.h"
#include "formats/quantized_dir_writer.h"
#include "io/safetensors.h"
#include "model/config.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <set>

namespace quantllm {

using json = nlohmann::json;

namespace {

std::string method_label(int bits, int group_size, const char* method) {
  return group_size > 0 ? fmt::format("{} int{} g{}", method, bits, group_size) : fmt::format("{} int{}", method, bits);
}

// The dequantized view of a QuantizedModel over its base model's weights.
class QuantizedView final : public WeightSource {
 public:
  explicit QuantizedView(const QuantizedModel& qm) : qm_(qm), base_(*qm.base->weights) {}
  bool has(const std::string& n) const override { return base_.has(n); }
  Shape shape(const std::string& n) const override { return base_.shape(n); }
  std::vector<std::string> names() const override { return base_.names(); }
  Tensor load(const std::string& n) const override {
    std::string b;
    if (strip_suffix(n, ".weight", b)) {
      auto it = qm_.layers.find(b);
      if (it != qm_.layers.end()) return it->second.dequantize();
    }
    auto r = qm_.replaced.find(n);
    if (r != qm_.replaced.end()) return r->second;
    return base_.load(n);
  }
  bool mapped() const override { return base_.mapped(); }
  std::string format(const std::string& n) const override {
    std::string b;
    if (strip_suffix(n, ".weight", b)) {
      auto it = qm_.layers.find(b);
      if (it != qm_.layers.end()) return method_label(it->second.bits, it->second.group_size, "int");
    }
    return base_.format(n);
  }
  size_t stored_bytes(const std::string& n) const override {
    std::string b;
    if (strip_suffix(n, ".weight", b)) {
      auto it = qm_.layers.find(b);
      if (it != qm_.layers.end()) {
        const auto& q = it->second;
        return packed_layer_bytes(q.in, q.out, q.n_groups(), q.bits, true);
      }
    }
    return base_.stored_bytes(n);
  }

 private:
  const QuantizedModel& qm_;
  const WeightSource& base_;
};

// Reader of a GPTQ / AWQ directory written by us, GPTQModel, AutoGPTQ or AutoAWQ.
class QuantizedDirWeights final : public WeightSource {
 public:
  QuantizedDirWeights(const std::filesystem::path& dir, const json& qc) : dir_(dir), ckpt_(dir) {
    const std::string where = (dir / "config.json").string();
    method_ = qc.value("quant_method", "");
    bits_ = qc.value("bits", qc.value("w_bit", 4));
    group_size_ = qc.value("group_size", qc.value("q_group_size", 128));
    if (method_ == "gptq") {
      const std::string f = qc.value("checkpoint_format", "gptq");
      if (f == "gptq") format_ = GptqCheckpointFormat::kV1;
      else if (f == "gptq_v2") format_ = GptqCheckpointFormat::kV2;
      else fail("{}: GPTQ checkpoint_format '{}' is not supported (supported: gptq, gptq_v2)", where, f);
    } else if (method_ == "awq") {
      std::string v = qc.value("version", "gemm");
      for (auto& ch : v) ch = char(std::tolower(ch));
      if (v != "gemm") fail("{}: AWQ version '{}' is not supported (supported: gemm)", where, v);
      if (bits_ != 4) fail("{}: AWQ GEMM checkpoints are 4-bit, config says {}", where, bits_);
    } else {
      fail("{}: quant_method '{}' is not supported (supported: gptq, awq, compressed-tensors, fp8)", where, method_);
    }
    if (bits_ < 2 || bits_ > 8) fail("{}: bits {} outside 2..8", where, bits_);
    for (const auto& n : ckpt_.names()) {
      std::string b;
      if (strip_suffix(n, ".qweight", b)) packed_.insert(b);
    }
    if (packed_.empty()) fail("{}: no packed layers (*.qweight) found", dir.string());
    for (const auto& b : packed_) check_parts(b);
  }

  bool has(const std::string& n) const override {
    std::string b;
    if (strip_suffix(n, ".weight", b) && packed_.count(b)) return true;
    return ckpt_.has(n) && !is_packed_part(n);
  }
  Shape shape(const std::string& n) const override {
    std::string b;
    if (strip_suffix(n, ".weight", b) && packed_.count(b)) {
      const auto& qw = ckpt_.get(b + ".qweight");
      if (qw.shape.size() != 2) fail("{}: '{}.qweight' must be 2-D", dir_.string(), b);
      if (method_ == "gptq") return {qw.shape[1], qw.shape[0] * 32 / bits_};
      return {qw.shape[1] * 8, qw.shape[0]};
    }
    return ckpt_.get(n).shape;
  }
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (const auto& n : ckpt_.names())
      if (!is_packed_part(n)) out.push_back(n);
    for (const auto& b : packed_) out.push_back(b + ".weight");
    std::sort(out.begin(), out.end());
    return out;
  }
  Tensor load(const std::string& n) const override {
    std::string b;
    if (strip_suffix(n, ".weight", b) && packed_.count(b)) return unpack(b).dequantize();
    return ckpt_.get(n).to_f32();
  }
  std::string format(const std::string& n) const override {
    std::string b;
    if (strip_suffix(n, ".weight", b) && packed_.count(b))
      return method_label(bits_, group_size_, method_ == "gptq" ? "GPTQ" : "AWQ");
    return std::string(dtype_name(ckpt_.get(n).dtype));
  }
  size_t stored_bytes(const std::string& n) const override {
    std::string b;
    if (strip_suffix(n, ".weight", b) && packed_.count(b)) {
      size_t s = 0;
      for (const char* part : {".qweight", ".qzeros", ".scales", ".g_idx"})
        if (ckpt_.has(b + part)) s += ckpt_.get(b + part).nbytes;
      return s;
    }
    return ckpt_.get(n).nbytes;
  }

  std::optional<PackedWeight> packed(const std::string& n) const override {
    std::string b;
    if (!strip_suffix(n, ".weight", b) || !packed_.count(b)) return dense_packed(ckpt_.get(n));
    PackedWeight p;
    p.kind = method_ == "gptq" ? PackedWeight::Kind::Gptq : PackedWeight::Kind::Awq;
    p.shape = shape(n);
    p.bits = bits_;
    p.group_size = group_size_;
    p.gptq_v1 = format_ == GptqCheckpointFormat::kV1;
    p.qweight = ckpt_.get(b + ".qweight");
    p.qzeros = ckpt_.get(b + ".qzeros");
    p.scales = ckpt_.get(b + ".scales");
    if (ckpt_.has(b + ".g_idx")) p.g_idx = ckpt_.get(b + ".g_idx");
    return p;
  }

  // The parts' shapes against each other (quant/gptq_format.h), from the headers alone: inspect checks them too.
  void check_parts(const std::string& b) const {
    for (const char* part : {".qzeros", ".scales"})
      if (!ckpt_.has(b + part)) fail("{}: packed layer '{}' has no '{}{}'", dir_.string(), b, b, part);
    const Shape w = shape(b + ".weight");
    const int64_t out = w[0], in = w[1];
    const bool gidx = ckpt_.has(b + ".g_idx");
    const int64_t gs = group_size_ > 0 ? group_size_ : in;
    if (in % gs != 0) fail("{}: '{}': group size {} does not divide its {} input columns", dir_.string(), b, gs, in);
    const int64_t groups = in / gs;
    auto expect = [&](const char* part, Shape want) {
      const TensorView& v = ckpt_.get(b + part);
      if (v.shape != want)
        fail("{}: '{}{}' has shape {}, {} expected for a [{}, {}] layer at {} bits", dir_.string(), b, part,
             shape_str(v.shape), shape_str(want), out, in, bits_);
    };
    if (method_ == "gptq") {
      expect(".qzeros", {groups, out * bits_ / 32});
      expect(".scales", {groups, out});
      if (gidx) expect(".g_idx", {in});
    } else {
      expect(".qzeros", {groups, out / 8});
      expect(".scales", {groups, out});
    }
  }

  GroupQuantized unpack(const std::string& b) const {
    return unpack_groups(*packed(b + ".weight"), dir_.string(), b);
  }

  const std::string& method() const { return method_; }

 private:
  bool is_packed_part(const std::string& n) const {
    for (const char* part : {".qweight", ".qzeros", ".scales", ".g_idx"}) {
      std::string b;
      if (strip_suffix(n, part, b) && packed_.count(b)) return true;
    }
    return false;
  }

  std::filesystem::path dir_;
  Checkpoint ckpt_;
  std::string method_;
  int bits_ = 4, group_size_ = 128;
  GptqCheckpointFormat format_ = GptqCheckpointFormat::kV1;
  std::set<std::string> packed_;
};

}  // namespace

std::optional<PackedWeight> dense_packed(const TensorView& v) {
  if (v.shape.size() != 2 || (v.dtype != DType::F16 && v.dtype != DType::BF16 && v.dtype != DType::F32))
    return std::nullopt;
  PackedWeight p;
  p.shape = v.shape;
  p.ggml_type = v.dtype == DType::F32 ? 0 : v.dtype == DType::F16 ? 1 : 30;  // llama.cpp's F32, F16, BF16
  p.data = v.data;
  p.nbytes = v.nbytes;
  return p;
}

std::optional<LoadedModel> open_quantized_dir(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_directory(path, ec) || !std::filesystem::exists(path / "config.json", ec)) return std::nullopt;
  const auto cfg_path = path / "config.json";
  const std::string text = read_file(cfg_path);
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception& e) {
    fail("{}: malformed JSON: {}", cfg_path.string(), e.what());
  }
  if (!root.is_object() || !root.contains("quantization_config")) return std::nullopt;
  const json& qc = root["quantization_config"];
  if (!qc.is_object()) fail("{}: 'quantization_config' must be an object", cfg_path.string());
  const std::string qm = qc.value("quant_method", "");
  if (qm == "fp8" || (qm == "compressed-tensors" && qc.value("format", "") == "float-quantized"))
    return open_fp8_dir(path, text, qc);
  if (qm == "compressed-tensors") return open_compressed_tensors_dir(path, text, qc);
  LoadedModel m;
  m.path = path;
  m.config = parse_config_json(text, cfg_path.string());
  auto w = std::make_shared<QuantizedDirWeights>(path, qc);
  m.kind = w->method();
  m.weights = w;
  resolve_tied_head(m.config, *m.weights);
  check_tensors(m.config, *m.weights, path.string());
  m.tokenizer = std::make_shared<Tokenizer>(Tokenizer::from_dir(path));
  return m;
}


size_t packed_layer_bytes(int64_t in, int64_t out, int64_t groups, int bits, bool with_g_idx) {
  return size_t(in * out * bits / 8 + groups * out * bits / 8 + groups * out * 2 + (with_g_idx ? in * 4 : 0));
}

std::unique_ptr<WeightSource> QuantizedModel::as_weights() const { return std::make_unique<QuantizedView>(*this); }

HfQuantFormat parse_hf_quant_format(const std::string& name) {
  if (name == "gptq") return HfQuantFormat::GptqV1;
  if (name == "gptq_v2") return HfQuantFormat::GptqV2;
  if (name == "awq_gemm" || name == "awq") return HfQuantFormat::AwqGemm;
  if (name == "compressed-tensors" || name == "compressed_tensors") return HfQuantFormat::CompressedTensors;
  fail("--format '{}' is not known (known: gptq, gptq_v2, awq_gemm, compressed-tensors)", name);
}

void write_quantized_dir(const QuantizedModel& qm, const std::filesystem::path& dir, bool overwrite,
                         const PackLayer& pack_layer, const nlohmann::json& quantization_config,
                         const std::map<std::string, std::string>& extra_files, const std::set<std::string>& own_layers,
                         std::vector<TensorData> own_tensors) {
  QuantDirFormat f;
  f.pack = pack_layer;
  f.quantization_config = quantization_config;
  f.extra_files = extra_files;
  write_quantized_dir(qm, dir, overwrite, f, own_layers, std::move(own_tensors));
}

void write_quantized_dir(const QuantizedModel& qm, const std::filesystem::path& dir, bool overwrite,
                         const QuantDirFormat& format, const std::set<std::string>& own_layers,
                         std::vector<TensorData> own_tensors) {
  QL_ASSERT(qm.base);
  const LoadedModel& base = *qm.base;
  check_output_path(dir, overwrite);
  // The streamed writer, fed the finished model block by block, under a temporary name.
  const std::filesystem::path work = dir.string() + ".partial";
  std::error_code ec;
  std::filesystem::remove_all(work, ec);  // a leftover of an earlier, interrupted save
  try {
    const QuantizedDirWriter w(base, *base.weights, work, format, false);
    const ModelConfig& c = base.config;
    std::vector<std::vector<TensorData>> own_of(size_t(c.n_layers));
    for (auto& t : own_tensors) {
      const int block = w.block_of(t.name);
      QL_ASSERT(block >= 0, "tensor {} of an own layer is not in a block", t.name);
      own_of[size_t(block)].push_back(std::move(t));
    }
    size_t n_replaced = 0;
    for (int i = 0; i < int(c.n_layers); ++i) {
      const std::string& prefix = c.block(i).prefix;
      std::map<std::string, GroupQuantized> layers;
      for (auto it = qm.layers.lower_bound(prefix); it != qm.layers.end() && it->first.starts_with(prefix); ++it)
        layers.emplace(it->first, it->second);
      std::map<std::string, Tensor> replaced;
      for (auto it = qm.replaced.lower_bound(prefix); it != qm.replaced.end() && it->first.starts_with(prefix); ++it)
        replaced.emplace(it->first, it->second);
      n_replaced += replaced.size();
      w.write_block(i, layers, replaced, own_layers, std::move(own_of[size_t(i)]));
    }
    QL_ASSERT(n_replaced == qm.replaced.size(), "{} of {} replaced tensors are outside the blocks",
              qm.replaced.size() - n_replaced, qm.replaced.size());
    w.finish(dir, overwrite);
  } catch (...) {
    std::filesystem::remove_all(work, ec);
    throw;
  }
}

QuantDirFormat quant_dir_format(const QuantizedModel& qm, HfQuantFormat format) {
  if (format == HfQuantFormat::CompressedTensors) return compressed_tensors_format(qm);
  const bool awq = format == HfQuantFormat::AwqGemm;
  const auto gformat = format == HfQuantFormat::GptqV2 ? GptqCheckpointFormat::kV2 : GptqCheckpointFormat::kV1;
  const int bits = qm.params.bits, group_size = qm.params.group_size;
  QuantDirFormat f;
  f.pack = [=](const std::string& b, const GroupQuantized& q, std::vector<TensorData>& tensors) {
    if (awq) {
      const AwqPacked p = pack_awq_gemm(q, b);
      tensors.push_back(TensorData::from_values(b + ".qweight", DType::I32, {p.in, p.out / 8}, p.qweight));
      tensors.push_back(TensorData::from_values(b + ".qzeros", DType::I32, {p.n_groups, p.out / 8}, p.qzeros));
      tensors.push_back(TensorData::from_values(b + ".scales", DType::F16, {p.n_groups, p.out}, p.scales));
      return;
    }
    const GptqPacked p = pack_gptq(q, gformat, b);
    tensors.push_back(TensorData::from_values(b + ".qweight", DType::I32, {p.in * p.bits / 32, p.out}, p.qweight));
    tensors.push_back(TensorData::from_values(b + ".qzeros", DType::I32, {p.n_groups, p.out * p.bits / 32}, p.qzeros));
    tensors.push_back(TensorData::from_values(b + ".scales", DType::F16, {p.n_groups, p.out}, p.scales));
    tensors.push_back(TensorData::from_values(b + ".g_idx", DType::I32, {p.in}, p.g_idx));
  };
  f.unpack = [=](const SafetensorsFile& shard, const std::string& b) {
    auto part = [&](const char* suffix) -> const TensorView& {
      auto it = shard.tensors().find(b + suffix);
      if (it == shard.tensors().end()) fail("{}: layer '{}' has no '{}{}'", shard.path().string(), b, b, suffix);
      return it->second;
    };
    PackedWeight p;
    p.kind = awq ? PackedWeight::Kind::Awq : PackedWeight::Kind::Gptq;
    p.bits = bits;
    p.group_size = group_size;
    p.gptq_v1 = gformat == GptqCheckpointFormat::kV1;
    p.qweight = part(".qweight");
    p.qzeros = part(".qzeros");
    p.scales = part(".scales");
    if (!awq) p.g_idx = part(".g_idx");
    if (p.qweight.shape.size() != 2) fail("{}: '{}.qweight' must be 2-D", shard.path().string(), b);
    p.shape = awq ? Shape{p.qweight.shape[1] * 8, p.qweight.shape[0]}
                  : Shape{p.qweight.shape[1], p.qweight.shape[0] * 32 / bits};
    return unpack_groups(p, shard.path().string(), b);
  };
  if (awq) {
    f.quantization_config = {{"quant_method", "awq"}, {"bits", bits}, {"group_size", group_size},
                             {"zero_point", !qm.params.sym}, {"version", "gemm"}, {"modules_to_not_convert", nullptr}};
  } else {
    f.quantization_config = {{"quant_method", "gptq"},
                             {"bits", bits},
                             {"group_size", group_size},
                             {"desc_act", qm.act_order},
                             {"sym", qm.params.sym},
                             {"damp_percent", qm.damp_percent},
                             {"true_sequential", qm.true_sequential},
                             {"static_groups", qm.static_groups},
                             {"checkpoint_format", gformat == GptqCheckpointFormat::kV2 ? "gptq_v2" : "gptq"},
                             {"pack_dtype", "int32"},
                             {"quantizer", {"quantllm:0.1.0"}},
                             {"method", qm.method == QuantMethod::RTN ? "rtn" : "gptq"}};
    f.extra_files["quantize_config.json"] = f.quantization_config.dump(2) + "\n";
  }
  return f;
}

void save_quantized(const QuantizedModel& qm, const std::filesystem::path& dir, HfQuantFormat format,
                    bool overwrite) {
  write_quantized_dir(qm, dir, overwrite, quant_dir_format(qm, format));
}

HfQuantFormat hf_quant_format(const std::string& name, QuantMethod method) {
  if (name.empty()) return method == QuantMethod::AWQ ? HfQuantFormat::AwqGemm : HfQuantFormat::GptqV1;
  return parse_hf_quant_format(name);
}

void QuantizedModel::save(const std::filesystem::path& dir, const std::string& format, bool overwrite) const {
  save_quantized(*this, dir, hf_quant_format(format, method), overwrite);
}


}  // namespace quantllm
