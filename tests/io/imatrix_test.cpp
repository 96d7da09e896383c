// Importance matrices: accumulate → save (llama.cpp's GGUF layout) → load round trips, the legacy
// .dat format built byte by byte, the means quantizers take, and bad files.
#include "io/imatrix.h"

#include "io/gguf.h"
#include "io_test_util.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace quantllm;
using namespace quantllm::testing;

namespace {

ImportanceMatrix sample() {
  ImportanceMatrix im;
  // Dense layer: two batches of 3 and 5 tokens over 4 input channels.
  im.accumulate("blk.0.attn_q.weight", std::vector<float>{1, 2, 3, 4}, 3);
  im.accumulate("blk.0.attn_q.weight", std::vector<float>{1, 0, 1, 0.5f}, 5);
  // Two expert matrices of 2 channels; expert 1 never routed to (count 0).
  im.accumulate("blk.0.ffn_down_exps.weight", std::vector<float>{4, 8}, 2, 0, 2);
  im.datasets = {"wiki.train.raw", "extra.txt"};
  im.chunk_count = 7;
  im.chunk_size = 512;
  return im;
}

void put_i32(std::vector<uint8_t>& b, int32_t v) { put_u32(b, uint32_t(v)); }
void put_f32(std::vector<uint8_t>& b, float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  put_u32(b, u);
}

}  // namespace

TEST(Imatrix, AccumulateAndValues) {
  const ImportanceMatrix im = sample();
  const ImatrixEntry& e = im.entries.at("blk.0.attn_q.weight");
  EXPECT_EQ(e.counts, (std::vector<int64_t>{8}));
  EXPECT_EQ(e.in_sum2, (std::vector<float>{2, 2, 4, 4.5f}));
  EXPECT_EQ(im.values("blk.0.attn_q.weight"), (std::vector<float>{0.25f, 0.25f, 0.5f, 4.5f / 8}));
  // Expert 0: sums / 2; expert 1 saw no tokens: 1.0 as llama-quantize substitutes.
  EXPECT_EQ(im.values("blk.0.ffn_down_exps.weight"), (std::vector<float>{2, 4, 1, 1}));
  expect_error([&] { (void)im.values("nope"); }, {"'nope'"});
  ImportanceMatrix bad = sample();
  expect_error([&] { bad.accumulate("blk.0.attn_q.weight", std::vector<float>{1, 2, 3}, 1); },
               {"'blk.0.attn_q.weight'", "4 channels"});
}

