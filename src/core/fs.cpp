// File helpers: reads with clear errors, atomic writes, UTF-8 validation.
#include "core/fs.h"

#include "core/error.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <unistd.h>

namespace quantllm {

std::string read_file(const fs::path& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail("{}: cannot open: {}", path.string(), std::strerror(errno));
  std::string out;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  const bool err = std::ferror(f);
  std::fclose(f);
  if (err) fail("{}: read error", path.string());
  return out;
}

size_t find_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) len = 2, cp = c & 0x1f;
    else if ((c & 0xf0) == 0xe0) len = 3, cp = c & 0x0f;
    else if ((c & 0xf8) == 0xf0) len = 4, cp = c & 0x07;
    else return i;
    if (i + size_t(len) > n) return i;
    for (int k = 1; k < len; ++k) {
      if ((p[i + size_t(k)] & 0xc0) != 0x80) return i;
      cp = (cp << 6) | (p[i + size_t(k)] & 0x3f);
    }
    // overlong forms, surrogates, beyond U+10FFFF
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
      return i;
    i += size_t(len);
  }
  return std::string_view::npos;
}

std::string read_text_file(const fs::path& path) {
  std::string s = read_file(path);
  const size_t bad = find_invalid_utf8(s);
  if (bad != std::string_view::npos) fail("{}: not valid UTF-8 text (byte offset {})", path.string(), bad);
  return s;
}

static fs::path temp_sibling(const fs::path& path) {
  return path.parent_path() / fmt::format(".{}.tmp.{}", path.filename().string(), ::getpid());
}

void write_file_atomic(const fs::path& path, const std::function<void(std::FILE*)>& write) {
  const fs::path tmp = temp_sibling(path);
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail("{}: cannot write: {}", path.string(), std::strerror(errno));
  try {
    write(f);
    if (std::fflush(f) != 0 || std::ferror(f)) fail("{}: write error: {}", path.string(), std::strerror(errno));
    if (::fsync(::fileno(f)) != 0 && errno != EINVAL) fail("{}: fsync failed: {}", path.string(), std::strerror(errno));
  } catch (...) {
    std::fclose(f);
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
  if (std::fclose(f) != 0) {
    std::error_code ec;
    fs::remove(tmp, ec);
    fail("{}: write error on close", path.string());
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    fail("{}: cannot rename into place: {}", path.string(), ec.message());
  }
}

void write_file_atomic(const fs::path& path, std::string_view contents) {
  write_file_atomic(path, [&](std::FILE* f) {
    if (!contents.empty() && std::fwrite(contents.data(), 1, contents.size(), f) != contents.size())
      fail("{}: write error: {}", path.string(), std::strerror(errno));
  });
}

void check_output_path(const fs::path& path, bool overwrite) {
  std::error_code ec;
  if (fs::exists(path, ec) && !overwrite) fail("{}: already exists (use --force to overwrite)", path.string());
  const fs::path parent = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  if (!fs::is_directory(parent, ec)) fail("{}: parent directory does not exist", path.string());
  if (::access(parent.c_str(), W_OK) != 0) fail("{}: directory is not writable", path.string());
}

AtomicDir::AtomicDir(const fs::path& final_path, bool overwrite) : final_(final_path), overwrite_(overwrite) {
  check_output_path(final_, overwrite_);
  tmp_ = temp_sibling(final_);
  std::error_code ec;
  fs::remove_all(tmp_, ec);
  if (!fs::create_directory(tmp_, ec) || ec) fail("{}: cannot create directory: {}", tmp_.string(), ec.message());
}

AtomicDir::~AtomicDir() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }
}

void AtomicDir::commit() {
  std::error_code ec;
  if (fs::exists(final_, ec)) {
    QL_ASSERT(overwrite_);
    fs::remove_all(final_, ec);
    if (ec) fail("{}: cannot replace: {}", final_.string(), ec.message());
  }
  fs::rename(tmp_, final_, ec);
  if (ec) fail("{}: cannot rename into place: {}", final_.string(), ec.message());
  committed_ = true;
}

}  // namespace quantllm
