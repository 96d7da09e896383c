// gen_ggml_goldens: writes the golden files of tests/quant/ggml_golden_test.cpp with llama.cpp's own
// quantizers, and times those quantizers for docs/benchmarks-ggml-quantize.md.
//
// Not part of our build: it links llama.cpp's ggml-base library (see README.md next to it). For each
// input set (random distributions chosen to hit the quantizers' edge cases, and rows of the reference
// models' weights) it stores the f32 input, an importance vector, and for every format, without and
// with that importance vector, the bytes of ggml_quantize_chunk and what ggml's to_float makes of them.
//
// File format (all little-endian), one file per input set, tests/data/ggml/<set>.qlgg:
//   char[4] "QLGG", u32 version = 1, u32 nrows, u32 n_per_row,
//   f32 input[nrows * n_per_row], f32 imatrix[n_per_row],
//   u32 n_entries, then per entry:
//     u32 ggml type id, u32 with_imatrix (0/1), u64 nbytes, u8 bytes[nbytes],
//     f32 dequantized[nrows * n_per_row]
#include "ggml.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

const ggml_type kAllTypes[] = {GGML_TYPE_F32,  GGML_TYPE_F16,  GGML_TYPE_BF16, GGML_TYPE_Q8_0,   GGML_TYPE_Q4_0,
                               GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q2_K,   GGML_TYPE_Q3_K,
                               GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K, GGML_TYPE_IQ4_NL, GGML_TYPE_IQ4_XS};
const ggml_type kFloatTypes[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16};
// The low-bit types (issue 17), written to <set>.lowbit.qlgg so the files above stay as they were. The
// types ggml_quantize_requires_imatrix() names (IQ2_XXS, IQ2_XS, IQ1_S) have only the imatrix entry.
const ggml_type kLowBitTypes[] = {GGML_TYPE_TQ1_0,  GGML_TYPE_TQ2_0,   GGML_TYPE_MXFP4, GGML_TYPE_IQ2_XXS,
                                  GGML_TYPE_IQ2_XS, GGML_TYPE_IQ2_S,   GGML_TYPE_IQ3_XXS, GGML_TYPE_IQ3_S,
                                  GGML_TYPE_IQ1_S,  GGML_TYPE_IQ1_M};

struct InputSet {
  std::string name;
  int nrows = 0, n_per_row = 0;
  std::vector<float> x;        // [nrows, n_per_row]
  std::vector<float> imatrix;  // [n_per_row]
  bool float_types_only = false;
};

std::vector<uint8_t> quantize(ggml_type type, const InputSet& s, const float* imatrix) {
  std::vector<uint8_t> out(ggml_row_size(type, s.n_per_row) * s.nrows);
  const size_t n = ggml_quantize_chunk(type, s.x.data(), out.data(), 0, s.nrows, s.n_per_row, imatrix);
  if (n != out.size()) throw std::runtime_error("ggml_quantize_chunk size mismatch");
  return out;
}

std::vector<float> dequantize(ggml_type type, const InputSet& s, const std::vector<uint8_t>& q) {
  std::vector<float> y(size_t(s.nrows) * s.n_per_row);
  const auto* tt = ggml_get_type_traits(type);
  const size_t rs = ggml_row_size(type, s.n_per_row);
  if (type == GGML_TYPE_F32) {  // ggml has no to_float for F32: it is the identity
    std::memcpy(y.data(), q.data(), q.size());
    return y;
  }
  for (int r = 0; r < s.nrows; ++r) tt->to_float(q.data() + r * rs, y.data() + size_t(r) * s.n_per_row, s.n_per_row);
  return y;
}

template <typename T>
void put(std::ofstream& f, const T& v) {
  f.write(reinterpret_cast<const char*>(&v), sizeof v);
}
void put_floats(std::ofstream& f, const std::vector<float>& v) {
  f.write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * 4));
}

