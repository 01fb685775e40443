// Shape and indexing ops: the gradient of each is the matching inverse placement (a slice of
// the output gradient, a scatter-add, a reshape back).
#include <tapegrad/detail/checked_size.h>
#include <tapegrad/op.h>
#include <tapegrad/ops.h>

#include "broadcast.h"
#include "instantiate.h"
#include "row_lookup.h"

namespace tapegrad {

namespace {

// The joins and slices work along an Axis: Rows stacks parts top to bottom (concat_rows) or
// takes a block of rows (slice_rows); Cols works side by side (concat_cols, slice_cols).

template <Axis A, class M>
auto part_block(M& m, Index at, Index n) {
  if constexpr (A == Axis::Rows) {
    return m.middleRows(at, n);
  } else {
    return m.middleCols(at, n);
  }
}

template <Axis A, class M>
Index along(const M& m) {
  return A == Axis::Rows ? m.rows() : m.cols();
}

// y = the parts joined along A;  dx_i = the block of g that x_i produced
template <Axis A, class S>
Var<S> join_parts(const char* op, std::span<const Var<S>> parts) {
  constexpr Axis kOther = A == Axis::Rows ? Axis::Cols : Axis::Rows;
  TAPEGRAD_CHECK(!parts.empty(), ValueError, "{}: needs at least one part", op);
  Index total = 0;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    TAPEGRAD_CHECK(along<kOther>(parts[i]) == along<kOther>(parts[0]), ShapeError,
                   "{}: part {} is {} but part 0 is {}; every part needs {} {}", op, i, parts[i].shape(),
                   parts[0].shape(), along<kOther>(parts[0]), A == Axis::Rows ? "columns" : "rows");
    total = detail::checked_add(op, total, along<A>(parts[i]));
  }
  const Shape out = A == Axis::Rows ? Shape{total, parts[0].cols()} : Shape{parts[0].rows(), total};
  return apply<S>(
      {op, out}, parts,
      [](OpCtx<S>& c) {
        if (c.y().size() == 0) return;  // a block of an empty matrix offsets a null pointer (UB)
        Index at = 0;
        for (std::size_t i = 0; i < c.num_inputs(); ++i) {
          part_block<A>(c.y(), at, along<A>(c.x(i))) = c.x(i);
          at += along<A>(c.x(i));
        }
      },
      [](OpCtx<S>& c) {
        if (c.y().size() == 0) return;
        Index at = 0;
        for (std::size_t i = 0; i < c.num_inputs(); ++i) {
          const Index n = along<A>(c.x(i));
          if (c.needs_grad(i)) c.gx(i) += part_block<A>(c.gy(), at, n);
          at += n;
        }
      });
}

// y = the block [begin, begin + count) of x along A;  dx's block += g
template <Axis A, class S>
Var<S> slice_part(const char* op, const Var<S>& x, Index begin, Index count) {
  TAPEGRAD_CHECK(begin >= 0 && count >= 0 && count <= along<A>(x) - begin, ShapeError,
                 "{}: begin {}, count {} is out of range for x {} (needs 0 <= begin, 0 <= count, begin + count <= {})",
                 op, begin, count, x.shape(), along<A>(x));
  const Shape out = A == Axis::Rows ? Shape{count, x.cols()} : Shape{x.rows(), count};
  return apply<S>(
      {op, out}, {x},
      [begin, count](OpCtx<S>& c) {
        if (c.y().size() != 0) c.y() = part_block<A>(c.x(0), begin, count);  // empty: no block of a null pointer
      },
      [begin, count](OpCtx<S>& c) {
        if (c.needs_grad(0) && c.gy().size() != 0) part_block<A>(c.gx(0), begin, count) += c.gy();
      });
}

}  // namespace

// y = [x_0 x_1 ...] side by side
template <class S>
Var<S> concat_cols(std::span<const Var<S>> parts) {
  return join_parts<Axis::Cols, S>("concat_cols", parts);
}

// y = [x_0; x_1; ...] stacked
template <class S>
Var<S> concat_rows(std::span<const Var<S>> parts) {
  return join_parts<Axis::Rows, S>("concat_rows", parts);
}

// y = x[:, begin:begin+count];  dx[:, begin:begin+count] += g
template <class S>
Var<S> slice_cols(const Var<S>& x, Index begin, Index count) {
  return slice_part<Axis::Cols>("slice_cols", x, begin, count);
}

