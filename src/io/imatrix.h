// Importance matrices: per input channel of every linear layer, the sum of x² over the calibration
// tokens and how many tokens went into it — what llama.cpp's llama-imatrix collects and what its
// quantizers weigh the rounding error with (importance = Σx² / count, the mean of x²).
//
// Files, as llama.cpp reads and writes them (tools/imatrix, common/imatrix-loader):
//  * GGUF (current; written here): general.type = "imatrix", imatrix.datasets (ARRAY of STRING),
//    imatrix.chunk_count (UINT32), imatrix.chunk_size (UINT32, tokens per chunk); per tensor NAME,
//    "NAME.in_sum2" F32 ne = [n_per_row, n_mat] (raw Σx², one row per expert matrix, n_mat = 1 for
//    dense layers) and "NAME.counts" F32 ne = [1, n_mat] (tokens seen by each matrix), tensors sorted
//    by name.
//  * legacy .dat (read only): i32 n_entries; per entry i32 name length, name bytes, i32 ncall,
//    i32 nval, f32 values[nval] where value = mean(x²) × ncall; then optionally i32 chunk count,
//    i32 dataset name length, dataset name bytes. Loaded as in_sum2 = values, counts = {ncall}, so
//    that values() gives the same mean llama-quantize computes (value / ncall).
// Tensor names are whatever the file uses (llama.cpp's GGUF names, e.g. "blk.0.attn_q.weight").
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace quantllm {

struct ImatrixEntry {
  std::vector<float> in_sum2;   // [n_mat, n_per_row] row-major: Σx² of each input channel, per matrix
  std::vector<int64_t> counts;  // [n_mat]: tokens accumulated into each matrix's row of in_sum2

  int64_t n_mat() const { return int64_t(counts.size()); }
  int64_t n_per_row() const { return counts.empty() ? 0 : int64_t(in_sum2.size() / counts.size()); }
};

class ImportanceMatrix {
 public:
  std::map<std::string, ImatrixEntry> entries;  // tensor name → statistics
  std::vector<std::string> datasets;            // calibration files it was computed from
  int32_t chunk_count = 0;                      // chunks of chunk_size tokens processed
  int32_t chunk_size = 0;                       // tokens per chunk; 0 when unknown (legacy files)

  // Reads a GGUF imatrix or a legacy .dat file (told apart by the "GGUF" magic). Errors name the
  // file and, where relevant, the tensor: wrong general.type, unpaired in_sum2/counts, non-F32
  // tensors, sizes that do not divide, negative or non-finite values, an empty file.
  static ImportanceMatrix load(const std::filesystem::path& path);
  // The same from bytes in memory; `name` starts error messages (the fuzzer's entry point).
  static ImportanceMatrix parse(const uint8_t* data, size_t size, const std::string& name);

  // Writes llama.cpp's GGUF format atomically.
  void save(const std::filesystem::path& path) const;
  // The same bytes in memory.
  std::vector<uint8_t> to_gguf_bytes() const;

  bool has(const std::string& name) const { return entries.count(name) != 0; }

  // The importance quantizers take: mean of x² per input channel, [n_mat, n_per_row] (for a dense
  // layer simply [n_per_row]). A matrix that saw no tokens gets 1.0 everywhere, as llama-quantize
  // does. Error when `name` has no entry.
  std::vector<float> values(const std::string& name) const;

  // Accumulates statistics of one forward batch for matrix `mat` (0 for dense layers):
  // sum_x2: [n_per_row] Σx² over the batch's n_tokens rows. Creates the entry on first use (with
  // n_mat matrices); a later call with a different n_per_row or n_mat is an Error naming the tensor.
  void accumulate(const std::string& name, std::span<const float> sum_x2, int64_t n_tokens, int64_t mat = 0,
                  int64_t n_mat = 1);
};

}  // namespace quantllm
