// optlab's sparse kernels for the CPU, as XLA FFI handlers: the CSR product, a batched
// CG step on CSR, and the product by diagonals. optlab.linalg.native compiles this file on
// first use (with the C++ compiler of the machine and jaxlib's FFI headers) and registers
// the handlers.
//
// "optlab_csr_matvec", y = A x for A in CSR. Arguments: indptr (n_rows + 1, int32),
// indices (nnz, int32), data (nnz), position (int32, (0,) or (n,)), x; result y, in the
// dtype of data and x (float32, float64, complex64 or complex128). x is (n_cols,) or a
// batch of right-hand sides (batch, n_cols), and y is (n_rows,) or (batch, n_rows). A
// batch is one call: x is transposed here into slabs of right-hand sides, so that each
// stored entry multiplies a cache line of them at once, in vector registers.
//
// A non-empty position says that the stored rows and columns are a square matrix's
// unknowns renumbered (the caller's unknown i is stored as position[i]), so that the
// entries of a row read nearby entries of x. x is copied into the scratch the product runs
// on (for a batch, the slabs) and y back from it, each in one pass in the caller's order:
// the caller's vectors are read and written in sequence, the scratch at random. (CG does
// without these copies: it solves a renumbered system in its stored numbering.)
//
// Large products split their rows into chunks of equal entry counts, taken in turn by the
// calling thread and the other threads of XLA's intra-op pool (the FFI's ThreadPool);
// small ones stay on the calling thread, where a wake-up would cost more than it saves.
//
// "optlab_csr_cg_step" is one iteration of conjugate gradients for a batch of right-hand
// sides of one real CSR matrix (float32 or float64), unpreconditioned or with a Jacobi
// preconditioner: the batched product above, then each member's vector updates as one
// task (members taken in turn by the pool's threads). It is what optlab.linalg.cg runs
// for a vmapped batch, in place of XLA's fusions of the same updates: those are split over
// threads by size, which costs more than they do.
//
// "optlab_diagonal_matvec", y = A x for A stored by diagonals (DiagonalMatrix), for one x
// or a batch: blocks of rows whose part of y stays in the L1 cache while each diagonal
// adds into it.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <complex>
#include <memory>
#include <cstdint>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kParallelWork = int64_t{1} << 17;  // multiply-adds worth a second thread
constexpr int64_t kParallelCopy = int64_t{1} << 15;  // renumbered entries worth a second thread

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

// W lanes of T in one vector register (GCC's and Clang's vector extension), loaded from
// any address aligned for T.
template <typename T, int W>
struct Lanes {
  typedef T type __attribute__((vector_size(W * sizeof(T)), aligned(sizeof(T)), may_alias));
};

// A batch of right-hand sides is cut into slabs of W of them (W lanes fill one cache line
// where the batch allows): slab (column, W) holds x[column:column + W, j] at
// xt[column * n_cols + j * W], so each stored entry reads one line and multiplies it into
// W sums at once. The slabs' results yt take the same form, by rows.
struct Slab {
  int64_t column, width;
};

// Rows [first, last) of one slab: yt[row * W:(row + 1) * W] from xt, over interleaved
// partial sums in vector registers (a plain loop for complex T).
template <int W, typename T>
void SlabRows(int64_t first, int64_t last, const int32_t* indptr, const int32_t* indices,
              const T* data, const T* xt, T* yt) {
  auto at = [=](int32_t k) { return xt + static_cast<int64_t>(indices[k]) * W; };
  for (int64_t row = first; row < last; ++row) {
    int32_t k = indptr[row];
    const int32_t end = indptr[row + 1];
    if constexpr (std::is_floating_point_v<T>) {
      using V = typename Lanes<T, W>::type;
      auto lanes = [&](int32_t k) { return data[k] * *reinterpret_cast<const V*>(at(k)); };
      V s0 = {}, s1 = {}, s2 = {}, s3 = {};
      for (; k + 4 <= end; k += 4) {
        s0 += lanes(k);
        s1 += lanes(k + 1);
        s2 += lanes(k + 2);
        s3 += lanes(k + 3);
      }
      for (; k + 2 <= end; k += 2) {  // short rows too get two chains of additions
        s0 += lanes(k);
        s1 += lanes(k + 1);
      }
      if (k < end) s2 += lanes(k);
      *reinterpret_cast<V*>(yt + row * W) = (s0 + s1) + (s2 + s3);
    } else {
      T sum[W] = {};
      for (; k < end; ++k) {
        for (int t = 0; t < W; ++t) sum[t] += data[k] * at(k)[t];
      }
      for (int t = 0; t < W; ++t) yt[row * W + t] = sum[t];
    }
  }
}

