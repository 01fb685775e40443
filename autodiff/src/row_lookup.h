// Rows looked up by integer id: the check, the gather and its transpose (a scatter-add), shared
// by gather_rows (ops_shape.cpp) and the recurrences on token ids (ops_recurrent_gather.cpp).
#pragma once

#include <cstdint>
#include <span>

#include <tapegrad/tape.h>

namespace tapegrad::detail {

// ValueError naming op, the argument and the table unless every id is a row of table.
template <class S>
void check_row_ids(const char* op, const char* arg, std::span<const std::int32_t> ids, const Var<S>& table) {
  for (std::size_t i = 0; i < ids.size(); ++i) {
    TAPEGRAD_CHECK(ids[i] >= 0 && ids[i] < table.rows(), ValueError,
                   "{}: {}[{}] = {} is out of range for a table {} of {} rows", op, arg, i, ids[i], table.shape(),
                   table.rows());
  }
}

// Row i of dst = table row ids[i].
template <class S>
void gather_rows_into(Matrix<S>& dst, const Matrix<S>& table, std::span<const std::int32_t> ids) {
  for (std::size_t i = 0; i < ids.size(); ++i) dst.row(static_cast<Index>(i)) = table.row(ids[i]);
}

// dtable row ids[first + i] += row i of rows (a repeated id accumulates).
template <class S, class Rows>
void scatter_add_rows(Matrix<S>& dtable, std::span<const std::int32_t> ids, Index first, const Rows& rows) {
  for (Index i = 0; i < rows.rows(); ++i) dtable.row(ids[static_cast<std::size_t>(first + i)]) += rows.row(i);
}

}  // namespace tapegrad::detail
