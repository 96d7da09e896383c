// compressed-tensors checkpoints (quant_method "compressed-tensors", format "pack-quantized"): the
// writer of our RTN / GPTQ / AWQ results and the reader of such directories, ours or llm-compressor's.
// The tensor layout is quant/ct_format.h's; this file is the directory and its quantization_config.
#include "core/error.h"
#include "core/fs.h"
#include "formats/open.h"
#include "formats/quantized_model.h"
#include "formats/quantized_dir_writer.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "quant/ct_format.h"

#include <fmt/format.h>

#include <cstring>
#include <regex>
#include <set>

namespace quantllm {

using json = nlohmann::json;

namespace {

constexpr const char* kParts[] = {".weight_packed", ".weight_scale", ".weight_zero_point", ".weight_g_idx",
                                  ".weight_shape"};

// One config group's weight scheme, as far as reading pack-quantized needs it.
struct WeightScheme {
  int bits = 4;
  bool symmetric = true;
  int group_size = -1;  // -1: strategy "channel"
  std::vector<std::string> targets;
};

WeightScheme parse_scheme(const json& group, const std::string& gname, const std::string& where) {
  if (!group.is_object() || !group.contains("weights") || !group["weights"].is_object())
    fail("{}: config group '{}' has no 'weights' scheme", where, gname);
  const json& w = group["weights"];
  WeightScheme s;
  try {
    const std::string type = w.value("type", "int");
    if (type != "int") fail("{}: config group '{}': weight type '{}' is not supported (supported: int)", where, gname, type);
    s.bits = w.at("num_bits").get<int>();
    s.symmetric = w.value("symmetric", true);
    const std::string strategy = w.value("strategy", "group");
    if (strategy == "group") {
      s.group_size = w.at("group_size").get<int>();
      if (s.group_size < 1) fail("{}: config group '{}': group_size {}", where, gname, s.group_size);
    } else if (strategy != "channel") {
      fail("{}: config group '{}': strategy '{}' is not supported for packed weights (supported: group, channel)", where,
           gname, strategy);
    }
    if (group.contains("input_activations") && !group["input_activations"].is_null())
      fail("{}: config group '{}' quantizes activations too; only weight-only schemes (W4A16, W8A16) are read", where, gname);
    for (const auto& t : group.at("targets")) s.targets.push_back(t.get<std::string>());
  } catch (const json::exception& e) {
    fail("{}: config group '{}': {}", where, gname, e.what());
  }
  if (s.bits < 2 || s.bits > 8) fail("{}: config group '{}': num_bits {} (2 to 8 supported)", where, gname, s.bits);
  return s;
}

// Does a target name this module? "re:PATTERN" matches from the start of the name (Python's re.match),
// a plain string names the module exactly; "Linear" (a class) matches every packed module.
bool targets(const WeightScheme& s, const std::string& module) {
  for (const auto& t : s.targets) {
    if (t == "Linear" || t == module) return true;
    if (t.rfind("re:", 0) == 0) {
      try {
        if (std::regex_search(module, std::regex(t.substr(3)), std::regex_constants::match_continuous)) return true;
      } catch (const std::regex_error&) {
        fail("quantization_config: target '{}' is not a valid regular expression", t);
      }
    }
  }
  return false;
}

class CtWeights final : public WeightSource {
 public:
  CtWeights(const std::filesystem::path& dir, const json& qc) : dir_(dir), ckpt_(dir) {
    const std::string where = (dir / "config.json").string();
    const std::string format = qc.value("format", "");
    if (format != "pack-quantized")
      fail("{}: compressed-tensors format '{}' is not supported (supported: pack-quantized, float-quantized)", where, format);
    if (!qc.contains("config_groups") || !qc["config_groups"].is_object() || qc["config_groups"].empty())
      fail("{}: compressed-tensors quantization_config has no config_groups", where);
    std::vector<WeightScheme> schemes;
    for (const auto& [gname, g] : qc["config_groups"].items()) schemes.push_back(parse_scheme(g, gname, where));
    for (const auto& n : ckpt_.names()) {
      std::string b;
      if (!strip_suffix(n, ".weight_packed", b)) continue;
      // Specific targets (names, patterns) before the class "Linear".
      const WeightScheme* pick = nullptr;
      for (const auto& s : schemes)
        for (const auto& t : s.targets)
          if (!pick && t != "Linear" && targets(WeightScheme{.targets = {t}}, b)) pick = &s;
      for (const auto& s : schemes)
        if (!pick && targets(s, b)) pick = &s;
      if (!pick) fail("{}: module '{}' is packed but no config group targets it", where, b);
      for (const char* part : {".weight_scale", ".weight_shape"})
        if (!ckpt_.has(b + part)) fail("{}: packed module '{}' has no '{}{}'", dir.string(), b, b, part);
      if (!pick->symmetric && !ckpt_.has(b + ".weight_zero_point"))
        fail("{}: asymmetric module '{}' has no '{}.weight_zero_point'", dir.string(), b, b);
      layers_[b] = *pick;
      shapes_[b] = read_shape(b);
      check_parts(b, *pick, shapes_[b]);
    }
    if (layers_.empty()) fail("{}: no packed layers (*.weight_packed) found", dir.string());
  }