// Where the caller's unknown i is stored: position[i], or i itself without a renumbering.
inline int64_t Stored(const int32_t* position, int64_t i) { return position ? position[i] : i; }

// slab[position[j] * W + t] = x[t * n + j] for j in [first, last): a slab from W rows of
// x, (W, n).
template <int W, typename T>
void ToSlab(int64_t first, int64_t last, int64_t n, const int32_t* position, const T* x,
            T* slab) {
  for (int64_t j = first; j < last; ++j) {
    T* line = slab + Stored(position, j) * W;
    for (int t = 0; t < W; ++t) line[t] = x[t * n + j];
  }
}

// y[t * n + row] = slab[position[row] * W + t] for row in [first, last): W rows of y back
// from a slab.
template <int W, typename T>
void FromSlab(int64_t first, int64_t last, int64_t n, const int32_t* position, const T* slab,
              T* y) {
  for (int64_t row = first; row < last; ++row) {
    const T* line = slab + Stored(position, row) * W;
    for (int t = 0; t < W; ++t) y[t * n + row] = line[t];
  }
}

// Calls f with the slab's width as a compile-time constant.
template <typename F>
void ForWidth(int64_t width, F f) {
  switch (width) {
    case 16: return f(std::integral_constant<int, 16>());
    case 8: return f(std::integral_constant<int, 8>());
    case 4: return f(std::integral_constant<int, 4>());
    case 2: return f(std::integral_constant<int, 2>());
    default: return f(std::integral_constant<int, 1>());
  }
}

// Runs `chunks` pieces of work, each given its index, on the calling thread and `helpers`
// threads of the pool: whoever is free takes the next, so a helper that wakes late costs
// nothing but the pieces it missed. Returns when every piece is done.
template <typename Piece>
void InTurn(ffi::ThreadPool& pool, int64_t helpers, int64_t chunks, Piece piece) {
  struct Shared {
    std::atomic<int64_t> next{0}, done{0};
  };
  // Helpers hold the counters past this call (one may wake after the last piece is done);
  // what they are given to work on is touched only for a piece they took in time.
  auto shared = std::make_shared<Shared>();
  auto drain = [=] {
    for (int64_t c; (c = shared->next.fetch_add(1, std::memory_order_relaxed)) < chunks;) {
      piece(c);
      shared->done.fetch_add(1, std::memory_order_release);
    }
  };
  for (int64_t h = 0; h < helpers; ++h) pool.Schedule([drain] { drain(); });
  drain();
  while (shared->done.load(std::memory_order_acquire) < chunks) std::this_thread::yield();
}

