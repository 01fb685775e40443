// Whether a kernel overwrites its destination or adds to it: every product kernel takes one.
#pragma once

namespace tapegrad::kernels {

enum Write { Assign, Accumulate };

}  // namespace tapegrad::kernels
