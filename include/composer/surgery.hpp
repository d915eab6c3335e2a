#pragma once
/// \file
/// Model surgery: replaceable child slots, finding/counting/replacing modules by type, and the optimizer
/// fix-up after the parameter set changed. Composer counterpart: `composer.utils.module_surgery`.

#include <composer/surgery/module_surgery.hpp>
#include <composer/surgery/optimizer_surgery.hpp>
#include <composer/surgery/surgical_module.hpp>
