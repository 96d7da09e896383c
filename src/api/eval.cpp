// Measuring and running models (include/quantllm/eval.h): perplexity on any device, KL divergence with
// the base's logits cached, the comparison report, generation with streamed text, logits for Python, and
// the importance matrix — over eval/, runtime/ and methods/.
#include "quantllm/eval.h"

#include "core/error.h"
#include "core/fs.h"
#include "eval/generate.h"
#include "eval/kld.h"
#include "eval/perplexity.h"
#include "eval/report.h"
#include "methods/backend.h"
#include "methods/imatrix.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>

namespace quantllm {

namespace {

Windows windows_of(const Model& m, const std::filesystem::path& text_file, const EvalOptions& o) {
  return make_windows(*m.loaded().tokenizer, read_text_file(text_file), o.ctx, o.max_windows);
}

std::unique_ptr<ModelRunner> runner_of(const Model& m, const EvalOptions& o) {
  return make_model_runner(m.loaded(), parse_device(o.device), parse_engine(o.engine), o.gpu_tf32);
}

// Bytes and parameters of what a model stores (weights only; tokenizer and metadata excluded).
std::pair<uint64_t, int64_t> weight_bytes(const LoadedModel& m) {
  uint64_t bytes = 0;
  int64_t params = 0;
  for (const auto& n : m.weights->names()) {
    bytes += m.weights->stored_bytes(n);
    params += shape_numel(m.weights->shape(n));
  }
  return {bytes, params};
}

// "BF16", "GGUF Q4_K" (the type most of the weights use), "GPTQ int4 g128" (a quantized layer's).
std::string format_of(const LoadedModel& m) {
  if (m.kind == "gguf") {
    std::map<std::string, int64_t> count;
    for (const auto& n : m.weights->names()) count[m.weights->format(n)] += shape_numel(m.weights->shape(n));
    std::string best;
    int64_t most = -1;
    for (const auto& [f, c] : count)
      if (c > most) most = c, best = f;
    return "GGUF " + best;
  }
  if (m.kind == "hf") return std::string(dtype_name(m.config.dtype));
  const BlockSpec& b = m.config.block(0);
  return m.weights->format(b.linear_tensor(b.in_linears_of_attention()) + ".weight");
}

ReportRow report_row(const CompareRow& r) {
  return ReportRow{r.name, r.format, r.bytes, r.bits_per_weight, r.ppl, r.kld, r.top1, r.tokens_per_second, r.is_base};
}

}  // namespace

PerplexityResult perplexity(const Model& model, const std::filesystem::path& text_file, const EvalOptions& o,
                            const ProgressCallback& progress) {
  const Windows w = windows_of(model, text_file, o);
  const auto runner = runner_of(model, o);
  return perplexity(*runner, w, o.batch, [&](int64_t done, int64_t total) {
    if (progress) progress(done, total, fmt::format("windows of {} tokens", o.ctx));
  });
}

KldResult kl_divergence(const Model& base, const Model& model, const std::filesystem::path& text_file,
                        const EvalOptions& o, bool use_cache, const ProgressCallback& progress) {
  if (o.device != "cpu") fail("KL divergence runs on the CPU (--device applies to eval ppl)");
  const Windows w = windows_of(base, text_file, o);
  if (windows_of(model, text_file, o).tokens != w.tokens)
    fail("{} and {} tokenize the text differently: KL divergence needs the same tokens", base.path().string(),
         model.path().string());
  // The base's logits: from the cache an earlier run over the same windows wrote, else computed (and
  // cached for the next candidate).
  const int64_t vocab = base.loaded().config.vocab;
  const uint64_t key = base_logits_key(base.path(), w, "engine " + o.engine);
  const std::filesystem::path cache = use_cache ? base_logits_cache_path(key, w, vocab) : std::filesystem::path{};
  std::unique_ptr<BaseLogits> src = cached_base_logits(cache, key, w, vocab);
  const bool from_cache = src != nullptr;
  std::unique_ptr<ModelRunner> fb;
  if (from_cache) {
    fmt::print(stderr, "quantllm: base logits from {}\n", cache.string());
  } else {
    fb = runner_of(base, o);
    src = model_base_logits(*fb, w, cache, key);
  }
  const auto fm = runner_of(model, o);
  auto r = kl_divergence(*src, {fm.get()}, w, o.batch, [&](int64_t done, int64_t total) {
    if (progress) progress(done, total, "");
  });
  r[0].base_from_cache = from_cache;
  return r[0];
}

CompareReport compare(const Model& base, const std::vector<Model>& candidates, const std::filesystem::path& text_file,
                      const EvalOptions& o, const ProgressCallback& progress) {
  const std::string text = read_text_file(text_file);
  const Windows w = make_windows(*base.loaded().tokenizer, text, o.ctx, o.max_windows);
  for (const Model& m : candidates)
    if (make_windows(*m.loaded().tokenizer, text, o.ctx, o.max_windows).tokens != w.tokens)
      fail("{} tokenizes the text differently from {}", m.path().string(), base.path().string());
  const auto fbase = runner_of(base, o);
  std::vector<std::unique_ptr<ModelRunner>> full;
  std::vector<const ModelRunner*> ptrs;
  for (const Model& m : candidates) full.push_back(runner_of(m, o)), ptrs.push_back(full.back().get());
  const auto res = kl_divergence(*fbase, ptrs, w, 0, [&](int64_t d, int64_t total) {
    if (progress) progress(d, total, "");
  });
  // Throughput of each model's evaluation alone (a short separate run: the lockstep run mixes them).
  const Windows tw = make_windows(*base.loaded().tokenizer, text, o.ctx, 2);
  auto row_for = [&](const Model& m, const ModelRunner& fm) {
    CompareRow r;
    r.name = m.path().filename().string();
    r.format = format_of(m.loaded());
    const auto [bytes, params] = weight_bytes(m.loaded());
    r.bytes = bytes;
    r.bits_per_weight = 8.0 * double(bytes) / double(params);
    r.tokens_per_second = perplexity(fm, tw).tokens_per_second;
    return r;
  };
  CompareReport report;
  report.data_name = text_file.filename().string();
  report.windows = w.n_windows;
  CompareRow b = row_for(base, *fbase);
  b.ppl = res.empty() ? perplexity(*fbase, w).ppl : res[0].ppl_base;
  b.is_base = true;
  report.rows.push_back(b);
  for (size_t i = 0; i < candidates.size(); ++i) {
    CompareRow r = row_for(candidates[i], *full[i]);
    r.ppl = res[i].ppl;
    r.kld = res[i].kld;
    r.top1 = res[i].top1_agreement;
    report.rows.push_back(r);
  }
  return report;
}

std::string CompareReport::markdown() const {
  std::vector<ReportRow> r;
  for (const auto& row : rows) r.push_back(report_row(row));
  return report_markdown(r, data_name, windows);
}
std::string CompareReport::json() const {
  std::vector<ReportRow> r;
  for (const auto& row : rows) r.push_back(report_row(row));
  return report_json(r, data_name, windows);
}
std::string CompareReport::svg() const {
  std::vector<ReportRow> r;
  for (const auto& row : rows) r.push_back(report_row(row));
  return report_svg(r, fmt::format("{} on {} ({} windows)", rows.at(0).name, data_name, windows));
}

GenerateResult generate(const Model& model, const std::string& prompt_text, const GenerateOptions& o,
                        const std::function<void(const std::string&)>& on_text) {
  if (o.max_tokens < 1) fail("--max-tokens must be at least 1");
  if (o.temperature < 0) fail("--temperature must be >= 0");
  if (o.top_p <= 0 || o.top_p > 1) fail("--top-p must be in (0, 1]");
  const Tokenizer& tok = *model.loaded().tokenizer;
  const std::vector<int32_t> prompt = o.chat ? model.chat_prompt(prompt_text) : tok.encode(prompt_text, true);
  const FullModel fm(model.loaded(), parse_engine(o.engine));
  SamplingOptions so;
  so.temperature = o.temperature;
  so.top_k = o.top_k;
  so.top_p = o.top_p;
  so.seed = o.seed;
  so.max_tokens = o.max_tokens;
  // Stream: decode prompt + generated tokens and hand out what is new since the last call, so spaces
  // that belong to a token's start and characters spanning several byte tokens come out right.
  std::vector<int32_t> out = prompt;
  const std::string prompt_decoded = tok.decode(prompt, true);
  std::string printed = prompt_decoded;
  if (on_text) on_text(prompt_decoded);
  const GenerationStats r = generate(fm, tok, prompt, so, [&](int32_t t) {
    out.push_back(t);
    if (!on_text) return;
    const std::string text = tok.decode(out, true);
    if (text.size() > printed.size() && text.compare(0, printed.size(), printed) == 0 &&
        (text.back() & 0xc0) != 0x80 && (unsigned char)text.back() < 0xc0) {
      on_text(text.substr(printed.size()));
      printed = text;
    }
  });
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), r.tokens.begin(), r.tokens.end());
  const std::string full = tok.decode(all, true);
  if (on_text && full.size() > printed.size() && full.compare(0, printed.size(), printed) == 0)
    on_text(full.substr(printed.size()));
  GenerateResult res;
  res.text = full.compare(0, prompt_decoded.size(), prompt_decoded) == 0 ? full.substr(prompt_decoded.size())
                                                                         : tok.decode(r.tokens, true);
  res.tokens = r.tokens;
  res.prompt_tokens = int64_t(prompt.size());
  res.tokens_per_second = r.tokens_per_second;
  res.prompt_tokens_per_second = r.prompt_tokens_per_second;
  return res;
}

