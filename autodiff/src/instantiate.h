// Ops are templates over the scalar type, defined in src/ and explicitly instantiated for
// float (training, benchmarks) and double (gradcheck, reference tests) with this macro.
#pragma once

#define TAPEGRAD_FOR_EACH_SCALAR(X) X(float) X(double)