template <typename T>
void Multiply(ffi::ThreadPool& pool, int64_t n_rows, int64_t n_cols, int64_t batch,
              const int32_t* indptr, const int32_t* indices, const T* data,
              const int32_t* position, const T* x, T* y) {
  const int64_t nnz = indptr[n_rows];
  const int64_t helpers =
      nnz * batch < kParallelWork ? 0 : std::max<int64_t>(0, pool.num_threads() - 1);
  // Chunks of rows with equal entry counts.
  const int64_t chunks = helpers == 0 ? 1 : 4 * (helpers + 1);
  auto start = [=](int64_t c) -> int64_t {
    if (c == chunks) return n_rows;
    return std::lower_bound(indptr, indptr + n_rows, nnz * c / chunks) - indptr;
  };
  if (batch == 1 && position == nullptr) {
    InTurn(pool, helpers, chunks, [=](int64_t c) {
      Rows(start(c), start(c + 1), indptr, indices, data, x, y);
    });
    return;
  }
  // A renumbering's copies, in the caller's order: pass(first, last) over the caller's
  // indices, in equal pieces taken by the threads when the vectors are long (each index
  // is a random access to the scratch), on this thread otherwise.
  const int64_t copiers = n_cols * batch >= kParallelCopy ? helpers : 0;
  auto copy = [&](int64_t n, auto pass) {
    const int64_t pieces = copiers == 0 ? 1 : chunks;
    InTurn(pool, copiers, pieces, [=](int64_t c) { pass(n * c / pieces, n * (c + 1) / pieces); });
  };
  // This thread's scratch, kept for its next call and aligned to a cache line: x and y in
  // the stored numbering, for a batch transposed into slabs.
  thread_local std::vector<T> scratch;
  const int64_t line = std::max<int64_t>(1, 64 / sizeof(T));
  const size_t need = static_cast<size_t>((n_cols + n_rows) * batch + 2 * line);
  if (scratch.size() < need) scratch.resize(need);
  auto aligned = [](T* p) {
    return reinterpret_cast<T*>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t{63});
  };
  T* xt = aligned(scratch.data());
  T* yt = aligned(xt + n_cols * batch);
  if (batch == 1) {  // renumbered: x in, the rows as stored, y out
    copy(n_cols, [=](int64_t first, int64_t last) {
      for (int64_t j = first; j < last; ++j) xt[position[j]] = x[j];
    });
    InTurn(pool, helpers, chunks, [=](int64_t c) {
      Rows(start(c), start(c + 1), indptr, indices, data, xt, yt);
    });
    copy(n_rows, [=](int64_t first, int64_t last) {
      for (int64_t i = first; i < last; ++i) y[i] = yt[position[i]];
    });
    return;
  }
  // Slabs as wide as a cache line, then halves for what remains.
  constexpr int64_t kLine = std::max<int64_t>(1, std::min<int64_t>(16, 64 / sizeof(T)));
  std::vector<Slab> slabs;
  for (int64_t column = 0, width = kLine; column < batch; column += width) {
    while (width > batch - column) width /= 2;
    slabs.push_back({column, width});
  }
  auto to_slabs = [=, &slabs](int64_t first, int64_t last) {
    for (const Slab& slab : slabs) {
      ForWidth(slab.width, [&](auto w) {
        ToSlab<w()>(first, last, n_cols, position, x + slab.column * n_cols,
                    xt + slab.column * n_cols);
      });
    }
  };
  if (position == nullptr) {
    to_slabs(0, n_cols);  // on this thread: a wait between phases costs more
  } else {
    copy(n_cols, to_slabs);
  }
  InTurn(pool, helpers, chunks, [=, &slabs](int64_t c) {
    const int64_t first = start(c), last = start(c + 1);
    for (const Slab& slab : slabs) {
      T* out = yt + slab.column * n_rows;
      ForWidth(slab.width, [&](auto w) {
        SlabRows<w()>(first, last, indptr, indices, data, xt + slab.column * n_cols, out);
        if (position == nullptr) {  // then stored rows are the caller's rows
          FromSlab<w()>(first, last, n_rows, nullptr, out, y + slab.column * n_rows);
        }
      });
    }
  });
  if (position == nullptr) return;
  copy(n_rows, [=, &slabs](int64_t first, int64_t last) {  // once every stored row is done
    for (const Slab& slab : slabs) {
      ForWidth(slab.width, [&](auto w) {
        FromSlab<w()>(first, last, n_rows, position, yt + slab.column * n_rows,
                      y + slab.column * n_rows);
      });
    }
  });
}

// Calls f with a zero of the values' type (float32, float64, complex64 or complex128).
template <typename F>
ffi::Error ForValues(ffi::DataType type, F f) {
  switch (type) {
    case ffi::F32: f(0.0f); break;
    case ffi::F64: f(0.0); break;
    case ffi::C64: f(std::complex<float>()); break;
    case ffi::C128: f(std::complex<double>()); break;
    default:
      return ffi::Error::InvalidArgument("data must be float32, float64, complex64 or complex128");
  }
  return ffi::Error::Success();
}