struct Runner::Impl {
  std::unique_ptr<ModelRunner> runner;
};

Runner::Runner(const Model& model, const std::string& engine, const std::string& device, bool gpu_tf32)
    : impl_(std::make_unique<Impl>()) {
  impl_->runner = make_model_runner(model.loaded(), parse_device(device), parse_engine(engine), gpu_tf32);
}
Runner::~Runner() = default;
Runner::Runner(Runner&&) noexcept = default;

int64_t Runner::vocab() const { return impl_->runner->config().vocab; }

std::vector<float> Runner::logits(const std::vector<int32_t>& tokens, int64_t n_seq, int64_t seq_len) const {
  if (n_seq < 1 || seq_len < 1 || int64_t(tokens.size()) != n_seq * seq_len)
    fail("logits: {} tokens for {} windows of {}", tokens.size(), n_seq, seq_len);
  const int64_t vocab = this->vocab();
  for (int32_t t : tokens)
    if (t < 0 || t >= vocab) fail("token id {} is outside the vocabulary (size {})", t, vocab);
  std::vector<float> out(size_t(n_seq * seq_len * vocab));
  impl_->runner->forward(tokens, n_seq, seq_len, [&](int64_t s, const Tensor& l) {
    std::copy(l.data.begin(), l.data.end(), out.begin() + s * seq_len * vocab);
  });
  return out;
}

ImatrixResult compute_imatrix(const Model& model, const std::filesystem::path& text_file,
                              const std::filesystem::path& out, const ImatrixOptions& o, bool overwrite,
                              const ProgressCallback& progress) {
  check_output_path(out, overwrite);
  const ImportanceMatrix im = compute_imatrix(model.loaded(), text_file, o, [&](int done, int total) {
    if (progress) progress(done, total, "");
  });
  im.save(out);
  return ImatrixResult{int64_t(im.entries.size()), im.chunk_count, im.chunk_size};
}

}  // namespace quantllm
