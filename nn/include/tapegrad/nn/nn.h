// Every public header of tapegrad::nn: modules, cells and their base, stacks, unrolling,
// dropout and its generator, losses, optimizers, clipping, schedules, truncated BPTT,
// diagnostics, checkpoints.
#pragma once

#include <tapegrad/nn/cell.h>
#include <tapegrad/nn/checkpoint.h>
#include <tapegrad/nn/clip.h>
#include <tapegrad/nn/diagnostics.h>
#include <tapegrad/nn/dropout.h>
#include <tapegrad/nn/embedding.h>
#include <tapegrad/nn/gru_cell.h>
#include <tapegrad/nn/init.h>
#include <tapegrad/nn/linear.h>
#include <tapegrad/nn/loss.h>
#include <tapegrad/nn/lr_schedule.h>
#include <tapegrad/nn/lstm_cell.h>
#include <tapegrad/nn/module.h>
#include <tapegrad/nn/optim.h>
#include <tapegrad/nn/random.h>
#include <tapegrad/nn/rnn_cell.h>
#include <tapegrad/nn/sequence.h>
#include <tapegrad/nn/stacked.h>
#include <tapegrad/nn/state.h>
#include <tapegrad/nn/svg_plot.h>
#include <tapegrad/nn/tbptt.h>
#include <tapegrad/nn/unroll.h>
