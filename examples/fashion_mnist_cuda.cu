// The main job compiled as CUDA by nvcc: the same program as fashion_mnist.cpp, whose Trainer then has the fused
// CUDA pass (COMPOSER_CUDA_FUSION), so `--device cuda` runs the presets' input stages as one kernel launch per
// microbatch. This is all a user does to get that path: compile the file that instantiates the Trainer as CUDA.
#include "fashion_mnist.cpp"
