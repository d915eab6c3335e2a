#pragma once
/// \file
/// The per-element layer of the fused CUDA batch transform: the plain argument structs of its kernels and the
/// work of one kernel thread. `process_chunk` applies the stages of `batch_stages.hpp` to up to kVec consecutive
/// output elements of one image; `image_thread` and `target_thread` walk a thread's share of the grid; the
/// `__global__` kernels only call them. The thread functions are `__host__ __device__`, so that a host program
/// runs the very code of every thread without a GPU (`fused_dispatch.cuh`: run_image_on_host,
/// run_targets_on_host). Packing the arguments, choosing the instantiation and launching live in
/// `fused_dispatch.cuh`; the public transform is `composer/kernels/fused_batch_cuda.cuh`.

#if !defined(__CUDACC__)
#error "composer/kernels/cuda/fused_image_agent.cuh holds CUDA code: include it only from a .cu file compiled by nvcc (the public header is composer/kernels/fused_batch_cuda.cuh)"
#else

#include <composer/kernels/batch_stages.hpp>

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

namespace composer::kernels::cuda::detail {

/// Elements per thread per step (one or two 16-byte vector loads for every input dtype).
inline constexpr uint32_t kVec = 8;
/// Threads per block of the image kernel.
inline constexpr int kThreads = 256;
/// Most non-empty CutOut holes one call takes (they are kernel arguments).
inline constexpr int kMaxHoles = 32;
/// Most channels the Normalize stage takes (mean and 1/std are kernel arguments).
inline constexpr int kMaxChannels = 64;
/// Largest image (C·H·W elements) the kernel indexes with 32-bit arithmetic.
inline constexpr int64_t kMaxSampleSize = (int64_t{1} << 31) - 64;

/// The compile-time set of pixel stages of a transform, one bit each.
enum StageBits : unsigned { kMixUpBit = 1u, kCutMixBit = 2u, kCutOutBit = 4u, kNormalizeBit = 8u };

template <class S>
inline constexpr unsigned stage_bit_v = std::is_same_v<S, stage::MixUp>       ? kMixUpBit
                                        : std::is_same_v<S, stage::CutMix>    ? kCutMixBit
                                        : std::is_same_v<S, stage::CutOut>    ? kCutOutBit
                                        : std::is_same_v<S, stage::Normalize> ? kNormalizeBit
                                                                              : 0u;

/// Unsigned division by a divisor fixed for the launch, as a multiply-high, an add and a shift (exact for
/// dividends below 2^31): with s = ⌈log₂ d⌉ and magic = ⌊2^32·(2^s − d)/d⌋ + 1, n / d = (mulhi(n, magic) + n) >> s.
struct DivMod {
  uint32_t divisor = 1;
  uint32_t magic = 1;
  uint32_t shift = 0;