TEST(Imatrix, GgufRoundTripAndLayout) {
  const ImportanceMatrix im = sample();
  TempDir dir;
  const fs::path p = dir / "imatrix.gguf";
  im.save(p);

  // The layout llama.cpp's loader expects.
  const GGUFFile g(p);
  EXPECT_EQ(g.get_as<std::string>("general.type"), "imatrix");
  EXPECT_EQ(g.get_array<std::string>("imatrix.datasets"), im.datasets);
  EXPECT_EQ(g.get_as<uint32_t>("imatrix.chunk_count"), 7u);
  EXPECT_EQ(g.get_as<uint32_t>("imatrix.chunk_size"), 512u);
  ASSERT_EQ(g.tensors().size(), 4u);
  EXPECT_EQ(g.tensors()[0].name, "blk.0.attn_q.weight.in_sum2");
  EXPECT_EQ(g.tensors()[0].ne, (std::vector<int64_t>{4}));  // [4, 1]: llama.cpp drops the trailing 1 too
  EXPECT_EQ(g.tensors()[1].name, "blk.0.attn_q.weight.counts");
  EXPECT_EQ(g.tensors()[1].ne, (std::vector<int64_t>{1}));
  EXPECT_EQ(g.tensors()[1].to_f32().data, (std::vector<float>{8}));
  EXPECT_EQ(g.tensor("blk.0.ffn_down_exps.weight.in_sum2").ne, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(g.tensor("blk.0.ffn_down_exps.weight.counts").to_f32().data, (std::vector<float>{2, 0}));

  const ImportanceMatrix back = ImportanceMatrix::load(p);
  EXPECT_EQ(back.datasets, im.datasets);
  EXPECT_EQ(back.chunk_count, im.chunk_count);
  EXPECT_EQ(back.chunk_size, im.chunk_size);
  ASSERT_EQ(back.entries.size(), im.entries.size());
  for (const auto& [name, e] : im.entries) {
    EXPECT_EQ(back.entries.at(name).in_sum2, e.in_sum2) << name;
    EXPECT_EQ(back.entries.at(name).counts, e.counts) << name;
    EXPECT_EQ(back.values(name), im.values(name)) << name;
  }
  // Saving what was loaded gives the same file.
  EXPECT_EQ(back.to_gguf_bytes(), read_bytes(p));
}

TEST(Imatrix, LegacyDatFormat) {
  // Two entries written as llama-imatrix's legacy format does: values = mean(x²) × ncall.
  std::vector<uint8_t> b;
  put_i32(b, 2);
  put_i32(b, 6);
  put_str(b, "blk.0a");
  put_i32(b, 4);  // ncall
  put_i32(b, 3);  // nval
  for (float v : {4.0f, 8.0f, 2.0f}) put_f32(b, v);
  put_i32(b, 6);
  put_str(b, "blk.0b");
  put_i32(b, 0);  // ncall 0: values used as they are
  put_i32(b, 2);
  for (float v : {0.5f, 1.5f}) put_f32(b, v);
  put_i32(b, 10);  // chunk count
  put_i32(b, 8);
  put_str(b, "data.txt");

  TempDir dir;
  write_bytes(dir / "old.dat", b);
  const ImportanceMatrix im = ImportanceMatrix::load(dir / "old.dat");
  EXPECT_EQ(im.values("blk.0a"), (std::vector<float>{1, 2, 0.5f}));
  EXPECT_EQ(im.values("blk.0b"), (std::vector<float>{0.5f, 1.5f}));
  EXPECT_EQ(im.chunk_count, 10);
  EXPECT_EQ(im.chunk_size, 0);
  EXPECT_EQ(im.datasets, (std::vector<std::string>{"data.txt"}));

  // The trailer is optional.
  std::vector<uint8_t> no_trailer(b.begin(), b.end() - 16);
  const ImportanceMatrix bare = ImportanceMatrix::parse(no_trailer.data(), no_trailer.size(), "bare.dat");
  EXPECT_EQ(bare.entries.size(), 2u);
  EXPECT_TRUE(bare.datasets.empty());

  // Converting to GGUF keeps the means.
  im.save(dir / "new.gguf");
  const ImportanceMatrix conv = ImportanceMatrix::load(dir / "new.gguf");
  EXPECT_EQ(conv.values("blk.0a"), im.values("blk.0a"));
  EXPECT_EQ(conv.values("blk.0b"), im.values("blk.0b"));

  // Every truncation inside the entries is an error naming the file.
  for (size_t n = 0; n < no_trailer.size(); ++n) {
    SCOPED_TRACE(n);
    expect_error([&] { ImportanceMatrix::parse(b.data(), n, "cut.dat"); }, {"cut.dat"});
  }
}

TEST(ImatrixBad, Files) {
  TempDir dir;
  auto expect_bad_gguf = [&](const GGUFWriter& w, std::vector<std::string> needles) {
    const fs::path p = dir / "bad.gguf";
    w.write(p);
    needles.push_back(p.string());
    expect_error([&] { ImportanceMatrix::load(p); }, needles);
  };
  auto f32 = [](std::vector<float> v) {
    std::vector<uint8_t> b(v.size() * 4);
    std::memcpy(b.data(), v.data(), b.size());
    return b;
  };
  {
    GGUFWriter w;
    w.add_string("general.type", "model");
    w.add_tensor("x.in_sum2", 0, {2, 1}, f32({1, 2}));
    w.add_tensor("x.counts", 0, {1, 1}, f32({1}));
    expect_bad_gguf(w, {"general.type", "imatrix"});
  }
  {
    GGUFWriter w;
    w.add_tensor("x.in_sum2", 0, {2, 1}, f32({1, 2}));
    expect_bad_gguf(w, {"'x'", ".counts"});
  }
  {
    GGUFWriter w;
    w.add_tensor("x.in_sum2", 1, {2, 1}, std::vector<uint8_t>(4));  // F16
    w.add_tensor("x.counts", 0, {1, 1}, f32({1}));
    expect_bad_gguf(w, {"'x'", "F32"});
  }
  {
    GGUFWriter w;
    w.add_tensor("x.in_sum2", 0, {2, 1}, f32({1, NAN}));
    w.add_tensor("x.counts", 0, {1, 1}, f32({1}));
    expect_bad_gguf(w, {"'x'", "finite"});
  }
  {
    GGUFWriter w;
    w.add_tensor("x.in_sum2", 0, {3, 1}, f32({1, 2, 3}));
    w.add_tensor("x.counts", 0, {1, 2}, f32({1, 1}));
    expect_bad_gguf(w, {"'x'"});
  }
  {
    GGUFWriter w;
    w.add_tensor("x.in_sum2", 0, {2, 1}, f32({1, 2}));
    w.add_tensor("x.counts", 0, {1, 1}, f32({-3}));
    expect_bad_gguf(w, {"'x'", "count"});
  }
  {
    GGUFWriter w;
    w.add_string("general.type", "imatrix");
    w.add_u64("imatrix.chunk_count", 3);  // must be UINT32
    w.add_tensor("x.in_sum2", 0, {2, 1}, f32({1, 2}));
    w.add_tensor("x.counts", 0, {1, 1}, f32({1}));
    expect_bad_gguf(w, {"imatrix.chunk_count", "UINT32"});
  }
  {
    GGUFWriter w;
    w.add_string("general.type", "imatrix");
    expect_bad_gguf(w, {"no importance statistics"});
  }
  write_bytes(dir / "junk.dat", {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'});
  expect_error([&] { ImportanceMatrix::load(dir / "junk.dat"); }, {"junk.dat", "not an importance matrix"});
  write_bytes(dir / "empty.dat", {});
  expect_error([&] { ImportanceMatrix::load(dir / "empty.dat"); }, {"empty.dat"});
  expect_error([&] { ImportanceMatrix::load(dir / "missing.gguf"); }, {"missing.gguf"});

  // Saving to an unwritable place leaves nothing behind.
  expect_error([&] { sample().save(dir / "no" / "x.gguf"); }, {"x.gguf"});
}

// tests/io/data/llama_cpp_imatrix.gguf was written with llama.cpp's gguf API by the same calls
// llama-imatrix's save_imatrix makes (data/gen_llama_cpp_goldens.cpp), for the statistics below.
TEST(Imatrix, LlamaCppGolden) {
  const fs::path golden = fs::path(QUANTLLM_SOURCE_DIR) / "tests/io/data/llama_cpp_imatrix.gguf";
  ASSERT_TRUE(fs::exists(golden)) << golden;
  ImportanceMatrix im;
  im.accumulate("blk.0.attn_k.weight", std::vector<float>{1, 2, 3, 4}, 5);
  im.accumulate("blk.0.attn_q.weight", std::vector<float>{2, 2, 2, 2, 2, 2, 2, 2}, 7);
  im.accumulate("blk.1.ffn_down_exps.weight", std::vector<float>{1, 1}, 3, 1, 2);
  im.datasets = {"wiki.raw"};
  im.chunk_count = 4;
  im.chunk_size = 512;
  EXPECT_EQ(im.to_gguf_bytes(), read_bytes(golden));
  const ImportanceMatrix back = ImportanceMatrix::load(golden);
  EXPECT_EQ(back.values("blk.0.attn_k.weight"), (std::vector<float>{0.2f, 0.4f, 0.6f, 0.8f}));
  EXPECT_EQ(back.values("blk.1.ffn_down_exps.weight"), (std::vector<float>{1, 1, 1.0f / 3, 1.0f / 3}));
  EXPECT_EQ(back.chunk_size, 512);
}