void write_file(const std::string& path, const InputSet& s, const std::vector<ggml_type>& types) {
  std::ofstream f(path, std::ios::binary);
  f.write("QLGG", 4);
  put(f, uint32_t(1));
  put(f, uint32_t(s.nrows));
  put(f, uint32_t(s.n_per_row));
  put_floats(f, s.x);
  put_floats(f, s.imatrix);
  uint32_t n_entries = 0;
  for (ggml_type t : types) n_entries += ggml_quantize_requires_imatrix(t) ? 1 : 2;
  put(f, n_entries);
  for (ggml_type t : types) {
    for (int with_im = ggml_quantize_requires_imatrix(t) ? 1 : 0; with_im < 2; ++with_im) {
      const auto q = quantize(t, s, with_im ? s.imatrix.data() : nullptr);
      put(f, uint32_t(t));
      put(f, uint32_t(with_im));
      put(f, uint64_t(q.size()));
      f.write(reinterpret_cast<const char*>(q.data()), std::streamsize(q.size()));
      put_floats(f, dequantize(t, s, q));
    }
  }
  if (!f) throw std::runtime_error("write failed: " + path);
}

void write_set(const std::string& dir, const InputSet& s) {
  if (s.float_types_only) {
    write_file(dir + "/" + s.name + ".qlgg", s, {std::begin(kFloatTypes), std::end(kFloatTypes)});
  } else {
    write_file(dir + "/" + s.name + ".qlgg", s, {std::begin(kAllTypes), std::end(kAllTypes)});
    write_file(dir + "/" + s.name + ".lowbit.qlgg", s, {std::begin(kLowBitTypes), std::end(kLowBitTypes)});
  }
  std::printf("%-24s %d x %d\n", s.name.c_str(), s.nrows, s.n_per_row);
}

// ---- inputs ------------------------------------------------------------------------------------

InputSet make_set(std::string name, int nrows, int n_per_row, std::mt19937& rng) {
  InputSet s;
  s.name = std::move(name);
  s.nrows = nrows;
  s.n_per_row = n_per_row;
  s.x.assign(size_t(nrows) * n_per_row, 0.f);
  // Importance: positive, log-normal, like mean squared activations.
  std::normal_distribution<float> g(0.f, 1.f);
  s.imatrix.resize(n_per_row);
  for (auto& v : s.imatrix) v = std::exp(g(rng));
  return s;
}

