#include <composer/surgery.hpp>
#include <torch/torch.h>

#include <cstdio>

struct BlockImpl : composer::surgery::SurgicalModule {
  BlockImpl() { conv_ = register_slot("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(16, 32, 3).stride(2))); }
  at::Tensor forward(const at::Tensor& x) { return call(conv_, x); }
  Slot conv_;
};
TORCH_MODULE(Block);

int main() {
  Block block;
  // Every convolution becomes one without a bias; forward() now calls the new module.
  auto report = composer::surgery::replace_module_classes<torch::nn::Conv2dImpl>(
      *block, [](torch::nn::Conv2dImpl& conv, std::int64_t) {
        const auto& o = conv.options;
        return torch::nn::AnyModule(torch::nn::Conv2d(
            torch::nn::Conv2dOptions(o.in_channels(), o.out_channels(), o.kernel_size()).stride(o.stride()).bias(false)));
      });
  const auto out = block->forward(torch::randn({1, 16, 9, 9}));
  std::printf("%zu replaced at '%s'; output %lldx%lld, %zu parameter(s)\n", report.count(),
              report.replaced.at(0).path.c_str(), static_cast<long long>(out.size(2)),
              static_cast<long long>(out.size(3)), block->parameters().size());
  return report.count() == 1 && block->parameters().size() == 1 ? 0 : 1;
}
