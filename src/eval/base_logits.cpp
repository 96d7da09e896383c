// Base logits for KL divergence: computed, or read back from the cache (see base_logits.h).
#include "eval/base_logits.h"

#include "core/error.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

namespace quantllm {

namespace {

namespace fs = std::filesystem;

constexpr char kMagic[8] = {'Q', 'L', 'K', 'L', 'D', 'v', '1', '\0'};
constexpr size_t kHeader = 8 + 8 + 3 * 8;

uint64_t fnv1a(const void* data, size_t n, uint64_t h = 1469598103934665603ull) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

size_t window_bytes(const Windows& w, int64_t vocab) { return size_t(w.ctx - 1) * size_t(vocab) * sizeof(float); }

class ModelBaseLogits final : public BaseLogits {
 public:
  ModelBaseLogits(const ModelRunner& m, const Windows& w, fs::path cache, uint64_t key)
      : m_(m), cache_(std::move(cache)) {
    if (cache_.empty()) return;
    std::error_code ec;
    fs::create_directories(cache_.parent_path(), ec);
    tmp_ = cache_;
    tmp_ += fmt::format(".tmp-{}", ::getpid());
    f_ = std::fopen(tmp_.c_str(), "wb");
    if (!f_) return;  // a cache that cannot be written is no error: the run goes on without it
    const int64_t hdr[3] = {m.config().vocab, w.ctx, w.n_windows};
    ok_ = std::fwrite(kMagic, 1, 8, f_) == 8 && std::fwrite(&key, 8, 1, f_) == 1 && std::fwrite(hdr, 8, 3, f_) == 3;
  }
  ~ModelBaseLogits() override {
    if (f_) {
      std::fclose(f_);
      std::error_code ec;
      fs::remove(tmp_, ec);
    }
  }
  int64_t vocab() const override { return m_.config().vocab; }
  std::vector<Tensor> batch(const Windows& w, int64_t b0, int64_t nb) override {
    const std::vector<int32_t> toks(w.tokens.begin() + b0 * w.ctx, w.tokens.begin() + (b0 + nb) * w.ctx);
    std::vector<Tensor> out(static_cast<size_t>(nb));
    m_.forward(toks, nb, w.ctx, [&](int64_t s, const Tensor& l) { out[size_t(s)] = l; });
    if (f_ && ok_)
      for (const Tensor& t : out) ok_ = ok_ && std::fwrite(t.ptr(), 1, window_bytes(w, vocab()), f_) == window_bytes(w, vocab());
    return out;
  }
  void finish() override {
    if (!f_) return;
    ok_ = std::fclose(f_) == 0 && ok_;
    f_ = nullptr;
    std::error_code ec;
    if (ok_) fs::rename(tmp_, cache_, ec);
    if (!ok_ || ec) fs::remove(tmp_, ec);
  }

 private:
  const ModelRunner& m_;
  fs::path cache_, tmp_;
  std::FILE* f_ = nullptr;
  bool ok_ = false;
};

class CachedBaseLogits final : public BaseLogits {
 public:
  CachedBaseLogits(std::unique_ptr<MappedFile> f, int64_t vocab) : f_(std::move(f)), vocab_(vocab) {}
  int64_t vocab() const override { return vocab_; }
  std::vector<Tensor> batch(const Windows& w, int64_t b0, int64_t nb) override {
    std::vector<Tensor> out;
    const size_t wb = window_bytes(w, vocab_);
    for (int64_t s = b0; s < b0 + nb; ++s) {
      Tensor t(Shape{w.ctx - 1, vocab_});
      std::memcpy(t.ptr(), f_->data() + kHeader + size_t(s) * wb, wb);
      out.push_back(std::move(t));
    }
    return out;
  }

 private:
  std::unique_ptr<MappedFile> f_;
  int64_t vocab_;
};

fs::path cache_dir() {
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return fs::path(x) / "quantllm" / "kld";
  if (const char* h = std::getenv("HOME"); h && *h) return fs::path(h) / ".cache" / "quantllm" / "kld";
  return {};
}

}  // namespace

std::unique_ptr<BaseLogits> model_base_logits(const ModelRunner& base, const Windows& w, const fs::path& cache_path,
                                              uint64_t key) {
  return std::make_unique<ModelBaseLogits>(base, w, cache_path, key);
}

std::unique_ptr<BaseLogits> cached_base_logits(const fs::path& path, uint64_t key, const Windows& w, int64_t vocab) {
  std::error_code ec;
  if (path.empty() || !fs::exists(path, ec)) return nullptr;
  auto f = std::make_unique<MappedFile>(path);
  if (f->size() != kHeader + size_t(w.n_windows) * window_bytes(w, vocab)) return nullptr;
  uint64_t k;
  int64_t hdr[3];
  std::memcpy(&k, f->data() + 8, 8);
  std::memcpy(hdr, f->data() + 16, 24);
  if (std::memcmp(f->data(), kMagic, 8) != 0 || k != key || hdr[0] != vocab || hdr[1] != w.ctx ||
      hdr[2] != w.n_windows)
    return nullptr;
  fs::last_write_time(path, fs::file_time_type::clock::now(), ec);  // most recently used
  return std::make_unique<CachedBaseLogits>(std::move(f), vocab);
}

uint64_t base_logits_key(const fs::path& base, const Windows& w, std::string_view how) {
  std::error_code ec;
  const fs::path canon = fs::weakly_canonical(base, ec);
  std::string id = (ec ? base : canon).string();
  std::vector<fs::path> files;
  if (fs::is_directory(canon, ec)) {
    for (const auto& e : fs::directory_iterator(canon, ec))
      if (e.is_regular_file(ec)) files.push_back(e.path());
  } else {
    files.push_back(canon);
  }
  std::sort(files.begin(), files.end());
  for (const auto& p : files)
    id += fmt::format("|{}:{}:{}", p.filename().string(), fs::file_size(p, ec),
                      fs::last_write_time(p, ec).time_since_epoch().count());
  id += fmt::format("|{}", how);
  uint64_t h = fnv1a(id.data(), id.size());
  h = fnv1a(w.tokens.data(), w.tokens.size() * sizeof(int32_t), h);
  const int64_t shape[2] = {w.ctx, w.n_windows};
  return fnv1a(shape, sizeof(shape), h);
}

fs::path base_logits_cache_path(uint64_t key, const Windows& w, int64_t vocab) {
  const char* lim = std::getenv("QUANTLLM_KLD_CACHE_MB");
  const double limit_mb = lim && *lim ? std::atof(lim) : 4096.0;
  const double mb = double(w.n_windows) * double(window_bytes(w, vocab)) / (1 << 20);
  const fs::path dir = cache_dir();
  if (dir.empty() || mb > limit_mb) return {};
  // Keep the 4 most recently used files (a new one is about to be added).
  std::error_code ec;
  std::vector<std::pair<fs::file_time_type, fs::path>> old;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().extension() == ".bin") old.emplace_back(e.last_write_time(ec), e.path());
  std::sort(old.rbegin(), old.rend());
  const fs::path mine = dir / fmt::format("{:016x}.bin", key);
  size_t kept = 0;
  for (const auto& [t, p] : old)
    if (p != mine && ++kept >= 4) fs::remove(p, ec);
  return mine;
}

}  // namespace quantllm
