// Files: whole-file reads with clear errors, atomic writes (temporary name, then rename, so a
// crash or an error never leaves a half-written output), and UTF-8 validation of text inputs.
#pragma once

#include "quantllm/util.h"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace quantllm {

namespace fs = std::filesystem;

// Reads a whole file; throws Error naming the path when it cannot.
std::string read_file(const fs::path& path);
// read_text_file (include/quantllm/util.h): reads a text file and checks it is valid UTF-8 (Error names
// the file and byte offset).
// Offset of the first byte that breaks UTF-8, or npos when the text is valid.
size_t find_invalid_utf8(std::string_view s);

// Writes a file atomically: `write` fills a temporary file next to `path`, which is then renamed
// over `path`. On any exception the temporary is removed and the exception propagates.
// (write_file_atomic of a string and check_output_path: include/quantllm/util.h.)
void write_file_atomic(const fs::path& path, const std::function<void(std::FILE*)>& write);

// An output directory built under a temporary name and renamed into place on commit();
// destroyed without commit(), it removes what it wrote.
class AtomicDir {
 public:
  AtomicDir(const fs::path& final_path, bool overwrite);
  ~AtomicDir();
  AtomicDir(const AtomicDir&) = delete;
  AtomicDir& operator=(const AtomicDir&) = delete;
  const fs::path& path() const { return tmp_; }  // write files here
  void commit();

 private:
  fs::path final_, tmp_;
  bool overwrite_, committed_ = false;
};

}  // namespace quantllm
