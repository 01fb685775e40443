// Ranks without MPI: one process, nothing to share or sum.
#include "ranks.h"

namespace char_lm {

struct Ranks::Impl {};

Ranks::Ranks() = default;
Ranks::~Ranks() = default;
int Ranks::rank() const { return 0; }
int Ranks::size() const { return 1; }
Share Ranks::share_of(int batch, int) const { return {0, batch}; }
void Ranks::share_parameters(const std::vector<tapegrad::Parameter<float>*>&) {}
void Ranks::sum_gradients() {}
double Ranks::sum(double x) const { return x; }
void Ranks::abort_job(int) const {}

}  // namespace char_lm
