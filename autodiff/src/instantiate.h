// Ops are templates over the scalar type, defined in src/ and explicitly instantiated for
// float (training, benchmarks) and double (gradcheck, reference tests): each ops_<family>.cpp
// ends with TAPEGRAD_INSTANTIATE_OPS(TAPEGRAD_<FAMILY>_OPS), its family's rows of op_list.h.
#pragma once

#include <tapegrad/ops.h>

#define TAPEGRAD_FOR_EACH_SCALAR(X) X(float) X(double)

// ops.h has declared every op with its default arguments; an explicit instantiation may not
// repeat them.
#undef TAPEGRAD_OP_DEFAULT
#define TAPEGRAD_OP_DEFAULT(value)

#define TAPEGRAD_INSTANTIATE_OP(name, ret, params) template ret name params;
#define TAPEGRAD_INSTANTIATE_OPS(FAMILY) \
  FAMILY(TAPEGRAD_INSTANTIATE_OP, float) \
  FAMILY(TAPEGRAD_INSTANTIATE_OP, double)