std::vector<InputSet> random_sets() {
  std::mt19937 rng(20240611);
  std::normal_distribution<float> g(0.f, 1.f);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  std::vector<InputSet> sets;

  auto s = make_set("gaussian", 4, 512, rng);
  for (auto& v : s.x) v = g(rng);
  sets.push_back(s);

  s = make_set("outliers", 4, 1024, rng);
  for (auto& v : s.x) v = 0.02f * g(rng) * (u(rng) < 0.01f ? 40.f : 1.f);
  sets.push_back(s);

  // Row 0 all zero; row 1: first super-block zero, then alternating zero / gaussian 32-blocks.
  s = make_set("zeros", 2, 512, rng);
  for (int j = 256; j < 512; ++j) s.x[512 + j] = ((j / 32) % 2) ? g(rng) : 0.f;
  sets.push_back(s);

  // Tiny magnitudes: fp16-subnormal scales, and below the quantizers' 1e-15 "all zero" threshold.
  s = make_set("tiny", 3, 512, rng);
  for (int j = 0; j < 512; ++j) {
    s.x[j] = 1e-6f * g(rng);
    s.x[512 + j] = 1e-9f * g(rng);
    s.x[1024 + j] = 1e-17f * g(rng);
  }
  sets.push_back(s);

  s = make_set("huge_one", 2, 512, rng);
  for (auto& v : s.x) v = g(rng);
  s.x[77] = 1e5f;
  s.x[512 + 300] = -3e4f;
  sets.push_back(s);

  // All positive (the affine formats' min > 0 path) and a constant row (max == min).
  s = make_set("positive", 2, 512, rng);
  for (int j = 0; j < 512; ++j) {
    s.x[j] = 0.5f + u(rng);
    s.x[512 + j] = 0.25f;
  }
  sets.push_back(s);

  // Every 16-block at its own scale, spanning orders of magnitude: stresses the sub-block scales.
  s = make_set("mixed_scale", 2, 512, rng);
  for (int b = 0; b < 2 * 512 / 16; ++b) {
    const float scale = std::exp(2.f * g(rng));
    for (int j = 0; j < 16; ++j) s.x[16 * b + j] = scale * g(rng);
  }
  sets.push_back(s);

  // An importance vector with zeros (channels never activated in calibration).
  s = make_set("sparse_imatrix", 2, 512, rng);
  for (auto& v : s.x) v = g(rng);
  for (auto& v : s.imatrix)
    if (u(rng) < 0.25f) v = 0.f;
  sets.push_back(s);

  // Conversion edge cases, for the float types only.
  s = make_set("fp_edges", 1, 64, rng);
  s.float_types_only = true;
  const float edges[] = {0.f, -0.f, 1.f, -2.f, 65504.f, 65519.f, 65520.f, 1e6f, -1e6f,
                         std::ldexp(1.f, -24), std::ldexp(1.f, -25), std::ldexp(3.f, -25), std::ldexp(1.f, -26),
                         std::ldexp(1.f, -14), std::ldexp(1023.f, -24), 1.f + std::ldexp(1.f, -11),
                         1.f + 3 * std::ldexp(1.f, -11), 1.f + std::ldexp(1.f, -8), 1.f + 3 * std::ldexp(1.f, -8),
                         1e-40f, -1e-45f, 3.4e38f, INFINITY, -INFINITY, NAN, -NAN, 0.1f, 1.f / 3.f};
  for (size_t j = 0; j < 64; ++j) s.x[j] = j < std::size(edges) ? edges[j] : g(rng) * std::exp(8.f * g(rng));
  sets.push_back(s);
  return sets;
}

// ---- reference-model rows ------------------------------------------------------------------------

