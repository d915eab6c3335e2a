#pragma once
/// \file
/// The model zoo (Composer counterpart: `composer.models`): `SimpleCNN` and the `ResNet` family.

#include <composer/models/gpt.hpp>
#include <composer/models/resnet.hpp>
#include <composer/models/simple_cnn.hpp>