// y = x[begin:begin+count, :];  dx[begin:begin+count, :] += g
template <class S>
Var<S> slice_rows(const Var<S>& x, Index begin, Index count) {
  return slice_part<Axis::Rows>("slice_rows", x, begin, count);
}

// y_i = table[index_i];  dtable[index_i] += g_i (a repeated index accumulates)
template <class S>
Var<S> gather_rows(const Var<S>& table, std::span<const std::int32_t> index) {
  detail::check_row_ids("gather_rows", "index", index, table);
  return apply<S>(
      {"gather_rows", {static_cast<Index>(index.size()), table.cols()}, {}, index}, {table},
      [](OpCtx<S>& c) { detail::gather_rows_into(c.y(), c.x(0), c.ints()); },
      [](OpCtx<S>& c) {
        if (c.needs_grad(0)) detail::scatter_add_rows(c.gx(0), c.ints(), 0, c.gy());
      });
}

// y = the elements of x in row-major order as [rows x cols];  dx = g read back in x's shape
template <class S>
Var<S> reshape(const Var<S>& x, Index rows, Index cols) {
  // Divides instead of multiplying: rows * cols may overflow for absurd requests.
  const Index size = x.value().size();
  TAPEGRAD_CHECK(rows >= 0 && cols >= 0 && (rows == 0 ? size == 0 : size % rows == 0 && size / rows == cols),
                 ShapeError, "reshape: cannot reshape x {} ({} elements) to [{} x {}]", x.shape(), x.value().size(),
                 rows, cols);
  using Map = Eigen::Map<const Matrix<S>>;
  return apply<S>(
      {"reshape", {rows, cols}}, {x}, [rows, cols](OpCtx<S>& c) { c.y() = Map(c.x(0).data(), rows, cols); },
      [](OpCtx<S>& c) {
        if (c.needs_grad(0)) c.gx(0) += Map(c.gy().data(), c.x(0).rows(), c.x(0).cols());
      });
}

// y = x * mask (mask constant, saved in aux(0); broadcasts like mul);  dx = g * mask
template <class S>
Var<S> mask_mul(const Var<S>& x, const std::type_identity_t<Matrix<S>>& mask) {
  const Shape out = detail::broadcast_shape("mask_mul", x.shape(), shape_of(mask), "x", "mask");
  return apply<S>(
      {"mask_mul", out, {shape_of(mask)}}, {x},
      [&mask, out](OpCtx<S>& c) {
        c.aux(0) = mask;
        detail::broadcast_apply<S>(c.x(0), c.aux(0), out, [&](const auto& a, const auto& m) { c.y().array() = a * m; });
      },
      [out](OpCtx<S>& c) {
        if (!c.needs_grad(0)) return;
        detail::broadcast_apply<S>(c.x(0), c.aux(0), out,
                                   [&](const auto&, const auto& m) { detail::reduce_to(c.gx(0), c.gy().array() * m); });
      });
}

// y = cond != 0 ? a : b (cond constant of the output shape, saved in aux(0); a, b broadcast);
// da = g where cond, db = g elsewhere
template <class S>
Var<S> where(const std::type_identity_t<Matrix<S>>& cond, const Var<S>& a, const Var<S>& b) {
  const Shape out = detail::broadcast_shape("where", a.shape(), b.shape());
  TAPEGRAD_CHECK(shape_of(cond) == out, ShapeError, "where: cond is {} but a {} and b {} broadcast to {}",
                 shape_of(cond), a.shape(), b.shape(), out);
  return apply<S>(
      {"where", out, {out}}, {a, b},
      [&cond, out](OpCtx<S>& c) {
        c.aux(0) = cond;
        detail::broadcast_apply<S>(c.x(0), c.x(1), out, [&](const auto& x0, const auto& x1) {
          c.y().array() = (c.aux(0).array() != S(0)).select(x0, x1);
        });
      },
      [](OpCtx<S>& c) {
        const auto taken = c.aux(0).array() != S(0);
        if (c.needs_grad(0)) detail::reduce_to(c.gx(0), taken.select(c.gy().array(), S(0)));
        if (c.needs_grad(1)) detail::reduce_to(c.gx(1), taken.select(S(0), c.gy().array()));
      });
}

TAPEGRAD_INSTANTIATE_OPS(TAPEGRAD_SHAPE_OPS)

}  // namespace tapegrad
