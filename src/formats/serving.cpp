// Which serving kernels a quantized directory targets in vLLM (and SGLang, whose quantized linear layers
// follow vLLM's), from its quantization_config and layer shapes — facts of those engines' kernel
// selection: Marlin takes 4- and 8-bit weights in groups of 32, 64 or 128 (or per channel) with output
// sizes a multiple of 64 and input sizes a multiple of 128; GPTQ reaches it only symmetric (asymmetric GPTQ
// runs the slower exllama gptq_gemm); AWQ GEMM with zero points goes to awq_marlin; compressed-tensors
// W4A16/W8A16 goes through CompressedTensorsWNA16 (Machete on Hopper or Marlin; zero points where the
// engine has them) and takes only 4 and 8 bits.
#include "formats/quantized_model.h"

#include "core/fs.h"

#include <fmt/format.h>

namespace quantllm {

std::vector<std::string> serving_notes(const LoadedModel& m) {
  std::vector<std::string> notes;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(m.path / "config.json", ec)) return notes;
  const auto cfg = nlohmann::json::parse(read_file(m.path / "config.json"), nullptr, false);
  if (cfg.is_discarded() || !cfg.contains("quantization_config")) return notes;
  const auto& qc = cfg["quantization_config"];
  const std::string method = qc.value("quant_method", "");
  if (method == "fp8") {
    notes.push_back("vLLM / SGLang: Fp8LinearMethod (FP8 GEMMs with dynamic activation scales on Hopper and newer, "
                    "FP8 Marlin weight-only where the GPU has no FP8)");
    return notes;
  }
  if (qc.value("format", "") == "float-quantized") {
    notes.push_back("vLLM: compressed-tensors W8A16 FP8 (weight-only: FP8 Marlin kernels; activations stay 16-bit)");
    return notes;
  }
  int bits = 0, group = 0;
  bool sym = false;
  if (method == "compressed-tensors") {
    const auto& w = qc["config_groups"].begin().value()["weights"];
    bits = w.value("num_bits", 0), sym = w.value("symmetric", true);
    group = w.value("strategy", "group") == "channel" ? -1 : w.value("group_size", 0);
  } else {
    bits = qc.value("bits", qc.value("w_bit", 0)), group = qc.value("group_size", qc.value("q_group_size", 0));
    sym = method == "gptq" ? qc.value("sym", true) : !qc.value("zero_point", true);
  }
  const bool marlin_groups = group == -1 || group == 32 || group == 64 || group == 128;
  const bool marlin_bits = bits == 4 || bits == 8;
  int64_t off_shape = 0, layers = 0;
  for (const auto& n : m.weights->names()) {
    const std::string f = m.weights->format(n);
    if (f.find("int") == std::string::npos) continue;  // the packed layers: "GPTQ int4 g128", "CT int4 g128"
    const Shape s = m.weights->shape(n);
    ++layers;
    if (s[0] % 64 != 0 || s[1] % 128 != 0) ++off_shape;
  }
  std::string kernel;
  if (method == "gptq") {
    if (marlin_bits && marlin_groups && sym) kernel = "vLLM / SGLang: gptq_marlin (Marlin kernels; act-order g_idx supported)";
    else
      notes.push_back(fmt::format("warning: vLLM / SGLang run this with the exllama gptq_gemm kernels, slower than Marlin, "
                                  "which needs symmetric (--sym) {}-bit groups of 32, 64, 128 or per channel",
                                  marlin_bits ? std::to_string(bits) : "4- or 8"));
    if (qc.value("checkpoint_format", "gptq") == "gptq_v2")
      notes.push_back("warning: checkpoint_format gptq_v2 is GPTQModel's; serving stacks read gptq (v1): --format gptq");
  } else if (method == "awq") {
    if (marlin_groups) kernel = "vLLM / SGLang: awq_marlin (Marlin kernels with zero points)";
    else notes.push_back("warning: vLLM runs this with its AWQ GEMM kernels (Marlin needs groups of 32, 64, 128 or per channel)");
  } else if (method == "compressed-tensors") {
    if (!marlin_bits)
      notes.push_back(fmt::format("warning: vLLM's compressed-tensors WNA16 scheme takes 4 or 8 bits, not {}", bits));
    else if (!marlin_groups)
      notes.push_back(fmt::format("warning: groups of {} leave vLLM's Marlin/Machete kernels (32, 64, 128 or per channel)", group));
    else
      kernel = sym ? "vLLM / SGLang: compressed-tensors WNA16 (Machete on Hopper, Marlin elsewhere)"
                   : "vLLM: compressed-tensors WNA16 with zero points (Marlin; needs a vLLM with asymmetric WNA16)";
  }
  if (!kernel.empty()) notes.insert(notes.begin(), kernel);
  if (off_shape > 0)
    notes.push_back(fmt::format("warning: {} of {} packed layers have shapes Marlin cannot tile (output a multiple of 64, "
                                "input of 128): the engine falls back or refuses them", off_shape, layers));
  return notes;
}

}  // namespace quantllm
