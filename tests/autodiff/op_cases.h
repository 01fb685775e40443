// THE table of op cases: one row per op and per broadcast or shape variant. Every op of
// op_list.h has at least one row (test_gradcheck.cpp fails otherwise), and every row is
// gradchecked in float64, with fan-out, aliasing, value and pruning variants.
#pragma once

#include <cstdint>
#include <functional>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include <tapegrad/tapegrad.h>

namespace tapegrad::optest {

/// Where a row's inputs are sampled.
enum class Domain {
  Real,           ///< uniform in [-2, 2]
  Positive,       ///< uniform in [0.5, 2] (log, sqrt, fractional pow, div)
  NonZero,        ///< |x| uniform in [0.5, 2], random sign (reciprocal)
  AwayFromKinks,  ///< distinct values on a grid of step 1/8 offset by 1/16 in [-3, 3]: every
                  ///< element is >= 1/16 from any multiple of 1/8 (the kinks of relu, abs,
                  ///< hardtanh, clamp(-0.5, 0.75)) and >= 1/8 from every other element
                  ///< (no maximum/minimum ties); at most 48 elements per row
};

using CaseFn = std::function<Var<double>(std::span<const Var<double>>)>;
using ReferenceFn = std::function<Matrix<double>(const std::vector<Matrix<double>>&)>;

/// One row: the op applied to inputs of the given shapes.
struct OpCase {
  std::string name;         ///< "op" or "op/variant"; the part before '/' is the op's name in ops.h
  std::vector<Shape> args;  ///< input shapes
  CaseFn fn;                ///< the op under test (integer arguments and constants are captured)
  Domain domain = Domain::Real;
  double atol = 1e-7;  ///< gradcheck tolerances
  double rtol = 1e-5;
  ReferenceFn reference;  ///< optional plain-Eigen forward value
};

/// GoogleTest prints a row by its name (instead of its bytes) in failure messages.
inline void PrintTo(const OpCase& c, std::ostream* os) { *os << c.name; }

/// Every row of the table.
const std::vector<OpCase>& op_cases();
/// Every op name of op_list.h (each must have a row), sorted, once each: the declared ops and the
/// template ops (TAPEGRAD_TEMPLATE_OPS, e.g. pointwise).
const std::vector<std::string>& all_op_names();
/// The op part of a row name ("add/row_bias" -> "add").
std::string op_name(const OpCase& c);
/// Inputs for a row, drawn from its domain with a fixed seed.
std::vector<Matrix<double>> sample_inputs(const OpCase& c, std::uint64_t seed = 1);

}  // namespace tapegrad::optest