float bf16_to_f32(uint16_t h) {
  uint32_t b = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

// Widens rows [0, nrows) of a 2-D bf16/f16/f32 tensor to f32 (ggml's own fp16 conversion).
InputSet model_rows(const std::string& model_dir, const std::string& tensor, const std::string& set_name, int nrows,
                    std::mt19937& rng) {
  std::ifstream idx(model_dir + "/model.safetensors.index.json");
  const auto index = nlohmann::json::parse(idx);
  const std::string path = model_dir + "/" + index["weight_map"][tensor].get<std::string>();
  std::ifstream f(path, std::ios::binary);
  uint64_t header_len = 0;
  f.read(reinterpret_cast<char*>(&header_len), 8);
  std::string header(header_len, '\0');
  f.read(header.data(), std::streamsize(header_len));
  const auto h = nlohmann::json::parse(header)[tensor];
  const std::string dtype = h["dtype"];
  const int cols = h["shape"][1];
  const uint64_t begin = h["data_offsets"][0];
  const int esize = dtype == "F32" ? 4 : 2;
  std::vector<uint8_t> raw(size_t(nrows) * cols * esize);
  f.seekg(std::streamoff(8 + header_len + begin));
  f.read(reinterpret_cast<char*>(raw.data()), std::streamsize(raw.size()));
  if (!f) throw std::runtime_error("cannot read " + tensor + " from " + path);
  InputSet s = make_set(set_name, nrows, cols, rng);
  for (size_t i = 0; i < s.x.size(); ++i) {
    uint16_t h16;
    std::memcpy(&h16, raw.data() + 2 * i, 2);
    if (dtype == "BF16")
      s.x[i] = bf16_to_f32(h16);
    else if (dtype == "F16")
      s.x[i] = ggml_fp16_to_fp32(h16);
    else
      std::memcpy(&s.x[i], raw.data() + 4 * i, 4);
  }
  return s;
}

// ---- benchmark -----------------------------------------------------------------------------------

// The benchmark matrix, bit-identical to bench/bench_ggml_quantize.cpp's: splitmix64 per index, an
// Irwin-Hall sum of four uniforms (close to a gaussian), times 0.02.
float bench_value(uint64_t i) {
  float sum = 0;
  for (int k = 0; k < 4; ++k) {
    uint64_t z = (i * 4 + k + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    sum += float(z >> 40) * (1.0f / 16777216.0f);
  }
  return 0.02f * (sum - 2.0f);
}

// Times ggml_quantize_chunk over a rows x cols matrix split into contiguous row ranges, one per thread
// (what llama-quantize does, minus file I/O).
void bench(int threads, int rows, int cols) {
  std::vector<float> x(size_t(rows) * cols);
  for (size_t i = 0; i < x.size(); ++i) x[i] = bench_value(i);
  std::vector<float> imatrix(cols);
  for (int j = 0; j < cols; ++j) imatrix[j] = 1.0f + 0.5f * std::sin(0.1f * float(j));
  std::printf("llama.cpp ggml_quantize_chunk, %d threads, %d x %d f32 (%.1f MB)\n", threads, rows, cols,
              double(x.size()) * 4 / 1e6);
  std::printf("%-8s %14s %14s\n", "type", "MB/s", "MB/s imatrix");
  for (ggml_type t : kAllTypes) {
    std::vector<uint8_t> out(ggml_row_size(t, cols) * rows);
    double mbs[2];
    uint64_t hash[2];
    for (int with_im = 0; with_im < 2; ++with_im) {
      double best = 1e30;
      for (int rep = 0; rep < 3; ++rep) {
        const auto t0 = std::chrono::steady_clock::now();
        std::vector<std::thread> pool;
        for (int k = 0; k < threads; ++k) {
          pool.emplace_back([&, k] {
            const int64_t r0 = int64_t(rows) * k / threads, r1 = int64_t(rows) * (k + 1) / threads;
            ggml_quantize_chunk(t, x.data(), out.data(), r0 * cols, r1 - r0, cols, with_im ? imatrix.data() : nullptr);
          });
        }
        for (auto& th : pool) th.join();
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      mbs[with_im] = double(x.size()) * 4 / 1e6 / best;
      hash[with_im] = 1469598103934665603ull;  // FNV-1a of the bytes: bench_ggml_quantize checks ours against it
      for (uint8_t b : out) hash[with_im] = (hash[with_im] ^ b) * 1099511628211ull;
    }
    std::printf("%-8s %14.1f %14.1f   fnv1a 0x%016llxull 0x%016llxull\n", ggml_type_name(t), mbs[0], mbs[1],
                (unsigned long long)hash[0], (unsigned long long)hash[1]);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "--bench") {
    const int threads = argc > 2 ? std::atoi(argv[2]) : 2;
    const int rows = argc > 3 ? std::atoi(argv[3]) : 4096;
    const int cols = argc > 4 ? std::atoi(argv[4]) : 4096;
    bench(threads, rows, cols);
    return 0;
  }
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s OUT_DIR MODELS_DIR | --bench [THREADS [ROWS COLS]]\n", argv[0]);
    return 2;
  }
  const std::string out = argv[1], models = argv[2];
  for (ggml_type t : kAllTypes) ggml_quantize_init(t);
  for (ggml_type t : kLowBitTypes) ggml_quantize_init(t);
  for (const auto& s : random_sets()) write_set(out, s);
  std::mt19937 rng(7);
  write_set(out, model_rows(models + "/gutenberg-llama-33m", "model.layers.0.mlp.down_proj.weight",
                            "llama33m_down_proj", 3, rng));
  write_set(out, model_rows(models + "/gutenberg-llama-33m", "model.layers.1.self_attn.q_proj.weight",
                            "llama33m_q_proj", 3, rng));
  write_set(out, model_rows(models + "/gutenberg-opt-28m", "model.decoder.layers.0.fc2.weight", "opt28m_fc2", 2, rng));
  write_set(out, model_rows(models + "/gutenberg-opt-28m", "model.decoder.layers.0.self_attn.k_proj.weight",
                            "opt28m_k_proj", 3, rng));
  return 0;
}