// (batch, n) of x: (n,) is a batch of one; an error for any other rank.
ffi::ErrorOr<std::pair<int64_t, int64_t>> BatchAndLength(const ffi::AnyBuffer& x) {
  const auto dims = x.dimensions();
  if (dims.size() != 1 && dims.size() != 2) {
    return ffi::Unexpected<ffi::Error>(
        ffi::Error::InvalidArgument("x must be (n,) or (batch, n)"));
  }
  return std::pair<int64_t, int64_t>(dims.size() == 2 ? dims[0] : 1, dims.back());
}

// The position argument as a pointer: null for none (an empty buffer); an error unless it
// renumbers a square matrix's n unknowns.
ffi::ErrorOr<const int32_t*> Position(ffi::Buffer<ffi::S32>& position, int64_t n_rows,
                                      int64_t n_cols) {
  if (position.element_count() == 0) return static_cast<const int32_t*>(nullptr);
  if (n_rows != n_cols || static_cast<int64_t>(position.element_count()) != n_rows) {
    return ffi::Unexpected<ffi::Error>(
        ffi::Error::InvalidArgument("a position renumbers a square matrix's n unknowns"));
  }
  return static_cast<const int32_t*>(position.typed_data());
}

ffi::Error CsrMatvec(ffi::ThreadPool pool, ffi::Buffer<ffi::S32> indptr,
                     ffi::Buffer<ffi::S32> indices, ffi::AnyBuffer data,
                     ffi::Buffer<ffi::S32> position, ffi::AnyBuffer x,
                     ffi::Result<ffi::AnyBuffer> y) {
  const auto shape = BatchAndLength(x);
  if (shape.has_error()) return shape.error();
  const int64_t batch = shape.value().first, n_cols = shape.value().second;
  const int64_t n_rows = static_cast<int64_t>(indptr.element_count()) - 1;
  const auto renumber = Position(position, n_rows, n_cols);
  if (renumber.has_error()) return renumber.error();
  const int32_t* o = renumber.value();
  const int32_t* p = indptr.typed_data();
  const int32_t* j = indices.typed_data();
  return ForValues(data.element_type(), [&](auto zero) {
    using T = decltype(zero);
    Multiply(pool, n_rows, n_cols, batch, p, j, data.typed_data<T>(), o, x.typed_data<T>(),
             y->typed_data<T>());
  });
}

// One running member's CG update after q = A p: curvature p.q, the step alpha (0 where the
// curvature is not positive: the member does not move, and stops), x += alpha p,
// r -= alpha q, z = M^-1 r (z = dinv r, or r), r.z and ||r||, then p = z + beta p with
// beta = r.z / rz (the old rz; 1 in its place when the member did not advance or rz is 0).
// The same arithmetic as optlab.linalg.cg's body, summed in another order.
template <typename T>
void CgMember(int64_t n, const T* dinv, T* x, T* r, T* p, T* q, T rz, T* rz_out,
              T* curvature_out, T* alpha_out, T* norm_out) {
  T curvature = 0;
  for (int64_t i = 0; i < n; ++i) curvature += p[i] * q[i];
  const bool advance = curvature > 0;
  const T alpha = advance ? rz / curvature : T(0);
  T rz_new = 0, squares = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] += alpha * p[i];
    const T ri = r[i] - alpha * q[i];
    const T zi = dinv == nullptr ? ri : dinv[i] * ri;
    r[i] = ri;
    q[i] = zi;
    rz_new += ri * zi;
    squares += ri * ri;
  }
  const T beta = rz_new / ((advance && rz != 0) ? rz : T(1));
  for (int64_t i = 0; i < n; ++i) p[i] = q[i] + beta * p[i];
  *rz_out = rz_new;
  *curvature_out = curvature;
  *alpha_out = alpha;
  *norm_out = std::sqrt(squares);
}

