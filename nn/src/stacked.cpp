// Explicit instantiations of the stacks over the built-in cells (other cells instantiate
// the header templates on use).
#include <tapegrad/nn/stacked.h>

namespace tapegrad::nn {

#define TAPEGRAD_INSTANTIATE_LAYERS(Cell) \
  template class Stacked<Cell>;           \
  template class Bidirectional<Cell>;
TAPEGRAD_FOR_EACH_BUILTIN_CELL(TAPEGRAD_INSTANTIATE_LAYERS)
#undef TAPEGRAD_INSTANTIATE_LAYERS

}  // namespace tapegrad::nn
