// Test support: run the quantllm binary (or any command) and capture exit status, stdout, stderr.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>

namespace quantllm::test {

struct RunResult {
  int status = -1;  // exit status, or 128 + signal
  std::string out, err;
};

inline std::string read_all(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Runs `args` (a shell command line, already quoted) with stdout and stderr captured in files.
inline RunResult run_command(const std::string& cmdline) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("quantllm-run-" + std::to_string(::getpid()) + "-" + std::to_string(std::rand()));
  std::filesystem::create_directories(dir);
  const std::string full = cmdline + " >" + (dir / "out").string() + " 2>" + (dir / "err").string();
  const int raw = std::system(full.c_str());
  RunResult r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
  r.out = read_all(dir / "out");
  r.err = read_all(dir / "err");
  std::filesystem::remove_all(dir);
  return r;
}

inline RunResult run_quantllm(const std::string& args) { return run_command(std::string(QUANTLLM_BIN) + " " + args); }

// A fresh temporary directory, removed when the object dies.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    path = std::filesystem::temp_directory_path() /
           ("quantllm-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  static int& counter() {
    static int c = 0;
    return c;
  }
  std::filesystem::path operator/(const std::string& s) const { return path / s; }
};

inline int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

}  // namespace quantllm::test