template <typename T>
void CgStepTyped(ffi::ThreadPool& pool, int64_t batch, int64_t n, const int32_t* indptr,
                 const int32_t* indices, const T* data, const T* dinv, const T* x,
                 const T* r, const T* p, const T* rz, const int32_t* running, T* x_out,
                 T* r_out, T* p_out, T* q, T* rz_out, T* curvature_out, T* alpha_out,
                 T* norm_out) {
  const int64_t size = batch * n;
  if (x_out != x) std::copy_n(x, size, x_out);  // no copy where XLA aliased them
  if (r_out != r) std::copy_n(r, size, r_out);
  if (p_out != p) std::copy_n(p, size, p_out);
  // The batched product (slabs, threads over rows), then each member's updates in one
  // task: about ten flops per entry of its vectors.
  Multiply(pool, n, n, batch, indptr, indices, data, nullptr, p_out, q);
  const int64_t helpers = batch > 1 && 10 * size >= kParallelWork
                              ? std::max<int64_t>(0, pool.num_threads() - 1) : 0;
  InTurn(pool, helpers, batch, [=](int64_t b) {
    if (running[b] == 0) {  // stopped: its vectors stay as they are (its scalars are unused)
      rz_out[b] = curvature_out[b] = alpha_out[b] = norm_out[b] = T(0);
      return;
    }
    const int64_t at = b * n;
    CgMember(n, dinv, x_out + at, r_out + at, p_out + at, q + at, rz[b], rz_out + b,
             curvature_out + b, alpha_out + b, norm_out + b);
  });
}

ffi::Error CsrCgStep(ffi::ThreadPool pool, ffi::Buffer<ffi::S32> indptr,
                     ffi::Buffer<ffi::S32> indices, ffi::AnyBuffer data, ffi::AnyBuffer dinv,
                     ffi::AnyBuffer x, ffi::AnyBuffer r, ffi::AnyBuffer p, ffi::AnyBuffer rz,
                     ffi::Buffer<ffi::S32> running, ffi::Result<ffi::AnyBuffer> x_out,
                     ffi::Result<ffi::AnyBuffer> r_out, ffi::Result<ffi::AnyBuffer> p_out,
                     ffi::Result<ffi::AnyBuffer> q, ffi::Result<ffi::AnyBuffer> rz_out,
                     ffi::Result<ffi::AnyBuffer> curvature, ffi::Result<ffi::AnyBuffer> alpha,
                     ffi::Result<ffi::AnyBuffer> norm) {
  const auto dims = x.dimensions();
  if (dims.size() != 2) return ffi::Error::InvalidArgument("x must be (batch, n)");
  const int64_t batch = dims[0], n = dims[1];
  if (static_cast<int64_t>(indptr.element_count()) != n + 1) {
    return ffi::Error::InvalidArgument("A must be square, of the size of x's rows");
  }
  const bool jacobi = dinv.element_count() > 0;
  auto run = [&](auto zero) {
    using T = decltype(zero);
    CgStepTyped<T>(pool, batch, n, indptr.typed_data(), indices.typed_data(),
                   data.typed_data<T>(), jacobi ? dinv.typed_data<T>() : nullptr,
                   x.typed_data<T>(), r.typed_data<T>(), p.typed_data<T>(), rz.typed_data<T>(),
                   running.typed_data(), x_out->typed_data<T>(), r_out->typed_data<T>(),
                   p_out->typed_data<T>(), q->typed_data<T>(), rz_out->typed_data<T>(),
                   curvature->typed_data<T>(), alpha->typed_data<T>(), norm->typed_data<T>());
  };
  switch (data.element_type()) {
    case ffi::F32: run(0.0f); break;
    case ffi::F64: run(0.0); break;
    default: return ffi::Error::InvalidArgument("the CG step takes float32 or float64");
  }
  return ffi::Error::Success();
}

