// tapegrad::distributed: data-parallel training over MPI (docs/distributed.md).
#pragma once

#include <tapegrad/distributed/communicator.h>
#include <tapegrad/distributed/error.h>
#include <tapegrad/distributed/gradient_sync.h>
#include <tapegrad/distributed/parameters.h>
#include <tapegrad/distributed/sampler.h>