  DivMod() = default;
  explicit DivMod(uint32_t d) : divisor(d) {
    while ((uint64_t{1} << shift) < d) ++shift;
    magic = static_cast<uint32_t>(((uint64_t{1} << 32) * ((uint64_t{1} << shift) - d)) / d + 1);
  }
  __host__ __device__ uint32_t div(uint32_t n) const {
#if defined(__CUDA_ARCH__)
    const uint32_t t = __umulhi(n, magic);
#else
    const uint32_t t = static_cast<uint32_t>((static_cast<uint64_t>(n) * magic) >> 32);
#endif
    return (t + n) >> shift;
  }
};

/// How the image kernel reads its input.
enum LoadMode : int {
  kLoadVector = 0,   ///< in the output's layout, 8-element aligned vectors
  kLoadScalar = 1,   ///< in the output's layout, element by element
  kLoadStrided = 2,  ///< through the input's own four strides (output NCHW)
};

/// Everything the image kernel needs, passed by value (a __grid_constant__ parameter, read in place).
struct ImageArgs {
  const void* in = nullptr;
  void* out = nullptr;
  int64_t batch = 0;
  int64_t in_stride[4] = {0, 0, 0, 0};  ///< elements; n, c, h, w (only stride n outside the strided mode)
  uint32_t sample_size = 0;             ///< C·H·W
  uint32_t chunks = 0;                  ///< ⌈C·H·W / kVec⌉ chunks per image
  uint32_t extent0 = 1;                 ///< fastest coordinate's extent: W (NCHW) or C (NHWC)
  uint32_t extent1 = 1;                 ///< next one: H (NCHW) or W (NHWC)
  DivMod div0;                          ///< by extent0
  DivMod div1;                          ///< by extent1
  int mode = kLoadScalar;
  bool channels_last = false;
  float scale = 1.0f;                   ///< 1/255 for uint8 input
  // MixUp
  const int64_t* mix_perm = nullptr;
  bool mix_active = false;              ///< m ≠ 0
  float keep = 1.0f;                    ///< 1 − m
  float take = 0.0f;                    ///< m
  // CutMix
  const int64_t* cut_perm = nullptr;
  bool cut_active = false;              ///< the box is not empty
  int32_t box_h0 = 0, box_h1 = 0, box_w0 = 0, box_w1 = 0;  ///< rows [h0, h1), columns [w0, w1)
  // CutOut
  int32_t num_holes = 0;
  int32_t holes[kMaxHoles][4] = {};     ///< per hole (y1, x1, y2, x2): rows [y1, y2), columns [x1, x2)
  // Normalize
  uint32_t channels = 0;
  float mean[kMaxChannels] = {};
  float inv_std[kMaxChannels] = {};
};
static_assert(sizeof(ImageArgs) <= 4000, "the image kernel's arguments must fit CUDA's 4 KiB parameter space");

/// Everything the target kernel needs.
struct TargetArgs {
  const int64_t* labels = nullptr;
  float* out = nullptr;
  int64_t batch = 0;
  int64_t classes = 0;
  const int64_t* mix_perm = nullptr;
  float keep = 1.0f;
  float take = 0.0f;
  const int64_t* cut_perm = nullptr;
  float area = 1.0f;
  float on_scale = 1.0f;  ///< 1 − s
  float off = 0.0f;       ///< s / K
};

/// One range check of the value-check kernel: count values at p, each must lie in [lo, hi).
struct RangeCheck {
  const int64_t* values = nullptr;
  int64_t count = 0;
  int64_t lo = 0;
  int64_t hi = 0;
};
/// Most range checks one value-check launch runs (MixUp indices, CutMix indices, labels).
inline constexpr int kMaxChecks = 3;
/// The range checks of one value-check launch, one per blockIdx.y.
struct RangeChecks {
  RangeCheck check[kMaxChecks];
};

/// kVec elements of type T, aligned for one vector load or store.
template <class T>
struct alignas(sizeof(T) * kVec) Pack {
  T v[kVec];
};

/// An index clamped into [0, n), so that unchecked values never read out of bounds.
__host__ __device__ inline int64_t clamp_index(int64_t i, int64_t n) { return i < 0 ? 0 : (i >= n ? n - 1 : i); }

/// An input element widened to float32 (exact for every input dtype).
template <class In>
__host__ __device__ inline float to_float(In x) {
  return static_cast<float>(x);
}

/// A float32 value as an output element, rounded to nearest even for float16 and bfloat16.
template <class Out>
__host__ __device__ inline Out from_float(float v) {
  if constexpr (std::is_same_v<Out, float>) {
    return v;
  } else {
    return Out(v);  // c10::Half / c10::BFloat16: round to nearest even
  }
}

/// MixUp's per-element function, as in the CPU kernel: keep·self + take·partner as one fused multiply-add.
__host__ __device__ inline float mix_apply(float self, float partner, float keep, float take) {
  return fmaf(self, keep, partner * take);
}

/// The value before CutOut and Normalize of the element at `offset` within image `sample`: s·x, mixed with the
/// same element of `partner` when MixUp is active.
template <class In, bool kMix>
__host__ __device__ inline float load_one(const ImageArgs& a, int64_t sample, int64_t partner, int64_t offset) {
  const In* in = static_cast<const In*>(a.in);
  float v = to_float(in[sample * a.in_stride[0] + offset]) * a.scale;
  if constexpr (kMix) {
    if (a.mix_active) v = mix_apply(v, to_float(in[partner * a.in_stride[0] + offset]) * a.scale, a.keep, a.take);
  }
  return v;
}

/// The same for the kVec elements starting at j0 of image `sample`, with vector loads (kLoadVector mode).
template <class In, bool kMix>
__host__ __device__ inline void load_vec(const ImageArgs& a, int64_t sample, int64_t partner, uint32_t j0,
                                         float (&v)[kVec]) {
  const In* in = static_cast<const In*>(a.in);
  const Pack<In> self = *reinterpret_cast<const Pack<In>*>(in + sample * a.in_stride[0] + j0);
#pragma unroll
  for (uint32_t k = 0; k < kVec; ++k) v[k] = to_float(self.v[k]) * a.scale;
  if constexpr (kMix) {
    if (a.mix_active) {
      const Pack<In> other = *reinterpret_cast<const Pack<In>*>(in + partner * a.in_stride[0] + j0);
#pragma unroll
      for (uint32_t k = 0; k < kVec; ++k) v[k] = mix_apply(v[k], to_float(other.v[k]) * a.scale, a.keep, a.take);
    }
  }
}

/// Transforms the (up to) kVec consecutive output elements j0, j0 + 1, … of image n. `mean` and `inv_std` hold
/// the per-channel constants (in shared memory on the device). Host-callable too, so that its index arithmetic
/// can be exercised without a GPU.
template <class In, class Out, unsigned kMask>
__host__ __device__ inline void process_chunk(const ImageArgs& a, const float* mean, const float* inv_std, int64_t n,
                                              uint32_t j0) {
  constexpr bool kMix = (kMask & kMixUpBit) != 0;
  constexpr bool kCutMix = (kMask & kCutMixBit) != 0;
  constexpr bool kCutOut = (kMask & kCutOutBit) != 0;
  constexpr bool kNorm = (kMask & kNormalizeBit) != 0;

  const uint32_t remaining = a.sample_size - j0;
  const uint32_t count = remaining < kVec ? remaining : kVec;

  // Coordinates of j0 in the output layout: (i0, i1, i2) = (w, h, c) for NCHW or (c, w, h) for NHWC.
  const uint32_t q0 = a.div0.div(j0);
  uint32_t i0 = j0 - q0 * a.extent0;
  const uint32_t q1 = a.div1.div(q0);
  uint32_t i1 = q0 - q1 * a.extent1;
  uint32_t i2 = q1;

  uint32_t cs[kVec];
  int64_t within[kVec];  // the element's offset inside its input image
  unsigned boxed = 0;
  unsigned holed = 0;
#pragma unroll
  for (uint32_t k = 0; k < kVec; ++k) {
    const uint32_t c = a.channels_last ? i0 : i2;
    const uint32_t h = a.channels_last ? i2 : i1;
    const uint32_t w = a.channels_last ? i1 : i0;
    cs[k] = c;
    within[k] = a.mode == kLoadStrided ? static_cast<int64_t>(c) * a.in_stride[1] +
                                             static_cast<int64_t>(h) * a.in_stride[2] +
                                             static_cast<int64_t>(w) * a.in_stride[3]
                                       : static_cast<int64_t>(j0 + k);
    if (k < count) {
      const int32_t hi = static_cast<int32_t>(h);
      const int32_t wi = static_cast<int32_t>(w);
      if constexpr (kCutMix) {
        if (a.cut_active && a.box_h0 <= hi && hi < a.box_h1 && a.box_w0 <= wi && wi < a.box_w1) boxed |= 1u << k;
      }
      if constexpr (kCutOut) {
        for (int32_t i = 0; i < a.num_holes; ++i) {
          if (a.holes[i][0] <= hi && hi < a.holes[i][2] && a.holes[i][1] <= wi && wi < a.holes[i][3]) {
            holed |= 1u << k;
          }
        }
      }
    }
    if (++i0 == a.extent0) {
      i0 = 0;
      if (++i1 == a.extent1) {
        i1 = 0;
        ++i2;
      }
    }
  }

  const unsigned valid = (1u << count) - 1u;
  const unsigned need_self = valid & ~boxed & ~holed;
  const unsigned need_box = valid & boxed & ~holed;

  // The images each element comes from: its own (and its MixUp partner), or inside the box the CutMix partner
  // (and that image's MixUp partner).
  const int64_t self = n;
  int64_t self_partner = n;
  int64_t box_src = n;
  int64_t box_partner = n;
  if constexpr (kMix) {
    if (a.mix_active && need_self) self_partner = clamp_index(a.mix_perm[n], a.batch);
  }
  if constexpr (kCutMix) {
    if (need_box) {
      box_src = clamp_index(a.cut_perm[n], a.batch);
      if constexpr (kMix) {
        if (a.mix_active) box_partner = clamp_index(a.mix_perm[box_src], a.batch);
      }
    }
  }

  float v[kVec];
  if (a.mode == kLoadVector) {
    float vs[kVec] = {};
    float vb[kVec] = {};
    if (need_self) load_vec<In, kMix>(a, self, self_partner, j0, vs);
    if constexpr (kCutMix) {
      if (need_box) load_vec<In, kMix>(a, box_src, box_partner, j0, vb);
    }
#pragma unroll
    for (uint32_t k = 0; k < kVec; ++k) v[k] = ((holed >> k) & 1u) ? 0.0f : (((boxed >> k) & 1u) ? vb[k] : vs[k]);
  } else {
#pragma unroll
    for (uint32_t k = 0; k < kVec; ++k) {
      v[k] = 0.0f;
      if ((need_self >> k) & 1u) {
        v[k] = load_one<In, kMix>(a, self, self_partner, within[k]);
      } else if ((need_box >> k) & 1u) {
        v[k] = load_one<In, kMix>(a, box_src, box_partner, within[k]);
      }
    }
  }

  if constexpr (kNorm) {
#pragma unroll
    for (uint32_t k = 0; k < kVec; ++k) v[k] = (v[k] - mean[cs[k]]) * inv_std[cs[k]];
  }

  Out* out = static_cast<Out*>(a.out) + n * static_cast<int64_t>(a.sample_size) + j0;
  if (a.mode == kLoadVector) {
    Pack<Out> packed;
#pragma unroll
    for (uint32_t k = 0; k < kVec; ++k) packed.v[k] = from_float<Out>(v[k]);
    *reinterpret_cast<Pack<Out>*>(out) = packed;
  } else {
#pragma unroll
    for (uint32_t k = 0; k < kVec; ++k) {
      if (k < count) out[k] = from_float<Out>(v[k]);
    }
  }
}

/// The work of one thread of the image kernel: thread `thread` of block (block_x, block_y) in a grid of
/// grid_x × grid_y blocks of `block_dim` threads walks the images from block_y in steps of grid_y and, inside each,
/// the kVec-element chunks from block_x·block_dim + thread in steps of grid_x·block_dim, so consecutive threads
/// touch consecutive memory. Host-callable, so that a host-side test runs the kernel's whole grid.
template <class In, class Out, unsigned kMask>
__host__ __device__ inline void image_thread(const ImageArgs& a, const float* mean, const float* inv_std,
                                             uint32_t block_x, uint32_t block_y, uint32_t grid_x, uint32_t grid_y,
                                             uint32_t block_dim, uint32_t thread) {
  const uint32_t step = grid_x * block_dim;
  for (int64_t n = block_y; n < a.batch; n += grid_y) {
    for (uint32_t chunk = block_x * block_dim + thread; chunk < a.chunks; chunk += step) {
      process_chunk<In, Out, kMask>(a, mean, inv_std, n, chunk * kVec);
    }
  }
}

/// The image kernel: the normalisation constants go to shared memory, then each thread runs image_thread.
template <class In, class Out, unsigned kMask>
__global__ void __launch_bounds__(kThreads) fused_image_kernel(const __grid_constant__ ImageArgs a) {
  __shared__ float mean[kMaxChannels];
  __shared__ float inv_std[kMaxChannels];
  if constexpr ((kMask & kNormalizeBit) != 0) {
    for (uint32_t i = threadIdx.x; i < a.channels; i += blockDim.x) {
      mean[i] = a.mean[i];
      inv_std[i] = a.inv_std[i];
    }
    __syncthreads();
  }
  image_thread<In, Out, kMask>(a, mean, inv_std, blockIdx.x, blockIdx.y, gridDim.x, gridDim.y, blockDim.x,
                               threadIdx.x);
}

/// Mixed (MixUp) and smoothed one-hot value of class k for image n.
template <bool kMix>
__host__ __device__ inline float mixed_target(const TargetArgs& a, int64_t n, int64_t k) {
  const float self = (a.labels[n] == k ? 1.0f : 0.0f) * a.on_scale + a.off;
  if constexpr (!kMix) {
    return self;
  } else {
    const int64_t partner = a.labels[clamp_index(a.mix_perm[n], a.batch)];
    const float other = (partner == k ? 1.0f : 0.0f) * a.on_scale + a.off;
    return self * a.keep + other * a.take;
  }
}

/// One target element: the MixUp mix of image n, then CutMix's area-weighted mix with image π_c(n).
template <unsigned kMask>
__host__ __device__ inline float target_value(const TargetArgs& a, int64_t n, int64_t k) {
  constexpr bool kMix = (kMask & kMixUpBit) != 0;
  const float t = mixed_target<kMix>(a, n, k);
  if constexpr ((kMask & kCutMixBit) != 0) {
    const float u = mixed_target<kMix>(a, clamp_index(a.cut_perm[n], a.batch), k);
    return t * a.area + u * (1.0f - a.area);
  } else {
    return t;
  }
}

/// The work of one thread of the target kernel: elements first, first + step, … of the [N, K] output.
template <unsigned kMask>
__host__ __device__ inline void target_thread(const TargetArgs& a, int64_t first, int64_t step) {
  const int64_t total = a.batch * a.classes;
  for (int64_t i = first; i < total; i += step) {
    const int64_t n = i / a.classes;
    a.out[i] = target_value<kMask>(a, n, i - n * a.classes);
  }
}

/// The target kernel: each thread runs target_thread over a grid-stride loop.
template <unsigned kMask>
__global__ void fused_target_kernel(const TargetArgs a) {
  target_thread<kMask>(a, static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x,
                       static_cast<int64_t>(gridDim.x) * blockDim.x);
}

/// Counts the values outside [lo, hi) of each check (blockIdx.y) and keeps one of them:
/// result[2·j] = count, result[2·j + 1] = an offending value. A template so that the header may be included by
/// several translation units.
template <int kUnused = 0>
__global__ void range_check_kernel(const __grid_constant__ RangeChecks checks, unsigned long long* result) {
  const RangeCheck& rc = checks.check[blockIdx.y];
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < rc.count; i += step) {
    const int64_t v = rc.values[i];
    if (v < rc.lo || v >= rc.hi) {
      atomicAdd(&result[2 * blockIdx.y], 1ull);
      atomicExch(&result[2 * blockIdx.y + 1], static_cast<unsigned long long>(v));
    }
  }
}

}  // namespace composer::kernels::cuda::detail

#endif  // __CUDACC__
