#pragma once
/// \file
/// The torch-free core: events, time, timestamps, policies, the logger handle and BasicEngine. Include this
/// alone to use the Engine over a state type of your own without LibTorch. The core's LibTorch types (`State`,
/// `Model`, `Batch`, `Precision`, the training `Engine`) come with `composer/trainer.hpp`; this is the one
/// umbrella that leaves part of its folder out, so that the core target needs no LibTorch.

#include <composer/core/engine.hpp>
#include <composer/core/event.hpp>
#include <composer/core/logger.hpp>
#include <composer/core/policy.hpp>
#include <composer/core/time.hpp>
#include <composer/core/timestamp.hpp>
