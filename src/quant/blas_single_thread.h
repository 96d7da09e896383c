// SingleThreadedBlas: holds OpenBLAS at one thread while alive, so that our own parallel_for splits
// the work into pieces of fixed shape and results do not depend on the thread count (OpenBLAS's
// threaded sgemm/potrf give different bytes for 1 and 2 threads). Nested or concurrent holders share
// one save/restore: the first saves the BLAS thread count, the last restores it.
#pragma once

#include <cblas.h>

#include <mutex>

namespace quantllm {

class SingleThreadedBlas {
 public:
  SingleThreadedBlas() {
    std::lock_guard lk(mutex());
    if (holders()++ == 0) {
      saved() = openblas_get_num_threads();
      openblas_set_num_threads(1);
    }
  }
  ~SingleThreadedBlas() {
    std::lock_guard lk(mutex());
    if (--holders() == 0) openblas_set_num_threads(saved());
  }
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  static int& holders() {
    static int n = 0;
    return n;
  }
  static int& saved() {
    static int n = 1;
    return n;
  }
};

}  // namespace quantllm
