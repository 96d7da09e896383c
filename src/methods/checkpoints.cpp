// Block checkpoints for resumable runs (see checkpoints.h).
#include "methods/checkpoints.h"

#include "core/error.h"
#include "core/fs.h"
#include "formats/quantized_dir_writer.h"
#include "io/safetensors.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstring>

namespace quantllm {

namespace {

using nlohmann::json;

uint64_t fnv1a(const void* data, size_t n, uint64_t h = 1469598103934665603ull) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

// Every input that changes what a block produces.
std::string fingerprint(const LoadedModel& model, const QuantizeRequest& o, const std::string& stage,
                        const CalibWindows* windows) {
  std::error_code ec;
  const auto path = std::filesystem::weakly_canonical(model.path, ec);
  uint64_t shapes = fnv1a(nullptr, 0);
  for (const auto& [name, shape] : expected_tensors(model.config)) {
    shapes = fnv1a(name.data(), name.size(), shapes);
    shapes = fnv1a(shape.data(), shape.size() * sizeof(shape[0]), shapes);
  }
  const QuantParams q = quant_params(o.method == "gguf" ? [&] { QuantizeRequest r = o; r.method = "rtn"; return r; }() : o);
  json f = {{"stage", stage},
            {"model", (ec ? model.path : path).string()},
            {"model_kind", model.kind},
            {"tensors_hash", fmt::format("{:016x}", shapes)},
            {"method", o.method},
            {"bits", q.bits},
            {"group_size", q.group_size},
            {"sym", q.sym},
            {"mse", q.mse},
            {"scale_rounding", int(q.scale_rounding)},
            {"rule", int(q.rule)},
            {"damp_percent", o.gptq.damp},
            {"block_size", o.gptq.block_size},
            {"act_order", o.gptq.act_order},
            {"static_groups", o.gptq.static_groups},
            {"true_sequential", o.gptq.true_sequential},
            {"chunk_tokens", o.device.chunk_tokens},
            {"awq_scale", o.awq.scale_first},
            {"awq_search_tokens", o.awq.search_tokens}};
  if (!o.awq.clip) f["awq_clip"] = false;  // the defaults leave older checkpoints' fingerprints as they were
  if (!o.awq.duo_scaling) f["awq_duo_scaling"] = false;
  if (o.awq.act_floor > 0) f["awq_act_floor"] = o.awq.act_floor;
  if (model.config.n_experts > 0) {  // how the experts were calibrated (dense models: as before)
    f["moe_calibration"] = o.moe.calibration;
    f["moe_min_tokens"] = o.moe.min_tokens;
  }
  if (o.device.device == "cuda") {  // another arithmetic: blocks from a CPU run do not mix with these
    f["device"] = "cuda";
    f["gpu_tf32"] = o.device.gpu_tf32;
    if (o.device.gpu_bf16) f["gpu_bf16"] = true;
    f["gpu_chunk_tokens"] = o.device.gpu_chunk_tokens;
  }
  if (windows) {
    f["calib_windows"] = windows->n;
    f["calib_seqlen"] = windows->seqlen;
    f["calib_hash"] = fmt::format("{:016x}", fnv1a(windows->tokens.data(), windows->tokens.size() * sizeof(int32_t)));
  }
  return f.dump();
}

}  // namespace

std::map<std::string, Tensor> restore_quantized_layers(const BlockSpec& spec, BlockResult& r, QuantizedModel& qm) {
  std::map<std::string, Tensor> weights;
  for (size_t l = 0; l < spec.linears.size(); ++l) {
    if (!spec.linears[l].quantized) continue;
    const std::string name = spec.linear_tensor(int(l));
    auto it = r.layers.find(name);
    if (it == r.layers.end()) fail("--resume: block {} checkpoint lacks layer {}", spec.layer, name);
    weights[name + ".weight"] = it->second.dequantize();
    if (r.stats.count(name)) qm.stats[name] = r.stats[name];
  }
  return weights;
}

BlockOutput::~BlockOutput() {
  if (pending_.valid()) pending_.wait();
}

int BlockOutput::done() const {
  const int n = ckpt_.done();
  if (writer_)
    for (int i = 0; i < n; ++i)
      if (!writer_->has_block(i))
        fail("--resume: block {} is recorded as finished but its shard is missing from {} (delete it to start over)", i,
             writer_->work().string());
  return n;
}

BlockResult BlockOutput::load(int block) const {
  BlockResult r = ckpt_.load(block);
  if (writer_) {
    try {
      r.layers = writer_->read_block(block);
    } catch (const Error& e) {
      fail("--resume: {} (a damaged {}; delete it to start over)", e.what(), writer_->work().string());
    }
  }
  return r;
}

void BlockOutput::save(int block, BlockResult r) {
  finish();
  if (writer_) writer_->check_background();  // a failure of the first shard ends the run here, not at the end
  if (!writer_) {
    if (qm_)
      for (auto& [name, q] : r.layers) qm_->layers[name] = std::move(q);
    if (!ckpt_.enabled()) return;
    r.layers.clear();
  }
  pending_ = std::async(std::launch::async, [this, block, r = std::move(r)] {
    if (writer_) writer_->write_block(block, r.layers, r.tensors);
    ckpt_.save(block, r);
  });
}

void BlockOutput::finish() {
  if (pending_.valid()) pending_.get();
}

Tensor& block_tensor(const BlockSpec& spec, BlockWeights& w, const std::string& name) {
  const BlockSpec::TensorSlot r = spec.tensor_slot(name);
  QL_ASSERT(r.slot >= 0, "no tensor named {} in block {}", name, spec.layer);
  if (r.is_norm) return r.is_bias ? w.norm[size_t(r.slot)].b : w.norm[size_t(r.slot)].w;
  return r.is_bias ? w.linear[size_t(r.slot)].b : w.linear[size_t(r.slot)].w;
}

void check_restored_tensor(const BlockSpec& spec, const std::string& name, const Shape& shape, const Shape& expected) {
  if (spec.tensor_slot(name).slot < 0)
    fail("--resume: the checkpoint of block {} holds '{}', not a tensor of this block (a damaged or foreign OUT.resume; "
         "delete it to start over)", spec.layer, name);
  if (shape != expected)
    fail("--resume: the checkpoint of block {} holds '{}' of shape {}, the block's is {} (a damaged OUT.resume; delete "
         "it to start over)", spec.layer, name, shape_str(shape), shape_str(expected));
}

void apply_block_tensors(const BlockSpec& spec, BlockWeights& w, const std::map<std::string, Tensor>& t) {
  for (const auto& [name, v] : t) {
    if (spec.tensor_slot(name).slot < 0) check_restored_tensor(spec, name, v.shape, {});
    Tensor& dst = block_tensor(spec, w, name);
    check_restored_tensor(spec, name, v.shape, dst.shape);
    dst = v;
  }
}

BlockCheckpoints::BlockCheckpoints(const LoadedModel& model, const QuantizeRequest& opt, std::string stage,
                                   const CalibWindows* windows)
    : dir_(checkpoint_dir(opt)), stage_(std::move(stage)) {
  if (dir_.empty()) return;
  fingerprint_ = fingerprint(model, opt, stage_, windows);
  const auto state_path = dir_ / (stage_ + "-state.json");
  std::error_code ec;
  if (!opt.resume || !std::filesystem::exists(state_path, ec)) return;
  json state;
  try {
    state = json::parse(read_file(state_path));
    if (state.at("fingerprint").get<std::string>() != fingerprint_)
      fail("--resume: {} was written by a run with other options, model or calibration data; run without "
           "--resume to start over", dir_.string());
    done_ = state.at("blocks_done").get<int>();
  } catch (const json::exception& e) {
    fail("--resume: {}: {}", state_path.string(), e.what());
  }
  if (done_ < 0 || done_ > int(model.config.n_layers)) fail("--resume: {}: bad blocks_done {}", state_path.string(), done_);
  for (int i = 0; i < done_; ++i)
    if (!std::filesystem::exists(block_path(i), ec)) fail("--resume: {} is missing", block_path(i).string());
  next_ = done_;
}

std::filesystem::path BlockCheckpoints::block_path(int block) const {
  return dir_ / fmt::format("{}-block-{:03d}.safetensors", stage_, block);
}

void BlockCheckpoints::save(int block, const BlockResult& r) {
  if (dir_.empty()) return;
  QL_ASSERT(block == next_, "checkpoint of block {} saved out of order (next {})", block, next_);
  std::filesystem::create_directories(dir_);
  std::vector<TensorData> tensors;
  json meta = {{"stats", json::object()}};
  for (const auto& [name, t] : r.tensors) tensors.push_back(TensorData::from_f32(name, t));
  for (const auto& [name, s] : r.stats)
    meta["stats"][name] = {{"relative_error", s.relative_error}, {"rtn_relative_error", s.rtn_relative_error},
                           {"damp", s.damp}, {"seconds", s.seconds}, {"dead_inputs", s.dead_inputs},
                           {"tokens", s.tokens}, {"rtn_fallback", s.rtn_fallback}};
  write_safetensors(block_path(block), tensors, {{"block", meta.dump()}});
  write_file_atomic(dir_ / (stage_ + "-state.json"),
                    json({{"fingerprint", fingerprint_}, {"blocks_done", block + 1}}).dump() + "\n");
  next_ = block + 1;
}

BlockResult BlockCheckpoints::load(int block) const {
  QL_ASSERT(block < done_, "block {} was not restored", block);
  const SafetensorsFile f(block_path(block));
  const std::string file = f.path().string();
  auto it = f.metadata().find("block");
  if (it == f.metadata().end()) fail("{}: not a quantllm block checkpoint", file);
  BlockResult r;
  try {
    const json meta = json::parse(it->second);
    for (const auto& [name, s] : meta.at("stats").items())
      r.stats[name] = LayerStats{s.at("relative_error").get<double>(), s.at("rtn_relative_error").get<double>(),
                                 s.at("damp").get<double>(), s.at("seconds").get<double>(),
                                 s.at("dead_inputs").get<int64_t>(), s.value("tokens", int64_t(-1)),
                                 s.value("rtn_fallback", false)};
  } catch (const json::exception& e) {
    fail("{}: bad checkpoint metadata: {}", file, e.what());
  }
  for (const auto& [name, v] : f.tensors()) r.tensors.emplace(name, v.to_f32());
  return r;
}

}  // namespace quantllm
