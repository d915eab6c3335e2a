#pragma once
/// \file
/// The Trainer layer (Composer counterpart: `composer.Trainer`): `Trainer<Policies...>`, `TrainerOptions`, the
/// checkpoint layout and the precision context, with the State, Model and Batch they work on. No method,
/// functional transform or kernel comes with it: a translation unit that trains with a few methods includes this
/// and those methods' headers (`composer/algorithms/mixup.hpp`, ...); BENCHMARKS.md ("What a translation unit
/// pays") compares what such a translation unit and one with `composer/composer.hpp` take to compile.

#include <composer/core.hpp>
#include <composer/core/batch.hpp>
#include <composer/core/model.hpp>
#include <composer/core/precision.hpp>
#include <composer/core/state.hpp>
#include <composer/core/training_engine.hpp>
#include <composer/trainer/checkpoint.hpp>
#include <composer/trainer/evaluator.hpp>
#include <composer/trainer/precision_context.hpp>
#include <composer/trainer/state_archive.hpp>
#include <composer/trainer/trainer.hpp>
#include <composer/trainer/trainer_options.hpp>
