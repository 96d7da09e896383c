// quantllm._quantllm: the Python extension module over the public C++ API (include/quantllm).
//
// Thin on purpose: the seed-shaped classes (Model, ModelConfig, GPTQQuantizer …) are pure Python in
// python/quantllm/, and everything here is a direct call into the C++ API. Long calls (loading,
// quantizing, writing, forward passes) release the GIL and report progress on stderr through
// quantllm::Progress (include/quantllm/util.h), as the CLI does; quantllm::Error becomes
// quantllm.QuantLLMError (a RuntimeError) carrying the C++ message.
#include "quantllm/quantllm.h"

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <fmt/format.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace py = pybind11;
using namespace quantllm;

namespace {

// Logits [n_seq, seq_len, vocab] (or [seq_len, vocab]) as float32, exposed through the buffer protocol.
struct Logits {
  std::vector<float> data;
  std::vector<py::ssize_t> shape;
};

// A model that can run: the opened checkpoint, or a quantization result over it (whose model is the
// dequantized view). The fp32 runner is built on the first forward pass and kept.
struct PyModel {
  std::optional<Model> model;
  std::optional<QuantizedResult> result;  // quantization results only
  std::string description;
  std::mutex mu;  // one forward pass at a time per model (held without the GIL)
  std::unique_ptr<Runner> runner;
};

// Progress on stderr (a bar on a terminal, a line every few seconds otherwise), or nothing.
class ProgressReporter {
 public:
  ProgressReporter(std::string label, bool enabled) : label_(std::move(label)), enabled_(enabled) {}
  ~ProgressReporter() {
    if (bar_) bar_->finish();
  }
  ProgressCallback callback() {
    if (!enabled_) return {};
    return [this](int64_t done, int64_t total, const std::string& detail) {
      if (!bar_) bar_ = std::make_unique<Progress>(label_, total);
      bar_->update(done, detail);
    };
  }

 private:
  std::string label_;
  bool enabled_;
  std::unique_ptr<Progress> bar_;
};

CalibrationData calibration_of(const std::optional<std::filesystem::path>& file, std::vector<std::string> texts,
                               std::vector<std::vector<int32_t>> windows) {
  if (file) return CalibrationData(*file);
  if (!windows.empty()) return CalibrationData::from_windows(std::move(windows));
  return CalibrationData(std::move(texts));
}

std::shared_ptr<PyModel> result_model(QuantizedResult result, std::string description) {
  auto r = std::make_shared<PyModel>();
  r->model = result.as_model();
  r->result = std::move(result);
  r->description = std::move(description);
  return r;
}

// tokens: a flat sequence of ints, n_seq windows of seq_len each.
Logits forward(PyModel& pm, const std::vector<int32_t>& tokens, int64_t n_seq, int64_t seq_len, bool flat) {
  if (n_seq < 1 || seq_len < 1 || int64_t(tokens.size()) != n_seq * seq_len)
    throw Error(fmt::format("forward: {} token ids do not make {} sequences of {}", tokens.size(), n_seq, seq_len));
  const int64_t vocab = pm.model->info().vocab_size;
  for (int32_t id : tokens)
    if (id < 0 || id >= vocab)
      throw Error(fmt::format("forward: token id {} is outside the vocabulary (0..{})", id, vocab - 1));
  Logits out;
  {
    py::gil_scoped_release release;
    std::lock_guard lock(pm.mu);
    if (!pm.runner) pm.runner = std::make_unique<Runner>(*pm.model, "fp32");
    out.data = pm.runner->logits(tokens, n_seq, seq_len);
  }
  if (flat) out.shape = {py::ssize_t(seq_len), py::ssize_t(vocab)};
  else out.shape = {py::ssize_t(n_seq), py::ssize_t(seq_len), py::ssize_t(vocab)};
  return out;
}

py::dict config_dict(const ModelInfo& c) {
  py::dict d;
  d["architecture"] = c.architecture;
  d["model_type"] = c.model_type;
  d["hidden_size"] = c.hidden_size;
  d["num_hidden_layers"] = c.num_hidden_layers;
  d["num_attention_heads"] = c.num_attention_heads;
  d["num_key_value_heads"] = c.num_key_value_heads;
  d["intermediate_size"] = c.intermediate_size;
  d["vocab_size"] = c.vocab_size;
  d["max_position_embeddings"] = c.max_position_embeddings;
  return d;
}

}  // namespace

