// Resumable and deterministic quantize runs through the CLI (issue 6): a run killed with SIGKILL
// after some finished blocks and continued with --resume writes exactly the bytes of an
// uninterrupted run (GPTQ, AWQ, and AWQ scaling before GPTQ); the same run with 1 and 2 threads
// writes the same bytes; a leftover checkpoint is never silently reused or discarded.
#include "support/reference.h"
#include "support/run.h"
#include "support/safetensors_edit.h"

#include <gtest/gtest.h>

#include <csignal>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <thread>

namespace quantllm::test {
namespace {

namespace fs = std::filesystem;

std::string base_args(const std::string& method) {
  return "quantize --model " + model_dir("gutenberg-llama-33m").string() + " " + method +
         " --group-size 128 --calib " + data_file("gutenberg-calib.txt").string() + " --nsamples 8 --seqlen 128";
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> v;
  std::string cur;
  for (char ch : s) {
    if (ch == ' ') {
      if (!cur.empty()) v.push_back(cur), cur.clear();
    } else {
      cur += ch;
    }
  }
  if (!cur.empty()) v.push_back(cur);
  return v;
}

// Every regular file of two directories, byte for byte.
void expect_same_files(const fs::path& a, const fs::path& b) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(a)) {
    const fs::path other = b / e.path().filename();
    ASSERT_TRUE(fs::exists(other)) << other;
    EXPECT_TRUE(read_all(e.path()) == read_all(other)) << e.path().filename() << " differs";
    ++n;
  }
  EXPECT_EQ(n, std::distance(fs::directory_iterator(b), fs::directory_iterator{}));
  EXPECT_GE(n, 3);
}

// Starts the CLI, waits until `state` says `blocks` blocks are finished, and kills it with SIGKILL
// (no chance to clean up: what a power loss leaves). Returns false if the run ended first.
bool run_and_kill(const std::string& args, const fs::path& state, int blocks) {
  std::vector<std::string> argv_s = split(args);
  argv_s.insert(argv_s.begin(), QUANTLLM_BIN);
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    const int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(devnull, 2);
    execv(argv[0], argv.data());
    _exit(127);
  }
  const std::string want = "\"blocks_done\":" + std::to_string(blocks);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return false;
    if (fs::exists(state) && read_all(state).find(want) != std::string::npos) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return false;
}

// Replaces the first occurrence of `from` in the file by `to` (same length: the safetensors header stays valid).
void patch_file(const fs::path& f, const std::string& from, const std::string& to) {
  ASSERT_EQ(from.size(), to.size());
  std::string bytes = read_all(f);
  const size_t at = bytes.find(from);
  ASSERT_NE(at, std::string::npos) << from << " not in " << f;
  bytes.replace(at, from.size(), to);
  std::ofstream(f, std::ios::binary | std::ios::trunc) << bytes;
}

// Called with the checkpoint of the killed run before it is resumed (checks that need one).
using KilledRunCheck = std::function<void(const std::string& args, const fs::path& out, const fs::path& ckpt)>;

void kill_and_resume(const std::string& method, const std::string& stage, int kill_after, const KilledRunCheck& check = {}) {
  TempDir tmp;
  const std::string args = base_args(method) + " --threads 2";
  const RunResult full = run_quantllm(args + " --out " + (tmp / "full").string());
  ASSERT_EQ(full.status, 0) << full.err;
  EXPECT_FALSE(fs::exists(tmp / "full.resume")) << "checkpoints removed after success";

  const fs::path out = tmp / "resumed";
  const fs::path ckpt = tmp / "resumed.resume";
  ASSERT_TRUE(run_and_kill(args + " --out " + out.string(), ckpt / (stage + "-state.json"), kill_after))
      << "the run finished before it could be killed";
  EXPECT_FALSE(fs::exists(out)) << "no output from a killed run";

  // Without --resume an interrupted run is neither reused nor discarded silently.
  const RunResult again = run_quantllm(args + " --out " + out.string());
  EXPECT_EQ(again.status, 1);
  EXPECT_NE(again.err.find("--resume"), std::string::npos) << again.err;
  EXPECT_NE(again.err.find(ckpt.string()), std::string::npos) << again.err;
  // Other options than the interrupted run's: refused.
  const RunResult other = run_quantllm(base_args(method) + " --seed 1 --resume --out " + out.string());
  EXPECT_EQ(other.status, 1);
  EXPECT_NE(other.err.find("other options"), std::string::npos) << other.err;
  if (check) check(args, out, ckpt);

  const RunResult resumed = run_quantllm(args + " --resume --out " + out.string());
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  EXPECT_FALSE(fs::exists(ckpt));
  expect_same_files(tmp / "full", out);
}

// Sets the first I32 value of tensor `name` in a safetensors file to `value`.
void set_first_i32(const fs::path& file, const std::string& name, int32_t value) {
  StFile st = read_st(file);
  ASSERT_TRUE(st.header.contains(name)) << name << " not in " << file;
  ASSERT_EQ(st.header[name]["dtype"], "I32");
  const size_t begin = st.header[name]["data_offsets"][0].get<size_t>();
  std::memcpy(st.data.data() + begin, &value, 4);
  write_st(file, st);
}

