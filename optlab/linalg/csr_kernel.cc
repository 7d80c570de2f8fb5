// The CSR matrix-vector product y = A x as an XLA FFI handler for the CPU.
//
// optlab.linalg.csr compiles this file on first use (with the C++ compiler of the
// machine and jaxlib's FFI headers) and registers the handler as "optlab_csr_matvec".
// Arguments: indptr (n_rows + 1, int32), indices (nnz, int32), data (nnz), x (..., n_cols);
// result: y (..., n_rows), in the dtype of data and x (float32, float64, complex64 or
// complex128). A leading batch of right-hand sides (vmap) is a loop over the rows of x:
// the matrix is read once per right-hand side, from cache when it fits there.

#include <complex>
#include <cstdint>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

template <typename T>
void Multiply(int64_t n_rows, int64_t n_cols, int64_t batch, const int32_t* indptr,
              const int32_t* indices, const T* data, const T* x, T* y) {
  for (int64_t b = 0; b < batch; ++b) {
    const T* xb = x + b * n_cols;
    T* yb = y + b * n_rows;
    for (int64_t row = 0; row < n_rows; ++row) {
      // Four partial sums: the additions of one row no longer wait on each other.
      T s0 = T(0), s1 = T(0), s2 = T(0), s3 = T(0);
      int32_t k = indptr[row];
      const int32_t end = indptr[row + 1];
      for (; k + 4 <= end; k += 4) {
        s0 += data[k] * xb[indices[k]];
        s1 += data[k + 1] * xb[indices[k + 1]];
        s2 += data[k + 2] * xb[indices[k + 2]];
        s3 += data[k + 3] * xb[indices[k + 3]];
      }
      for (; k < end; ++k) s0 += data[k] * xb[indices[k]];
      yb[row] = (s0 + s1) + (s2 + s3);
    }
  }
}

ffi::Error CsrMatvec(ffi::Buffer<ffi::S32> indptr, ffi::Buffer<ffi::S32> indices,
                     ffi::AnyBuffer data, ffi::AnyBuffer x, ffi::Result<ffi::AnyBuffer> y) {
  const auto dims = x.dimensions();
  if (dims.size() == 0) return ffi::Error::InvalidArgument("x must have at least one axis");
  const int64_t n_cols = dims.back();
  const int64_t n_rows = static_cast<int64_t>(indptr.element_count()) - 1;
  const int64_t batch = n_cols == 0 ? 0 : static_cast<int64_t>(x.element_count()) / n_cols;
  const int32_t* p = indptr.typed_data();
  const int32_t* j = indices.typed_data();
  switch (data.element_type()) {
    case ffi::F32:
      Multiply(n_rows, n_cols, batch, p, j, data.typed_data<float>(), x.typed_data<float>(),
               y->typed_data<float>());
      break;
    case ffi::F64:
      Multiply(n_rows, n_cols, batch, p, j, data.typed_data<double>(), x.typed_data<double>(),
               y->typed_data<double>());
      break;
    case ffi::C64:
      Multiply(n_rows, n_cols, batch, p, j, data.typed_data<std::complex<float>>(),
               x.typed_data<std::complex<float>>(), y->typed_data<std::complex<float>>());
      break;
    case ffi::C128:
      Multiply(n_rows, n_cols, batch, p, j, data.typed_data<std::complex<double>>(),
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
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>());