  bool has(const std::string& n) const override {
    std::string b;
    if (strip_suffix(n, ".weight", b) && layers_.count(b)) return true;
    return ckpt_.has(n) && !is_part(n);
  }
  Shape shape(const std::string& n) const override {
    std::string b;
    if (strip_suffix(n, ".weight", b) && layers_.count(b)) return shapes_.at(b);
    return ckpt_.get(n).shape;
  }
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (const auto& n : ckpt_.names())
      if (!is_part(n)) out.push_back(n);
    for (const auto& [b, s] : layers_) out.push_back(b + ".weight");
    std::sort(out.begin(), out.end());
    return out;
  }
  Tensor load(const std::string& n) const override {
    std::string b;
    if (strip_suffix(n, ".weight", b) && layers_.count(b)) return unpack_groups(*packed(n), dir_.string(), b).dequantize();
    return ckpt_.get(n).to_f32();
  }
  std::string format(const std::string& n) const override {
    std::string b;
    if (strip_suffix(n, ".weight", b) && layers_.count(b)) {
      const WeightScheme& s = layers_.at(b);
      return s.group_size > 0 ? fmt::format("CT int{} g{}", s.bits, s.group_size) : fmt::format("CT int{} channel", s.bits);
    }
    return std::string(dtype_name(ckpt_.get(n).dtype));
  }
  size_t stored_bytes(const std::string& n) const override {
    std::string b;
    if (strip_suffix(n, ".weight", b) && layers_.count(b)) {
      size_t s = 0;
      for (const char* part : kParts)
        if (ckpt_.has(b + part)) s += ckpt_.get(b + part).nbytes;
      return s;
    }
    return ckpt_.get(n).nbytes;
  }
  std::optional<PackedWeight> packed(const std::string& n) const override {
    std::string b;
    if (!strip_suffix(n, ".weight", b) || !layers_.count(b)) return dense_packed(ckpt_.get(n));
    const WeightScheme& s = layers_.at(b);
    PackedWeight p;
    p.kind = PackedWeight::Kind::Ct;
    p.shape = shapes_.at(b);
    p.bits = s.bits;
    p.group_size = s.group_size;
    p.symmetric = s.symmetric;
    p.qweight = ckpt_.get(b + ".weight_packed");
    p.scales = ckpt_.get(b + ".weight_scale");
    if (!s.symmetric) p.qzeros = ckpt_.get(b + ".weight_zero_point");
    if (ckpt_.has(b + ".weight_g_idx")) p.g_idx = ckpt_.get(b + ".weight_g_idx");
    return p;
  }

