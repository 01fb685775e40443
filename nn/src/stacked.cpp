// Explicit instantiations of the stacks over the built-in cells (other cells instantiate
// the header templates on use).
#include <tapegrad/nn/stacked.h>

namespace tapegrad::nn {

template class Stacked<RnnCell<float>>;
template class Stacked<RnnCell<double>>;
template class Stacked<LstmCell<float>>;
template class Stacked<LstmCell<double>>;
template class Stacked<GruCell<float>>;
template class Stacked<GruCell<double>>;
template class Bidirectional<RnnCell<float>>;
template class Bidirectional<RnnCell<double>>;
template class Bidirectional<LstmCell<float>>;
template class Bidirectional<LstmCell<double>>;
template class Bidirectional<GruCell<float>>;
template class Bidirectional<GruCell<double>>;

}  // namespace tapegrad::nn
