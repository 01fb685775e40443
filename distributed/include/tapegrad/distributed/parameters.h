// Making every rank start from the same model, and checking that it holds the same one.
#pragma once

#include <vector>

#include <tapegrad/distributed/communicator.h>
#include <tapegrad/parameter.h>

namespace tapegrad::distributed {

/// Collective. Throws ParameterMismatchError on every rank unless every rank lists the same
/// parameters in the same order: count, full_name(), shape and scalar type. The ranks first
/// exchange a count and a fingerprint, so a mismatch is found before any data moves; the message
/// names the first rank that differs from rank 0 and, on that rank, the first differing entry.
template <class S>
void check_same_parameters(const Communicator& comm, const std::vector<Parameter<S>*>& params);

/// Collective. Checks the lists as check_same_parameters does, then copies every parameter's
/// value from rank 0 to every other rank, so all ranks start identical.
template <class S>
void broadcast_parameters(const Communicator& comm, const std::vector<Parameter<S>*>& params);

extern template void check_same_parameters<float>(const Communicator&, const std::vector<Parameter<float>*>&);
extern template void check_same_parameters<double>(const Communicator&, const std::vector<Parameter<double>*>&);
extern template void broadcast_parameters<float>(const Communicator&, const std::vector<Parameter<float>*>&);
extern template void broadcast_parameters<double>(const Communicator&, const std::vector<Parameter<double>*>&);

}  // namespace tapegrad::distributed
