// An emulated accelerator for the CPU suite: tensors on the device `hip:0` hold ordinary host memory and every
// operator on them runs LibTorch's CPU kernel, but an operator that meets a tensor of this device together with
// a CPU tensor of one or more dimensions throws, as it would on a CUDA GPU:
//
//     Expected all tensors to be on the same device, but found at least two devices, hip:0 and cpu!
//
// So code that creates a tensor on the CPU and lets it meet the data on the accelerator (a permutation drawn
// without a device, a mask built with default options) fails in CI, where there is no GPU. The HIP device type
// is borrowed because neither Debian's CPU LibTorch nor PyPI's CUDA LibTorch registers anything for it, because
// LibTorch lets a module's parameters move between it and the CPU (`Module::to`) as between the CPU and CUDA, and
// because its copy kernel slot can be filled from outside.
//
// The rules mirror CUDA's: CPU tensors with zero dimensions (scalars) may meet device tensors; copies between the
// devices (`copy_`, `to`) and advanced indexing with CPU indices (`index`, `index_put_`) are allowed. Results of
// an operator on device tensors are device tensors, except those of a copy to the CPU.
//
// Include this header in exactly one translation unit of a test executable: it registers the device's kernels
// and device guard at static initialisation.
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <c10/core/CPUAllocator.h>
#include <torch/library.h>
#include <torch/version.h>
#include <ATen/native/Copy.h>
#include <ATen/native/TensorIterator.h>
#if TORCH_VERSION_MAJOR >= 2
#include <ATen/detail/HIPHooksInterface.h>
#endif

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace composer_test::emulated {

/// The emulated accelerator.
inline const c10::Device device{c10::DeviceType::HIP, 0};

namespace detail {

// A CPU tensor over the memory of an emulated-device tensor (same data pointer, sizes and strides); it keeps the
// device tensor's storage alive.
inline at::Tensor host_view(const at::Tensor& t) {
  if (!t.defined() || t.device().type() != c10::DeviceType::HIP) return t;
  c10::Storage storage = t.storage();
  void* base = storage.data_ptr().get();
  auto* keep = new c10::Storage(storage);
  c10::DataPtr data(base, keep, [](void* ctx) { delete static_cast<c10::Storage*>(ctx); }, c10::Device(c10::kCPU));
  // Resizable, so that an out= argument can grow (the device tensor then adopts the new memory, see run_on_host).
  c10::Storage host(c10::Storage::use_byte_size_t(), storage.nbytes(), std::move(data), c10::GetCPUAllocator(), true);
  at::Tensor out = at::detail::make_tensor<c10::TensorImpl>(std::move(host), c10::DispatchKeySet(c10::DispatchKey::CPU),
                                                            t.dtype());
  out.unsafeGetTensorImpl()->set_sizes_and_strides(t.sizes(), t.strides(), t.storage_offset());
  return out;
}

// A CPU storage over the memory of an emulated-device storage.
inline c10::Storage host_storage(const c10::Storage& storage) {
  if (storage.device().type() != c10::DeviceType::HIP) return storage;
  auto* keep = new c10::Storage(storage);
  c10::DataPtr data(storage.data_ptr().get(), keep, [](void* ctx) { delete static_cast<c10::Storage*>(ctx); },
                    c10::Device(c10::kCPU));
  return c10::Storage(c10::Storage::use_byte_size_t(), storage.nbytes(), std::move(data), nullptr, false);
}

// An emulated-device tensor over the memory of a CPU tensor (the inverse of host_view).
inline at::Tensor device_view(const at::Tensor& t) {
  if (!t.defined() || !t.device().is_cpu()) return t;
  c10::Storage storage = t.storage();
  void* base = storage.data_ptr().get();
  auto* keep = new c10::Storage(storage);
  c10::DataPtr data(base, keep, [](void* ctx) { delete static_cast<c10::Storage*>(ctx); }, device);
  c10::Storage moved(c10::Storage::use_byte_size_t(), storage.nbytes(), std::move(data), nullptr, false);
  at::Tensor out = at::detail::make_tensor<c10::TensorImpl>(std::move(moved), c10::DispatchKeySet(c10::DispatchKey::HIP),
                                                            t.dtype());
  out.unsafeGetTensorImpl()->set_sizes_and_strides(t.sizes(), t.strides(), t.storage_offset());
  if (t.is_conj()) out._set_conj(true);
  if (t.is_neg()) out._set_neg(true);
  return out;
}

inline bool allows_mixed_devices(std::string_view op) {
  return op == "aten::copy_" || op == "aten::_copy_from" || op == "aten::_copy_from_and_resize" ||
         op == "aten::_to_copy" || op == "aten::to" || op == "aten::index" || op == "aten::index_put_" ||
         op == "aten::_index_put_impl_" || op == "aten::_local_scalar_dense" || op == "aten::set_";
}

// Whether a generic list holds tensors (an optional-tensor list such as index's indices).
inline bool holds_tensors(const c10::IValue& list) {
  for (const c10::IValue& e : list.toListRef())
    if (e.isTensor()) return true;
  return false;
}

// The boxed kernel of every operator on the emulated device.
inline void run_on_host(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  const auto& schema = op.schema();
  const std::size_t num_args = schema.arguments().size();
  const std::size_t first = stack->size() - num_args;
  bool on_device = false;
  bool explicit_cpu = false;
  std::optional<std::string> host_operand;
  auto note = [&](const at::Tensor& t) {
    if (!t.defined()) return;
    if (t.device().type() == c10::DeviceType::HIP) on_device = true;
    else if (t.device().is_cpu() && t.dim() > 0) host_operand = "a CPU tensor of shape " + c10::str(t.sizes());
  };
  for (std::size_t i = first; i < stack->size(); ++i) {
    const c10::IValue& v = (*stack)[i];
    if (v.isTensor()) {
      note(v.toTensor());
    } else if (v.isTensorList()) {
      for (const at::Tensor& t : v.toTensorList().vec()) note(t);
    } else if (v.isList()) {
      for (const c10::IValue& e : v.toListRef())
        if (e.isTensor()) note(e.toTensor());
    } else if (v.isDevice()) {
      if (v.toDevice().type() == c10::DeviceType::HIP) on_device = true;
      else if (v.toDevice().is_cpu()) explicit_cpu = true;
    }
  }
  const std::string name = schema.operator_name().name;
  if (name == "aten::_copy_from" || name == "aten::_copy_from_and_resize") {
    // LibTorch 1.x sends copies between the CPU and a device it has no copy kernel for here.
    const at::Tensor src = (*stack)[first].toTensor();
    const at::Tensor dst = (*stack)[first + 1].toTensor();
    TORCH_CHECK(dst.sizes() == src.sizes() || name == "aten::_copy_from", "the emulated accelerator cannot resize in ",
                name);
    host_view(dst).copy_(host_view(src));
    torch::jit::drop(*stack, num_args);
    stack->emplace_back(dst);
    return;
  }
  // A device tensor pointed at a device storage (as serialisation does before copying a tensor to the CPU).
  if (name == "aten::set_" && (*stack)[first + 1].isStorage()) {
    at::Tensor self = (*stack)[first].toTensor();
    const c10::Storage storage = (*stack)[first + 1].toStorage();
    c10::TensorImpl* impl = self.unsafeGetTensorImpl();
    if (num_args == 5) {
      impl->set_storage_keep_dtype(storage);
      const std::vector<int64_t> size = (*stack)[first + 3].toIntVector();
      const std::vector<int64_t> stride = (*stack)[first + 4].toIntVector();
      impl->set_sizes_and_strides(size, stride, (*stack)[first + 2].toInt());
    } else {
      impl->set_storage_keep_dtype(storage);
      const int64_t count = static_cast<int64_t>(storage.nbytes() / self.element_size());
      const std::vector<int64_t> size{count};
      const std::vector<int64_t> stride{1};
      impl->set_sizes_and_strides(size, stride, int64_t{0});
    }
    torch::jit::drop(*stack, num_args);
    stack->emplace_back(self);
    return;
  }
  if (on_device && host_operand && !allows_mixed_devices(name)) {
    TORCH_CHECK(false, "Expected all tensors to be on the same device, but found at least two devices, hip:0 and cpu! (",
                name, " got ", *host_operand, " with tensors on the emulated accelerator)");
  }
  // Device tensors written to (out= and in-place arguments), before they are replaced by host views.
  std::vector<std::pair<std::size_t, at::Tensor>> written_devices;
  for (std::size_t i = 0; i < num_args; ++i) {
    const auto& alias = schema.arguments()[i].alias_info();
    const c10::IValue& v = (*stack)[first + i];
    if (alias && alias->isWrite() && v.isTensor() && v.toTensor().defined() &&
        v.toTensor().device().type() == c10::DeviceType::HIP)
      written_devices.emplace_back(first + i, v.toTensor());
  }
  // The same call with CPU tensors and CPU devices.
  for (std::size_t i = first; i < stack->size(); ++i) {
    c10::IValue& v = (*stack)[i];
    if (v.isTensor()) {
      v = host_view(v.toTensor());
    } else if (v.isTensorList()) {
      std::vector<at::Tensor> list = v.toTensorList().vec();
      for (auto& t : list) t = host_view(t);
      v = c10::IValue(c10::List<at::Tensor>(list));
    } else if (v.isList() && holds_tensors(v)) {
      c10::List<c10::optional<at::Tensor>> list;
      for (const c10::IValue& e : v.toListRef())
        list.push_back(e.isTensor() ? c10::optional<at::Tensor>(host_view(e.toTensor())) : c10::nullopt);
      v = c10::IValue(list);
    } else if (v.isDevice() && v.toDevice().type() == c10::DeviceType::HIP) {
      v = c10::IValue(c10::Device(c10::kCPU));
    } else if (v.isStorage()) {
      v = c10::IValue(host_storage(v.toStorage()));
    }
  }
  // Convolutions on a device LibTorch does not know go to the "overrideable" entries: run the CPU ones instead.
  if (name == "aten::convolution_overrideable") {
    auto args = torch::jit::last(*stack, num_args);
    at::Tensor out = at::convolution(args[0].toTensor(), args[1].toTensor(), args[2].toOptional<at::Tensor>(),
                                     args[3].toIntVector(), args[4].toIntVector(), args[5].toIntVector(), args[6].toBool(),
                                     args[7].toIntVector(), args[8].toInt());
    torch::jit::drop(*stack, num_args);
    stack->emplace_back(device_view(out));
    return;
  }
  if (name == "aten::convolution_backward_overrideable") {
    auto args = torch::jit::last(*stack, num_args);
    const at::Tensor weight = args[2].toTensor();
    const auto mask = args[9].to<std::array<bool, 3>>();
    const std::vector<int64_t> bias_sizes{weight.size(args[6].toBool() ? 1 : 0) * (args[6].toBool() ? args[8].toInt() : 1)};
    auto grads = at::convolution_backward(args[0].toTensor(), args[1].toTensor(), weight, bias_sizes,
                                          args[3].toIntVector(), args[4].toIntVector(), args[5].toIntVector(),
                                          args[6].toBool(), args[7].toIntVector(), args[8].toInt(), mask);
    torch::jit::drop(*stack, num_args);
    stack->emplace_back(device_view(std::get<0>(grads)));
    stack->emplace_back(device_view(std::get<1>(grads)));
    stack->emplace_back(device_view(std::get<2>(grads)));
    return;
  }
  std::vector<at::Tensor> written_hosts;
  for (const auto& [index, device_tensor] : written_devices) written_hosts.push_back((*stack)[index].toTensor());
  op.callBoxed(stack);
  // An out= argument the CPU kernel resized or reallocated: the device tensor takes its new memory and shape.
  for (std::size_t k = 0; k < written_devices.size(); ++k) {
    const at::Tensor& host = written_hosts[k];
    const at::Tensor& device_tensor = written_devices[k].second;
    if (host.storage().data_ptr().get() == device_tensor.storage().data_ptr().get() &&
        host.sizes() == device_tensor.sizes() && host.strides() == device_tensor.strides() &&
        host.storage_offset() == device_tensor.storage_offset())
      continue;
    const at::Tensor moved = device_view(host);
    c10::TensorImpl* impl = device_tensor.unsafeGetTensorImpl();
    impl->set_storage_keep_dtype(moved.storage());
    impl->set_sizes_and_strides(host.sizes(), host.strides(), host.storage_offset());
  }
  if (!on_device || explicit_cpu) return;
  const std::size_t num_returns = schema.returns().size();
  for (std::size_t i = stack->size() - num_returns; i < stack->size(); ++i) {
    c10::IValue& v = (*stack)[i];
    if (v.isTensor()) {
      v = device_view(v.toTensor());
    } else if (v.isTensorList()) {
      std::vector<at::Tensor> list = v.toTensorList().vec();
      for (auto& t : list) t = device_view(t);
      v = c10::IValue(c10::List<at::Tensor>(list));
    }
  }
}

// LibTorch copies to and from the device through its copy kernel table: the host copy, as for any operator.
inline void copy_kernel(at::TensorIterator& iter, bool /*non_blocking*/) {
  host_view(iter.tensor(0)).copy_(host_view(iter.tensor(1)));
}
inline const bool copy_kernel_registered = (at::native::copy_stub.set_hip_dispatch_ptr(&copy_kernel), true);

// One device, one stream; events are no-ops (every kernel runs synchronously on the host).
struct GuardImpl final : public c10::impl::DeviceGuardImplInterface {
  c10::DeviceType type() const override { return c10::DeviceType::HIP; }
  c10::Device exchangeDevice(c10::Device) const override { return device; }
  c10::Device getDevice() const override { return device; }
  void setDevice(c10::Device) const override {}
  void uncheckedSetDevice(c10::Device) const noexcept override {}
  c10::Stream getStream(c10::Device d) const noexcept override { return c10::Stream(c10::Stream::DEFAULT, d); }
  c10::Stream getDefaultStream(c10::Device d) const override { return c10::Stream(c10::Stream::DEFAULT, d); }
  c10::Stream exchangeStream(c10::Stream s) const noexcept override { return s; }
  c10::DeviceIndex deviceCount() const noexcept override { return 1; }
  void record(void**, const c10::Stream&, const c10::DeviceIndex, const c10::EventFlag) const override {}
  void block(void*, const c10::Stream&) const override {}
  bool queryEvent(void*) const override { return true; }
  void destroyEvent(void*, const c10::DeviceIndex) const noexcept override {}
  bool queryStream(const c10::Stream&) const override { return true; }
  void synchronizeStream(const c10::Stream&) const override {}
};

#if TORCH_VERSION_MAJOR >= 2
// LibTorch 2.x's autograd engine asks which accelerator the process has before it runs a backward pass over
// device tensors: these hooks answer "the emulated one" (one device, no generator or pinned memory of its own).
struct HIPHooks final : at::HIPHooksInterface {
  explicit HIPHooks(at::HIPHooksArgs) {}
  void init() const override {}
  bool isBuilt() const override { return true; }
  bool isAvailable() const override { return true; }
  c10::DeviceIndex deviceCount() const override { return 1; }
  void setCurrentDevice(c10::DeviceIndex) const override {}
  c10::DeviceIndex getCurrentDevice() const override { return 0; }
  c10::DeviceIndex exchangeDevice(c10::DeviceIndex) const override { return 0; }
  c10::DeviceIndex maybeExchangeDevice(c10::DeviceIndex) const override { return 0; }
  bool hasHIP() const override { return true; }
  c10::DeviceIndex current_device() const override { return 0; }
  int getNumGPUs() const override { return 1; }
  bool hasPrimaryContext(c10::DeviceIndex) const override { return true; }
  const at::Generator& getDefaultGenerator(c10::DeviceIndex) const override {
    return at::detail::getDefaultCPUGenerator();
  }
  bool isPinnedPtr(const void*) const override { return false; }
  c10::Allocator* getPinnedMemoryAllocator() const override { return c10::GetCPUAllocator(); }
};
inline const at::RegistererHIPHooksRegistry hip_hooks_registered("HIPHooks", at::HIPHooksRegistry(),
                                                                at::RegistererHIPHooksRegistry::DefaultCreator<HIPHooks>);
#endif

}  // namespace detail

/// Moves a CPU tensor to the emulated accelerator (a copy, as `to(device)` makes).
inline at::Tensor to_device(const at::Tensor& t) { return t.to(device); }

}  // namespace composer_test::emulated

C10_REGISTER_GUARD_IMPL(HIP, composer_test::emulated::detail::GuardImpl);

TORCH_LIBRARY_IMPL(_, HIP, m) {
  m.fallback(torch::CppFunction::makeFromBoxedFunction<&composer_test::emulated::detail::run_on_host>());
}

// The "overrideable" convolutions have a default kernel for every backend (one that throws): override it.
TORCH_LIBRARY_IMPL(aten, HIP, m) {
  m.impl("convolution_overrideable",
         torch::CppFunction::makeFromBoxedFunction<&composer_test::emulated::detail::run_on_host>());
  m.impl("convolution_backward_overrideable",
         torch::CppFunction::makeFromBoxedFunction<&composer_test::emulated::detail::run_on_host>());
}
