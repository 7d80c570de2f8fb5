// The CSR matrix-vector product y = A x as an XLA FFI handler for the CPU.
//
// optlab.linalg.csr compiles this file on first use (with the C++ compiler of the
// machine and jaxlib's FFI headers) and registers the handler as "optlab_csr_matvec".
// Arguments: indptr (n_rows + 1, int32), indices (nnz, int32), data (nnz), x; result y,
// in the dtype of data and x (float32, float64, complex64 or complex128). x is (n_cols,)
// or a batch of right-hand sides (batch, n_cols), and y is (n_rows,) or (batch, n_rows),
// row-major: a batch is one call whose rows run over every right-hand side in turn.
// (A column-major batch, each column's right-hand sides contiguous, measured slower:
// XLA's transposes around the call cost more than the vectorized loop saved.)
//
// Large products split their rows into chunks of equal entry counts, taken in turn by the
// calling thread and the other threads of XLA's intra-op pool (the FFI's ThreadPool);
// small ones stay on the calling thread, where a wake-up would cost more than it saves.

#include <algorithm>
#include <atomic>
#include <complex>
#include <memory>
#include <cstdint>
#include <thread>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kParallelWork = int64_t{1} << 17;  // multiply-adds worth a second thread

template <typename T>
void Rows(int64_t first, int64_t last, const int32_t* indptr, const int32_t* indices,
          const T* data, const T* x, T* y) {
  for (int64_t row = first; row < last; ++row) {
    // Four partial sums: the additions of one row no longer wait on each other.
    T s0 = T(0), s1 = T(0), s2 = T(0), s3 = T(0);
    int32_t k = indptr[row];
    const int32_t end = indptr[row + 1];
    for (; k + 4 <= end; k += 4) {
      s0 += data[k] * x[indices[k]];
      s1 += data[k + 1] * x[indices[k + 1]];
      s2 += data[k + 2] * x[indices[k + 2]];
      s3 += data[k + 3] * x[indices[k + 3]];
    }
    for (; k < end; ++k) s0 += data[k] * x[indices[k]];
    y[row] = (s0 + s1) + (s2 + s3);
  }
}

template <typename T>
void Multiply(ffi::ThreadPool& pool, int64_t n_rows, int64_t n_cols, int64_t batch,
              const int32_t* indptr, const int32_t* indices, const T* data, const T* x, T* y) {
  const int64_t nnz = indptr[n_rows];
  const int64_t helpers =
      nnz * batch < kParallelWork ? 0 : std::max<int64_t>(0, pool.num_threads() - 1);
  // Chunks of rows with equal entry counts, handed out one at a time: whoever is free
  // takes the next, so a helper that wakes late costs nothing but the chunks it missed.
  const int64_t chunks = helpers == 0 ? 1 : 4 * (helpers + 1);
  struct Shared {
    std::atomic<int64_t> next{0}, done{0};
  };
  // Helpers hold the counters past this call (one may wake after the last chunk is
  // done); the buffers they are given are touched only for a chunk they took in time.
  auto shared = std::make_shared<Shared>();
  auto drain = [=] {
    for (int64_t c; (c = shared->next.fetch_add(1, std::memory_order_relaxed)) < chunks;) {
      auto start = [&](int64_t k) -> int64_t {
        if (k == chunks) return n_rows;
        return std::lower_bound(indptr, indptr + n_rows, nnz * k / chunks) - indptr;
      };
      const int64_t first = start(c), last = start(c + 1);
      for (int64_t b = 0; b < batch; ++b) {  // the rows stay in cache for every b
        Rows(first, last, indptr, indices, data, x + b * n_cols, y + b * n_rows);
      }
      shared->done.fetch_add(1, std::memory_order_release);
    }
  };
  for (int64_t h = 0; h < helpers; ++h) pool.Schedule([drain] { drain(); });
  drain();
  while (shared->done.load(std::memory_order_acquire) < chunks) std::this_thread::yield();
}

ffi::Error CsrMatvec(ffi::ThreadPool pool, ffi::Buffer<ffi::S32> indptr,
                     ffi::Buffer<ffi::S32> indices, ffi::AnyBuffer data, ffi::AnyBuffer x,
                     ffi::Result<ffi::AnyBuffer> y) {
  const auto dims = x.dimensions();
  if (dims.size() != 1 && dims.size() != 2) {
    return ffi::Error::InvalidArgument("x must be (n,) or (batch, n)");
  }
  const int64_t batch = dims.size() == 2 ? dims[0] : 1;
  const int64_t n_cols = dims.back();
  const int64_t n_rows = static_cast<int64_t>(indptr.element_count()) - 1;
  const int32_t* p = indptr.typed_data();
  const int32_t* j = indices.typed_data();
  switch (data.element_type()) {
    case ffi::F32:
      Multiply(pool, n_rows, n_cols, batch, p, j, data.typed_data<float>(), x.typed_data<float>(),
               y->typed_data<float>());
      break;
    case ffi::F64:
      Multiply(pool, n_rows, n_cols, batch, p, j, data.typed_data<double>(), x.typed_data<double>(),
               y->typed_data<double>());
      break;
    case ffi::C64:
      Multiply(pool, n_rows, n_cols, batch, p, j, data.typed_data<std::complex<float>>(),
               x.typed_data<std::complex<float>>(), y->typed_data<std::complex<float>>());
      break;
    case ffi::C128:
      Multiply(pool, n_rows, n_cols, batch, p, j, data.typed_data<std::complex<double>>(),
               x.typed_data<std::complex<double>>(), y->typed_data<std::complex<double>>());
      break;
    default:
      return ffi::Error::InvalidArgument("data must be float32, float64, complex64 or complex128");
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(OptlabCsrMatvec, CsrMatvec,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>());