 private:
  bool is_part(const std::string& n) const {
    for (const char* part : kParts) {
      std::string b;
      if (strip_suffix(n, part, b) && layers_.count(b)) return true;
    }
    return false;
  }
  // The parts' shapes against weight_shape and the scheme, from the headers alone (inspect checks them too).
  void check_parts(const std::string& b, const WeightScheme& s, const Shape& shape) const {
    const int64_t out = shape[0], in = shape[1], pf = 32 / s.bits;
    const bool has_gidx = ckpt_.has(b + ".weight_g_idx");
    if (!has_gidx && s.group_size > 0 && in % s.group_size != 0)
      fail("{}: '{}': group size {} does not divide its {} input columns", dir_.string(), b, s.group_size, in);
    const int64_t groups = s.group_size > 0 ? (in + s.group_size - 1) / s.group_size : 1;
    auto expect = [&](const std::string& part, Shape want) {
      const TensorView& v = ckpt_.get(b + part);
      if (v.shape != want)
        fail("{}: '{}{}' has shape {}, {} expected for weight_shape [{}, {}] at {} bits", dir_.string(), b, part,
             shape_str(v.shape), shape_str(want), out, in, s.bits);
    };
    expect(".weight_packed", {out, (in + pf - 1) / pf});
    expect(".weight_scale", {out, groups});
    if (!s.symmetric) expect(".weight_zero_point", {(out + pf - 1) / pf, groups});
    if (has_gidx) expect(".weight_g_idx", {in});
  }
  Shape read_shape(const std::string& b) const {
    const TensorView& v = ckpt_.get(b + ".weight_shape");
    if (v.numel() != 2 || (v.dtype != DType::I64 && v.dtype != DType::I32))
      fail("{}: '{}.weight_shape' must hold 2 integers (I64 or I32), has {} {}", dir_.string(), b, v.numel(),
           dtype_name(v.dtype));
    Shape s(2);
    for (int i = 0; i < 2; ++i) {
      int64_t x = 0;
      if (v.dtype == DType::I64) std::memcpy(&x, v.data + 8 * i, 8);
      else {
        int32_t y;
        std::memcpy(&y, v.data + 4 * i, 4);
        x = y;
      }
      if (x < 1 || x > (int64_t(1) << 31)) fail("{}: '{}.weight_shape' holds {}", dir_.string(), b, x);
      s[size_t(i)] = x;
    }
    return s;
  }

  std::filesystem::path dir_;
  Checkpoint ckpt_;
  std::map<std::string, WeightScheme> layers_;
  std::map<std::string, Shape> shapes_;
};

}  // namespace

// The modules the writer leaves in full precision though they are linear layers: the head and MoE routers.
std::vector<std::string> unquantized_linears(const ModelConfig& c) {
  std::vector<std::string> v = {"lm_head"};
  for (int i = 0; i < int(c.n_layers); ++i) {
    const BlockSpec& spec = c.block(i);
    for (size_t l = 0; l < spec.linears.size(); ++l)
      if (!spec.linears[l].quantized) v.push_back(spec.linear_tensor(int(l)));
  }
  return v;
}

json compressed_tensors_config(const json& weights, const std::string& format, const std::vector<std::string>& ignore) {
  return {{"quant_method", "compressed-tensors"},
          {"format", format},
          {"quantization_status", "compressed"},
          {"config_groups",
           {{"group_0",
             {{"targets", {"Linear"}},
              {"weights", weights},
              {"input_activations", nullptr},
              {"output_activations", nullptr},
              {"format", format}}}}},
          {"ignore", ignore},
          {"kv_cache_scheme", nullptr},
          {"global_compression_ratio", nullptr},
          {"sparsity_config", json::object()}};
}

