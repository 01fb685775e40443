// The MPI datatype of a parameter scalar.
#pragma once

#include <mpi.h>

namespace tapegrad::distributed::detail {

template <class S>
MPI_Datatype mpi_type();
template <>
inline MPI_Datatype mpi_type<float>() {
  return MPI_FLOAT;
}
template <>
inline MPI_Datatype mpi_type<double>() {
  return MPI_DOUBLE;
}

}  // namespace tapegrad::distributed::detail