PYBIND11_MODULE(_quantllm, m) {
  m.doc() = "quantllm's C++ engine (GPTQ, AWQ, GGUF quantization; fp32 forward pass)";
  py::register_exception<Error>(m, "QuantLLMError", PyExc_RuntimeError);
  m.attr("has_cuda") = cuda_backend_built();  // built with the CUDA backend (QUANTLLM_CUDA)
  m.def("cuda_device_usable", &cuda_device_usable, "True when the CUDA backend is built and a GPU answers.");
  m.def("quantize_methods", &quantize_methods, "The registered methods: (name, summary).");
  m.def("set_num_threads", &set_num_threads, py::arg("n"), "Threads of the C++ engine (0: all cores).");
  m.def("num_threads", &num_threads);

  py::class_<Logits>(m, "Logits", py::buffer_protocol(),
                     "float32 logits, [seq, vocab] or [batch, seq, vocab]; memoryview(x) / numpy.asarray(x) read them")
      .def_buffer([](Logits& l) {
        std::vector<py::ssize_t> strides(l.shape.size());
        py::ssize_t s = sizeof(float);
        for (size_t i = l.shape.size(); i-- > 0;) strides[i] = s, s *= l.shape[i];
        return py::buffer_info(l.data.data(), sizeof(float), py::format_descriptor<float>::format(),
                               py::ssize_t(l.shape.size()), l.shape, strides);
      })
      .def_property_readonly("shape", [](const Logits& l) { return py::tuple(py::cast(l.shape)); })
      .def_property_readonly("logits", [](py::object self) { return self; },
                             "the logits themselves (outputs.logits, as transformers' outputs have it)")
      .def("__len__", [](const Logits& l) { return l.shape[0]; })
      .def("tolist", [](py::object self) { return py::memoryview(self).attr("tolist")(); })
      .def("__repr__", [](const Logits& l) {
        std::string s;
        for (auto d : l.shape) s += (s.empty() ? "" : ", ") + std::to_string(d);
        return "<quantllm Logits float32 [" + s + "]>";
      });

  py::class_<TextTokenizer>(m, "Tokenizer")
      .def_static("from_dir", [](const std::filesystem::path& d) { return TextTokenizer::from_dir(d); })
      .def("encode", [](const TextTokenizer& t, const std::string& text, bool add_special) {
             py::gil_scoped_release release;
             return t.encode(text, add_special);
           }, py::arg("text"), py::arg("add_special_tokens") = true)
      .def("decode", [](const TextTokenizer& t, const std::vector<int32_t>& ids, bool skip) { return t.decode(ids, skip); },
           py::arg("ids"), py::arg("skip_special_tokens") = false)
      .def_property_readonly("vocab_size", &TextTokenizer::vocab_size)
      .def_property_readonly("bos_token_id", &TextTokenizer::bos_id)
      .def_property_readonly("eos_token_id", &TextTokenizer::eos_id)
      .def_property_readonly("pad_token_id", &TextTokenizer::pad_id)
      .def_property_readonly("adds_bos", &TextTokenizer::adds_bos);

  py::class_<PyModel, std::shared_ptr<PyModel>>(m, "Engine", "A model the C++ engine runs (opened or quantized)")
      .def_property_readonly("path", [](const PyModel& p) { return p.model->path(); })
      .def_property_readonly("kind", [](const PyModel& p) { return p.model->kind(); })
      .def_property_readonly("description", [](const PyModel& p) { return p.description; })
      .def_property_readonly("config", [](const PyModel& p) { return config_dict(p.model->info()); })
      .def_property_readonly("tokenizer", [](const PyModel& p) { return p.model->tokenizer(); })
      .def_property_readonly("is_quantized_result", [](const PyModel& p) { return p.result.has_value(); })
      .def("forward", &forward, py::arg("tokens"), py::arg("n_seq"), py::arg("seq_len"), py::arg("flat"))
      .def("save", [](PyModel& p, const std::filesystem::path& dir, bool overwrite) {
             if (!p.result)
               throw Error(fmt::format("save: {} is not a quantization result (nothing to write)", p.model->path().string()));
             py::gil_scoped_release release;
             p.result->save(dir, overwrite);
           }, py::arg("path"), py::arg("overwrite") = false);

  m.def("load_model", [](const std::filesystem::path& path) {
    auto p = std::make_shared<PyModel>();
    {
      py::gil_scoped_release release;
      p->model = load_model(path);
    }
    p->description = p->model->kind() + " model " + path.string();
    return p;
  }, py::arg("path"));

  m.def("gptq_quantize",
        [](std::shared_ptr<PyModel> base, const GPTQConfig& cfg, std::optional<std::filesystem::path> file,
           std::vector<std::string> texts, std::vector<std::vector<int32_t>> windows, bool progress) {
          const GPTQQuantizer q(*base->model, cfg);
          std::optional<GPTQQuantizedModel> result;
          {
            py::gil_scoped_release release;
            ProgressReporter bar(fmt::format("{} {}-bit", cfg.rtn ? "rtn" : "gptq", cfg.bits), progress);
            result = cfg.rtn ? q.quantize()
                             : q.quantize(calibration_of(file, std::move(texts), std::move(windows)), bar.callback());
          }
          return result_model(std::move(*result),
                              fmt::format("{} {}-bit g{}", cfg.rtn ? "RTN" : "GPTQ", cfg.bits, cfg.group_size));
        },
        py::arg("model"), py::arg("config"), py::arg("file"), py::arg("texts"), py::arg("windows"),
        py::arg("progress") = true);

  m.def("awq_quantize",
        [](std::shared_ptr<PyModel> base, const AWQConfig& cfg, std::optional<std::filesystem::path> file,
           std::vector<std::string> texts, std::vector<std::vector<int32_t>> windows, int64_t steps, bool progress) {
          const AWQQuantizer q(*base->model, cfg);
          std::optional<AWQQuantizedModel> result;
          {
            py::gil_scoped_release release;
            ProgressReporter bar(fmt::format("awq {}-bit", cfg.bits), progress);
            result = q.quantize(calibration_of(file, std::move(texts), std::move(windows)), steps, bar.callback());
          }
          return result_model(std::move(*result), fmt::format("AWQ {}-bit g{}", cfg.bits, cfg.group_size));
        },
        py::arg("model"), py::arg("config"), py::arg("file"), py::arg("texts"), py::arg("windows"), py::arg("steps"),
        py::arg("progress") = true);

  py::class_<GPTQConfig>(m, "GPTQConfig")
      .def(py::init<>())
      .def_readwrite("bits", &GPTQConfig::bits)
      .def_readwrite("group_size", &GPTQConfig::group_size)
      .def_readwrite("actorder", &GPTQConfig::actorder)
      .def_readwrite("sym", &GPTQConfig::sym)
      .def_readwrite("damp_percent", &GPTQConfig::damp_percent)
      .def_readwrite("static_groups", &GPTQConfig::static_groups)
      .def_readwrite("true_sequential", &GPTQConfig::true_sequential)
      .def_readwrite("moe_calibration", &GPTQConfig::moe_calibration)
      .def_readwrite("moe_min_tokens", &GPTQConfig::moe_min_tokens)
      .def_readwrite("mse", &GPTQConfig::mse)
      .def_readwrite("nsamples", &GPTQConfig::nsamples)
      .def_readwrite("seqlen", &GPTQConfig::seqlen)
      .def_readwrite("seed", &GPTQConfig::seed)
      .def_readwrite("format", &GPTQConfig::format)
      .def_readwrite("rtn", &GPTQConfig::rtn)
      .def_readwrite("device", &GPTQConfig::device);

  py::class_<AWQConfig>(m, "AWQConfig")
      .def(py::init<>())
      .def_readwrite("bits", &AWQConfig::bits)
      .def_readwrite("group_size", &AWQConfig::group_size)
      .def_readwrite("zero_point", &AWQConfig::zero_point)
      .def_readwrite("version", &AWQConfig::version)
      .def_readwrite("seqlen", &AWQConfig::seqlen)
      .def_readwrite("seed", &AWQConfig::seed)
      .def_readwrite("search_tokens", &AWQConfig::search_tokens)
      .def_readwrite("act_floor", &AWQConfig::act_floor)
      .def_readwrite("device", &AWQConfig::device);

  // The GGUF quantizer keeps a reference to its model; the Python object holds the model too.
  struct PyGGUF {
    std::shared_ptr<PyModel> base;
    std::unique_ptr<GGUFQuantizer> q;
  };
  py::class_<PyGGUF, std::shared_ptr<PyGGUF>>(m, "GGUFQuantizerEngine")
      .def(py::init([](std::shared_ptr<PyModel> base, const std::string& type, bool pure,
                       std::vector<std::string> tensor_types, const std::string& imatrix, bool gptq, int nsamples,
                       int seqlen, uint64_t seed, double target_bpw) {
             auto g = std::make_shared<PyGGUF>();
             g->base = base;
             GGUFConfig c;
             c.type = type;
             c.pure = pure;
             c.tensor_types = std::move(tensor_types);
             c.imatrix = imatrix;
             c.gptq = gptq;
             c.nsamples = nsamples;
             c.seqlen = seqlen;
             c.seed = seed;
             c.target_bpw = target_bpw;
             g->q = std::make_unique<GGUFQuantizer>(*base->model, c);
             return g;
           }),
           py::arg("model"), py::arg("type"), py::arg("pure") = false, py::arg("tensor_types") = std::vector<std::string>{},
           py::arg("imatrix") = "", py::arg("gptq") = false, py::arg("nsamples") = 128, py::arg("seqlen") = 512,
           py::arg("seed") = 0, py::arg("target_bpw") = 0.0)
      .def("quantize", [](PyGGUF& g) {
        py::gil_scoped_release release;
        g.q->quantize();
      })
      .def("quantize_calibrated", [](PyGGUF& g, std::optional<std::filesystem::path> file, std::vector<std::string> texts,
                                     std::vector<std::vector<int32_t>> windows) {
        const CalibrationData data = calibration_of(file, std::move(texts), std::move(windows));
        py::gil_scoped_release release;
        g.q->quantize(data);
      })
      .def("plan", [](PyGGUF& g) {
        py::list rows;
        for (const auto& p : g.q->plan()) {
          py::dict d;
          d["name"] = p.name;
          d["shape"] = p.shape;
          d["type"] = p.type;
          d["bytes"] = p.bytes;
          rows.append(d);
        }
        return rows;
      })
      .def("convert_to_gguf", [](PyGGUF& g, const std::filesystem::path& path, bool overwrite, bool progress) {
        py::gil_scoped_release release;
        ProgressReporter bar("gguf " + path.filename().string(), progress);
        g.q->convert_to_gguf(path, overwrite, bar.callback());
      }, py::arg("path"), py::arg("overwrite") = false, py::arg("progress") = true);
}
