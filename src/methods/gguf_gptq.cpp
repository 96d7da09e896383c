// GPTQ into the GGML blocks of a GGUF plan (quantize --method gguf --gptq): the GPTQ driver's walk —
// block by block, the true-sequential groups of the block spec, each group's Hessians from the block as
// its earlier layers were already rounded — with every planned layer rounded onto its type's blocks by
// quant/ggml/gptq_grid.h instead of integer groups. What the file holds is what the next layers saw.
#include "core/error.h"
#include "formats/gguf_plan.h"
#include "methods/group_methods.h"
#include "quant/ggml/gptq_grid.h"

#include <fmt/format.h>

#include <cstdio>

namespace quantllm {

namespace {

// The weights llama.cpp's own quantizer makes of w in `type` (no importance): what the writer stores
// for a layer GPTQ does not round, so that the later layers calibrate on it.
Tensor llama_cpp_rounding(const Tensor& w, ggml::GgmlType type) {
  const ggml::QuantTraits& t = ggml::traits(type);
  if (!t.is_quantized && type == ggml::GgmlType::F32) return w;
  std::vector<uint8_t> bytes(t.row_size(w.dim(1)) * size_t(w.dim(0)));
  ggml::quantize_rows(type, w.ptr(), bytes.data(), w.dim(0), w.dim(1), nullptr);
  Tensor y(w.shape);
  ggml::dequantize_rows(type, bytes.data(), y.ptr(), w.dim(0), w.dim(1));
  return y;
}

}  // namespace

std::map<std::string, std::vector<uint8_t>> gptq_gguf_layers(const LoadedModel& model, const QuantizeRequest& r,
                                                             const std::vector<PlannedTensor>& plan,
                                                             const BlockProgress& progress) {
  const ModelConfig& c = model.config;
  std::map<std::string, ggml::GgmlType> type_of;  // HF weight name → planned type (experts: each of the stack)
  for (const PlannedTensor& p : plan) {
    if (p.stack.empty()) type_of[p.hf_name] = p.type;
    for (const std::string& e : p.stack) type_of[e] = p.type;
  }
  GPTQOptions g = gptq_options(r);
  g.act_order = g.static_groups = false;  // a GGML block holds contiguous columns
  const bool true_sequential = r.gptq.true_sequential;
  BackendOptions bo = backend_options(r);
  bo.keep_mids = true_sequential;
  const CalibWindows windows = calibration_windows(model, r.calib);
  const std::unique_ptr<CalibrationBackend> be = make_calibration_backend(model, windows, bo);
  std::map<std::string, std::vector<uint8_t>> out;
  double objective_sum = 0;
  int64_t n_layers = 0;
  const int n_blocks = int(c.n_layers);
  for (int i = 0; i < n_blocks; ++i) {
    const BlockSpec& spec = c.block(i);
    be->load_block(i, true);
    int64_t experts = 0, starved = 0;  // expert inputs of this block, and those left to llama.cpp's rounding
    for (const auto& group : spec.sequential_groups(true_sequential)) {
      const std::vector<int> points = spec.input_points(group);
      be->collect_hessians(points, true_sequential);
      for (int p : points) {
        std::vector<int> grid_slots, other_slots;
        const Point& pt = spec.points[size_t(p)];
        const int64_t tokens = pt.expert >= 0 ? be->hessian_tokens(p) : -1;
        const bool too_few = pt.expert >= 0 && expert_starved(tokens, r);
        if (pt.expert >= 0 && !pt.is_mid) experts += 1, starved += too_few;
        for (int slot : group) {
          if (spec.linears[size_t(slot)].input != p) continue;
          const std::string name = spec.linear_tensor(slot) + ".weight";
          auto it = type_of.find(name);
          if (it == type_of.end()) fail("layer '{}' is not in the GGUF plan", name);
          (ggml::gptq_grid_supports(it->second) && !too_few ? grid_slots : other_slots).push_back(slot);
        }
        // Types without per-weight codes (F16 …) and starved experts: llama.cpp's rounding, as the writer will.
        std::map<std::string, Tensor> rounded;
        for (int slot : other_slots) {
          const std::string name = spec.linear_tensor(slot) + ".weight";
          rounded[name] = llama_cpp_rounding(be->tensor(name), type_of.at(name));
        }
        if (!rounded.empty()) be->set_tensors(rounded);
        if (grid_slots.empty()) continue;
        std::map<int, std::unique_ptr<ggml::GgmlGptqGrid>> grids;
        for (int slot : grid_slots) {
          const LinearSlot& l = spec.linears[size_t(slot)];
          grids[slot] = std::make_unique<ggml::GgmlGptqGrid>(type_of.at(spec.linear_tensor(slot) + ".weight"), l.out, l.in);
        }
        const std::vector<GPTQStats> stats =
            be->gptq_onto(p, grid_slots, g, [&](int slot) -> GptqGrid& { return *grids.at(slot); });
        for (size_t k = 0; k < grid_slots.size(); ++k) {
          const std::string name = spec.linear_tensor(grid_slots[k]);
          report_gptq_layer(name, stats[k], spec.linears[size_t(grid_slots[k])].in, g.damp_percent);
          objective_sum += stats[k].objective, ++n_layers;
          out[name + ".weight"] = grids.at(grid_slots[k])->take_bytes();
        }
      }
      if (progress)
        progress(i, n_blocks, fmt::format("block {}/{}: gptq {}", i + 1, n_blocks,
                                          role_name(spec.linears[size_t(group.front())].role)));
    }
    if (starved > 0)
      std::fprintf(stderr, "quantllm: block %d: %lld of %lld experts got fewer than --moe-min-tokens %lld calibration "
                   "tokens: llama.cpp's rounding for them\n", i, (long long)starved, (long long)experts,
                   (long long)r.moe.min_tokens);
    be->advance();
    if (progress) progress(i + 1, n_blocks, fmt::format("block {}/{} done", i + 1, n_blocks));
  }
  be->finish();
  if (n_layers)
    std::fprintf(stderr, "quantllm: GPTQ into GGML blocks: %lld layers, mean objective %.4e\n", (long long)n_layers,
                 objective_sum / double(n_layers));
  return out;
}

}  // namespace quantllm