QuantDirFormat compressed_tensors_format(const QuantizedModel& qm) {
  QL_ASSERT(qm.base);
  const QuantParams p = qm.params;
  // Act-order: "group" when the groups follow the activation order (g_idx stored for every layer, as vLLM
  // expects), "weight" when they were fixed on contiguous columns first (--static-groups: no g_idx). Decided
  // from the settings, before any layer exists: the writer streams.
  const bool scattered = qm.act_order && !qm.static_groups;
  const json actorder = scattered ? json("group") : qm.act_order ? json("weight") : json(nullptr);
  QuantDirFormat f;
  f.pack = [p, scattered](const std::string& b, const GroupQuantized& q, std::vector<TensorData>& out) {
    if (!scattered && !contiguous_groups(q))
      fail("compressed-tensors: layer '{}' has act-order groups but the run was not act-order", b);
    const CtPacked c = pack_ct(q, p.sym, b);
    out.push_back(TensorData::from_values(b + ".weight_packed", DType::I32, {c.out, c.packed_cols()}, c.weight_packed));
    Tensor s({c.out, c.n_groups});
    s.data = c.weight_scale;
    out.push_back(TensorData::from_f32_as(b + ".weight_scale", s, DType::F16));  // exact: pack_ct checked
    if (!c.symmetric)
      out.push_back(TensorData::from_values(b + ".weight_zero_point", DType::I32, {c.packed_zero_rows(), c.n_groups},
                                            c.weight_zero_point));
    if (scattered) out.push_back(TensorData::from_values(b + ".weight_g_idx", DType::I32, {c.in}, q.g_idx));
    out.push_back(TensorData::from_values(b + ".weight_shape", DType::I64, {2}, std::vector<int64_t>{c.out, c.in}));
  };
  f.unpack = [p](const SafetensorsFile& shard, const std::string& b) {
    auto part = [&](const char* suffix) -> const TensorView* {
      auto it = shard.tensors().find(b + suffix);
      return it == shard.tensors().end() ? nullptr : &it->second;
    };
    for (const char* need : {".weight_packed", ".weight_scale", ".weight_shape"})
      if (!part(need)) fail("{}: layer '{}' has no '{}{}'", shard.path().string(), b, b, need);
    const TensorView& sv = *part(".weight_shape");
    if (sv.dtype != DType::I64 || sv.numel() != 2) fail("{}: '{}.weight_shape' must hold 2 I64", shard.path().string(), b);
    PackedWeight w;
    w.kind = PackedWeight::Kind::Ct;
    w.shape.resize(2);
    std::memcpy(w.shape.data(), sv.data, 16);
    w.bits = p.bits;
    w.group_size = p.group_size;
    w.symmetric = p.sym;
    w.qweight = *part(".weight_packed");
    w.scales = *part(".weight_scale");
    if (!p.sym) {
      if (!part(".weight_zero_point")) fail("{}: layer '{}' has no zero points", shard.path().string(), b);
      w.qzeros = *part(".weight_zero_point");
    }
    if (part(".weight_g_idx")) w.g_idx = *part(".weight_g_idx");
    return unpack_groups(w, shard.path().string(), b);
  };
  const bool channel = p.group_size <= 0;
  const json weights = {{"num_bits", p.bits},
                        {"type", "int"},
                        {"symmetric", p.sym},
                        {"group_size", channel ? json(nullptr) : json(p.group_size)},
                        {"strategy", channel ? "channel" : "group"},
                        {"block_structure", nullptr},
                        {"dynamic", false},
                        {"actorder", actorder},
                        {"observer", "minmax"},
                        {"observer_kwargs", json::object()}};
  f.quantization_config = compressed_tensors_config(weights, "pack-quantized", unquantized_linears(qm.base->config));
  return f;
}

void save_compressed_tensors(const QuantizedModel& qm, const std::filesystem::path& dir, bool overwrite) {
  write_quantized_dir(qm, dir, overwrite, compressed_tensors_format(qm));
}

std::optional<LoadedModel> open_compressed_tensors_dir(const std::filesystem::path& path, const std::string& config_text,
                                                       const json& qc) {
  const auto cfg_path = path / "config.json";
  LoadedModel m;
  m.path = path;
  m.config = parse_config_json(config_text, cfg_path.string());
  m.kind = "compressed-tensors";
  m.weights = std::make_shared<CtWeights>(path, qc);
  resolve_tied_head(m.config, *m.weights);
  check_tensors(m.config, *m.weights, path.string());
  m.tokenizer = std::make_shared<Tokenizer>(Tokenizer::from_dir(path));
  return m;
}

}  // namespace quantllm
