// GPTQ over a whole model, block by block, written once against the calibration backend
// (methods/backend.h): for each true-sequential group of the block spec — q/k/v, o, gate/up, down for
// the dense blocks — the Hessians of the group's inputs as the already-quantized layers of the block
// produce them, then GPTQ of the group's layers where the Hessians are; the block's quantized outputs
// become the next block's inputs. Without true-sequential every layer sees the unquantized block.
// MoE experts: their Hessians from the tokens routed to them (or, with --moe-calibration all-experts,
// from every token); under routed calibration an expert with fewer than --moe-min-tokens is rounded to
// nearest. The tokens each expert got are printed.
#include "core/error.h"
#include "methods/checkpoints.h"
#include "methods/group_methods.h"
#include "quant/gptq.h"

#include <fmt/format.h>

namespace quantllm {

QuantizedModel quantize_gptq(const LoadedModel& model, const QuantizeRequest& opt, const CalibWindows& windows,
                             const BlockProgress& progress, const QuantizedDirWriter* writer) {
  const ModelConfig& c = model.config;
  const bool true_sequential = opt.gptq.true_sequential;
  QuantizedModel qm = new_quantized_model(model, opt);
  BackendOptions bo = backend_options(opt);
  bo.keep_mids = true_sequential;
  BlockCheckpoints ckpt(model, opt, "gptq", &windows);
  const std::unique_ptr<CalibrationBackend> be = make_calibration_backend(model, windows, bo);
  BlockOutput output(ckpt, &qm, writer);
  const int done = output.done();
  const GPTQOptions g = gptq_options(opt);
  const int n_blocks = int(c.n_layers);
  for (int i = 0; i < n_blocks; ++i) {
    const BlockSpec& spec = c.block(i);
    be->load_block(i, i >= done);
    if (i < done) {
      // Finished by an interrupted run (--resume): its quantized layers, run forward.
      BlockResult r = output.load(i);
      be->set_tensors(restore_quantized_layers(spec, r, qm));
      be->advance();
      if (progress) progress(i + 1, n_blocks, fmt::format("block {}/{}: restored", i + 1, n_blocks));
      continue;
    }
    BlockResult saved;  // what this block produces, for the output
    for (const auto& group : spec.sequential_groups(true_sequential)) {
      // The points the group's layers read, in block order, and the layers reading each.
      const std::vector<int> points = spec.input_points(group);
      be->collect_hessians(points, true_sequential);
      std::vector<std::string> expert_report;
      for (int p : points) {
        std::vector<int> slots;
        for (int slot : group)
          if (spec.linears[size_t(slot)].input == p) slots.push_back(slot);
        const Point& pt = spec.points[size_t(p)];
        const int64_t tokens = pt.expert >= 0 ? be->hessian_tokens(p) : -1;
        if (pt.expert >= 0 && !pt.is_mid) expert_report.push_back(fmt::format("{}:{}", pt.expert, tokens));
        if (pt.expert >= 0 && expert_starved(tokens, opt)) {
          // Rounded to nearest, and said so (never skipped, never a Hessian of zeros, which would zero
          // the expert).
          for (int slot : slots) {
            const std::string name = spec.linear_tensor(slot);
            LayerStats st;
            st.tokens = tokens, st.rtn_fallback = true;
            qm.stats[name] = saved.stats[name] = st;
            saved.layers[name] = be->rtn(slot, g.quant);
          }
          continue;
        }
        for (GptqLayerResult& r : be->gptq(p, slots, g)) {
          const std::string name = spec.linear_tensor(r.slot);
          qm.stats[name] = saved.stats[name] = LayerStats{r.stats.objective, r.rtn_objective, r.stats.damp_percent_used,
                                                          r.stats.seconds, r.stats.dead_inputs, tokens, false};
          report_gptq_layer(name, r.stats, r.in, opt.gptq.damp);
          saved.layers[name] = std::move(r.q);
        }
      }
      if (!expert_report.empty()) {  // the tokens each expert got (expert:tokens), and the policy's verdict
        int64_t fallbacks = 0;
        std::string list;
        for (const std::string& e : expert_report) {
          const int64_t n = std::stoll(e.substr(e.find(':') + 1));
          const bool rtn = expert_starved(n, opt);
          fallbacks += rtn;
          list += " " + e + (rtn ? "(rtn)" : "");
        }
        fmt::print(stderr, "quantllm: block {} experts, calibration tokens{}{}\n", i, list,
                   bo.moe_all_experts ? " (all-experts: every token through every expert)"
                   : fallbacks ? fmt::format("; {} below --moe-min-tokens {} rounded to nearest", fallbacks,
                                             opt.moe.min_tokens)
                               : std::string());
      }
      if (progress)
        progress(i, n_blocks, fmt::format("block {}/{}: gptq {}", i + 1, n_blocks,
                                          role_name(spec.linears[size_t(group.front())].role)));
    }
    be->advance();
    output.save(i, std::move(saved));
    if (progress) progress(i + 1, n_blocks, fmt::format("block {}/{} done", i + 1, n_blocks));
  }
  output.finish();
  be->finish();
  return qm;
}

}  // namespace quantllm