// y = A x for A stored by diagonals (optlab.linalg.DiagonalMatrix, scipy's DIA
// convention: A[i, i + offsets[d]] = data[d, i + offsets[d]]), for one x of length n.
// Rows go in blocks whose part of y stays in the L1 cache while every diagonal adds into
// it: each diagonal a contiguous multiply-add over the block, which the compiler
// vectorizes.
template <typename T>
void DiagonalRows(int64_t first, int64_t last, int64_t n, int64_t diagonals,
                  const int32_t* offsets, const T* data, const T* x, T* y) {
  constexpr int64_t kBlock = 512;
  for (int64_t begin = first; begin < last; begin += kBlock) {
    const int64_t end = std::min(last, begin + kBlock);
    std::fill(y + begin, y + end, T(0));
    for (int64_t d = 0; d < diagonals; ++d) {
      const int64_t k = offsets[d];
      const int64_t from = std::max(begin, -k), to = std::min(end, n - k);
      const T* a = data + d * n + k;
      const T* u = x + k;
      for (int64_t i = from; i < to; ++i) y[i] += a[i] * u[i];
    }
  }
}

ffi::Error DiagonalMatvec(ffi::ThreadPool pool, ffi::AnyBuffer data,
                          ffi::Buffer<ffi::S32> offsets, ffi::AnyBuffer x,
                          ffi::Result<ffi::AnyBuffer> y) {
  const auto shape = BatchAndLength(x);
  if (shape.has_error()) return shape.error();
  const int64_t batch = shape.value().first, n = shape.value().second;
  const int64_t diagonals = static_cast<int64_t>(offsets.element_count());
  if (static_cast<int64_t>(data.element_count()) != diagonals * n) {
    return ffi::Error::InvalidArgument("data must be (diagonals, n)");
  }
  const int32_t* o = offsets.typed_data();
  return ForValues(data.element_type(), [&](auto zero) {
    using T = decltype(zero);
    const T* a = data.typed_data<T>();
    const T* u = x.typed_data<T>();
    T* v = y->typed_data<T>();
    const int64_t helpers = diagonals * n * batch < kParallelWork
                                ? 0 : std::max<int64_t>(0, pool.num_threads() - 1);
    const int64_t per_member = helpers == 0 ? 1 : 4 * (helpers + 1);
    InTurn(pool, helpers, batch * per_member, [=](int64_t c) {
      const int64_t b = c / per_member, piece = c % per_member;
      DiagonalRows(n * piece / per_member, n * (piece + 1) / per_member, n, diagonals, o, a,
                   u + b * n, v + b * n);
    });
  });
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(OptlabCsrMatvec, CsrMatvec,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::Buffer<ffi::S32>>()  // position: (n,) or (0,)
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(OptlabCsrCgStep, CsrCgStep,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::S32>>()  // indptr
                                  .Arg<ffi::Buffer<ffi::S32>>()  // indices
                                  .Arg<ffi::AnyBuffer>()  // data
                                  .Arg<ffi::AnyBuffer>()  // dinv: (n,) or (0,) for none
                                  .Arg<ffi::AnyBuffer>()  // x (batch, n)
                                  .Arg<ffi::AnyBuffer>()  // r
                                  .Arg<ffi::AnyBuffer>()  // p
                                  .Arg<ffi::AnyBuffer>()  // rz (batch,)
                                  .Arg<ffi::Buffer<ffi::S32>>()  // running (batch,)
                                  .Ret<ffi::AnyBuffer>()  // x
                                  .Ret<ffi::AnyBuffer>()  // r
                                  .Ret<ffi::AnyBuffer>()  // p
                                  .Ret<ffi::AnyBuffer>()  // q: scratch (A p, then z)
                                  .Ret<ffi::AnyBuffer>()  // r.z
                                  .Ret<ffi::AnyBuffer>()  // p.q
                                  .Ret<ffi::AnyBuffer>()  // alpha
                                  .Ret<ffi::AnyBuffer>());  // ||r||

XLA_FFI_DEFINE_HANDLER_SYMBOL(OptlabDiagonalMatvec, DiagonalMatvec,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()  // data (diagonals, n)
                                  .Arg<ffi::Buffer<ffi::S32>>()  // offsets (diagonals,)
                                  .Arg<ffi::AnyBuffer>()  // x (n,) or (batch, n)
                                  .Ret<ffi::AnyBuffer>());