// Resuming from a damaged OUT.resume is one line naming --resume and "damaged", exit status 1, not an abort;
// the intact file, put back, resumes as usual.
void expect_damaged(const std::string& args, const fs::path& out, const fs::path& file,
                    const std::function<void()>& damage) {
  const std::string intact = read_all(file);
  damage();
  const RunResult r = run_quantllm(args + " --resume --out " + out.string());
  EXPECT_EQ(r.status, 1) << file << "\n" << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << file << "\n" << r.err;
  EXPECT_NE(r.err.find("--resume"), std::string::npos) << r.err;
  std::ofstream(file, std::ios::binary | std::ios::trunc) << intact;
}

// The finished blocks are in the output's shards (model-0000B-of-00009.safetensors for block B − 1 of the 8),
// the journal holds only the statistics and the tensors AWQ changed. A group index out of range in a shard
// (the first g_idx value of block 1's q_proj set to 7) is caught.
TEST(Resume, GptqKilledAfterThreeBlocksResumesByteIdentical) {
  kill_and_resume("--method gptq --bits 4 --act-order", "gptq", 3,
                  [](const std::string& args, const fs::path& out, const fs::path& ckpt) {
                    const fs::path shard = ckpt / "model-00002-of-00009.safetensors";
                    ASSERT_TRUE(fs::exists(shard));
                    EXPECT_GT(fs::file_size(ckpt / "model-00009-of-00009.safetensors"), 0u) << "tensors outside the blocks";
                    expect_damaged(args, out, shard,
                                   [&] { set_first_i32(shard, "model.layers.1.self_attn.q_proj.g_idx", 7); });
                  });
}

// A damaged journal (a tensor that is not the block's) or shard (a layer's part missing).
TEST(Resume, AwqKilledAfterFiveBlocksResumesByteIdentical) {
  kill_and_resume("--method awq --bits 4", "awq", 5, [](const std::string& args, const fs::path& out, const fs::path& ckpt) {
    const fs::path journal = ckpt / "awq-block-001.safetensors";
    expect_damaged(args, out, journal, [&] { patch_file(journal, "input_layernorm.weight", "input_layernorm.wei9ht"); });
    const fs::path shard = ckpt / "model-00002-of-00009.safetensors";
    expect_damaged(args, out, shard, [&] { patch_file(shard, ".qzeros", ".qzer9s"); });
    // A finished block's shard gone.
    const fs::path moved = ckpt / "moved";
    fs::rename(shard, moved);
    const RunResult r = run_quantllm(args + " --resume --out " + out.string());
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_NE(r.err.find("shard is missing"), std::string::npos) << r.err;
    fs::rename(moved, shard);
  });
}

// The GPTQ pass after AWQ's scaling checkpoints blocks of the scaled model: a plain GPTQ run with
// the same options otherwise does not take them (and the scaled run resumes them byte-identically).
TEST(Resume, AwqScaleThenGptqKilledInTheGptqPassResumesByteIdentical) {
  kill_and_resume("--method gptq --bits 3 --awq-scale", "gptq", 2,
                  [](const std::string& args, const fs::path& out, const fs::path&) {
                    std::string plain = args;
                    plain.erase(plain.find(" --awq-scale"), std::string(" --awq-scale").size());
                    const RunResult r = run_quantllm(plain + " --resume --out " + out.string());
                    EXPECT_EQ(r.status, 1) << r.err;
                    EXPECT_NE(r.err.find("other options"), std::string::npos) << r.err;
                  });
}

TEST(Resume, ForceStartsOverAndResumeWithoutCheckpointStartsFresh) {
  TempDir tmp;
  const std::string args = base_args("--method gptq --bits 4") + " --out " + (tmp / "o").string();
  fs::create_directories(tmp / "o.resume");
  const RunResult forced = run_quantllm(args + " --force");
  ASSERT_EQ(forced.status, 0) << forced.err;
  EXPECT_FALSE(fs::exists(tmp / "o.resume"));
  const RunResult fresh = run_quantllm(args + " --force --resume");
  ASSERT_EQ(fresh.status, 0) << fresh.err;
  EXPECT_NE(fresh.err.find("no interrupted run"), std::string::npos) << fresh.err;
}

// The same inputs, options and seed give byte-identical outputs whatever the thread count.
TEST(Determinism, OneAndTwoThreadsWriteTheSameBytes) {
  for (const std::string method : {"--method gptq --bits 4 --act-order", "--method awq --bits 4"}) {
    TempDir tmp;
    const RunResult one = run_quantllm(base_args(method) + " --threads 1 --out " + (tmp / "t1").string());
    ASSERT_EQ(one.status, 0) << one.err;
    const RunResult two = run_quantllm(base_args(method) + " --threads 2 --out " + (tmp / "t2").string());
    ASSERT_EQ(two.status, 0) << two.err;
    expect_same_files(tmp / "t1", tmp / "t2");
  }
  TempDir tmp;
  const std::string gguf = "quantize --model " + model_dir("gutenberg-llama-33m").string() + " --method gguf --type Q4_K_M";
  ASSERT_EQ(run_quantllm(gguf + " --threads 1 --out " + (tmp / "a.gguf").string()).status, 0);
  ASSERT_EQ(run_quantllm(gguf + " --threads 2 --out " + (tmp / "b.gguf").string()).status, 0);
  EXPECT_TRUE(read_all(tmp / "a.gguf") == read_all(tmp / "b.gguf"));
}

}  // namespace
}  // namespace quantllm::test
