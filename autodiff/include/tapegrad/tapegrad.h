// The whole autodiff API in one include.
#pragma once

#include <tapegrad/error.h>
#include <tapegrad/gradcheck.h>
#include <tapegrad/jacobian.h>
#include <tapegrad/op.h>
#include <tapegrad/ops.h>
#include <tapegrad/parameter.h>
#include <tapegrad/pointwise.h>
#include <tapegrad/tape.h>
#include <tapegrad/tensor.h>
#include <tapegrad/threading.h>
#include <tapegrad/window.h>
