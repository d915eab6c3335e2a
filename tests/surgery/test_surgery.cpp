// Model surgery: slots, finding, counting and replacing modules, and the optimizer fix-up.
#include <torch/torch.h>

#include <composer/models/resnet.hpp>
#include <composer/surgery.hpp>

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace {

using composer::surgery::count_module_instances;
using composer::surgery::find_modules;
using composer::surgery::replace_module_classes;
using composer::surgery::SurgicalModule;
using composer::surgery::update_params_in_optimizer;

// linear -> relu -> linear, both linears replaceable.
struct TwoLayerImpl : SurgicalModule {
  TwoLayerImpl() {
    first_ = register_slot("first", torch::nn::Linear(4, 3));
    act_ = register_slot("act", torch::nn::ReLU());
    second_ = register_slot("second", torch::nn::Linear(3, 2));
  }
  at::Tensor forward(const at::Tensor& x) { return call(second_, call(act_, call(first_, x))); }
  at::Tensor hidden(const at::Tensor& x) { return call(act_, call(first_, x)); }
  Slot first_, act_, second_;
};
TORCH_MODULE(TwoLayer);

// The same module object held in two slots.
struct SharedImpl : SurgicalModule {
  explicit SharedImpl(torch::nn::Linear shared) {
    a_ = register_slot("a", shared);
    b_ = register_slot("b", shared);
  }
  at::Tensor forward(const at::Tensor& x) { return call(b_, call(a_, x)); }
  Slot a_, b_;
};
TORCH_MODULE(Shared);

// A plain LibTorch parent (no slots): its children cannot be swapped.
struct PlainImpl : SurgicalModule {
  PlainImpl() {
    ok_ = register_slot("ok", torch::nn::Linear(2, 2));
    seq = register_module("seq", torch::nn::Sequential(torch::nn::Linear(2, 2)));
  }
  at::Tensor forward(const at::Tensor& x) { return seq->forward(call(ok_, x)); }
  Slot ok_;
  torch::nn::Sequential seq{nullptr};
};
TORCH_MODULE(Plain);

// Two linear layers in place of one.
struct LinearPairImpl : SurgicalModule {
  LinearPairImpl(int64_t in, int64_t hidden, int64_t out) {
    first_ = register_slot("0", torch::nn::Linear(in, hidden));
    second_ = register_slot("1", torch::nn::Linear(hidden, out));
  }
  at::Tensor forward(const at::Tensor& x) { return call(second_, call(first_, x)); }
  Slot first_, second_;
};
TORCH_MODULE(LinearPair);

torch::nn::AnyModule fresh_linear(torch::nn::LinearImpl& old, int64_t) {
  return torch::nn::AnyModule(torch::nn::Linear(old.options.in_features(), old.options.out_features()));
}

bool holds(const std::vector<at::Tensor>& list, const at::Tensor& t) {
  for (const auto& x : list)
    if (x.unsafeGetTensorImpl() == t.unsafeGetTensorImpl()) return true;
  return false;
}

}  // namespace

TEST_CASE("a slot runs its current module, and replace_slot swaps both the registry and the computation") {
  torch::manual_seed(0);
  TwoLayer net;
  const auto x = torch::randn({5, 4});
  CHECK(net->has_slot("first"));
  CHECK_FALSE(net->has_slot("third"));
  CHECK(net->slot_names() == std::vector<std::string>{"first", "act", "second"});

  torch::nn::Linear zero(3, 2);
  torch::NoGradGuard no_grad;
  zero->weight.zero_();
  zero->bias.fill_(7.0);
  net->replace_slot("second", torch::nn::AnyModule(zero));
  // The forward pass now runs the new module: every output is its bias.
  CHECK(torch::allclose(net->forward(x), torch::full({5, 2}, 7.0)));
  // The registry holds it too: parameters() and named_parameters() see the new tensors.
  const auto named = net->named_parameters();
  CHECK(named["second.weight"].unsafeGetTensorImpl() == zero->weight.unsafeGetTensorImpl());
  CHECK(net->slot_module("second").get() == zero.ptr().get());
}

TEST_CASE("slot misuse is reported with the slot's name") {
  TwoLayer net;
  CHECK_THROWS_WITH_AS(net->replace_slot("missing", torch::nn::AnyModule(torch::nn::ReLU())),
                       doctest::Contains("no slot named 'missing'"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(net->replace_slot("first", torch::nn::AnyModule()), doctest::Contains("empty module"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(net->slot_module("nope"), doctest::Contains("'nope'"), std::invalid_argument);
  struct TwiceImpl : SurgicalModule {
    TwiceImpl() {
      register_slot("x", torch::nn::ReLU());
      register_slot("x", torch::nn::ReLU());
    }
  };
  CHECK_THROWS_WITH_AS(TwiceImpl{}, doctest::Contains("slot 'x' is registered twice"), std::invalid_argument);
}

TEST_CASE("find_modules and count_module_instances on ResNet-20 match the architecture") {
  auto net = composer::models::resnet20({.in_channels = 1});
  // Stem conv + 9 blocks x 2 convs + 2 projection shortcuts (entering stages 2 and 3) = 21 convolutions, and
  // as many batch norms; one linear classifier.
  CHECK(count_module_instances<torch::nn::Conv2dImpl>(*net) == 21);
  CHECK(count_module_instances<torch::nn::BatchNorm2dImpl>(*net) == 21);
  CHECK(count_module_instances<torch::nn::LinearImpl>(*net) == 1);
  CHECK(count_module_instances<composer::models::BasicBlockImpl>(*net) == 9);
  CHECK(count_module_instances<torch::nn::Conv2dImpl, torch::nn::BatchNorm2dImpl>(*net) == 42);
  CHECK(count_module_instances<torch::nn::Dropout2dImpl>(*net) == 0);

  std::vector<std::string> strided;
  for (const auto& found : find_modules<torch::nn::Conv2dImpl>(*net))
    if (found.module->options.stride()->at(0) > 1) strided.push_back(found.path);
  CHECK(strided == std::vector<std::string>{"layer2.0.conv1", "layer2.0.shortcut.conv", "layer3.0.conv1",
                                            "layer3.0.shortcut.conv"});
  // Paths agree with LibTorch's own naming.
  const auto named = net->named_modules("", /*include_self=*/false);
  for (const auto& found : find_modules<torch::nn::BatchNorm2dImpl>(*net))
    CHECK(named[found.path].get() == found.module.get());
}

TEST_CASE("replace_module_classes replaces exactly the modules the factory accepts, with pre-order indices") {
  torch::manual_seed(1);
  auto net = composer::models::resnet20({.in_channels = 1, .num_classes = 4});
  net->eval();
  const auto x = torch::randn({2, 1, 12, 12});
  const auto before_paths = [&] {
    std::vector<std::string> p;
    for (const auto& f : find_modules<torch::nn::BatchNorm2dImpl>(*net)) p.push_back(f.path);
    return p;
  }();

  std::vector<int64_t> seen;
  // Replace every other batch norm (even indices) by an identity.
  auto report = replace_module_classes<torch::nn::BatchNorm2dImpl>(*net, [&](torch::nn::BatchNorm2dImpl&, int64_t i) {
    seen.push_back(i);
    return i % 2 == 0 ? torch::nn::AnyModule(torch::nn::Identity()) : torch::nn::AnyModule();
  });
  std::vector<int64_t> expected_indices(21);
  for (int64_t i = 0; i < 21; ++i) expected_indices[static_cast<std::size_t>(i)] = i;
  CHECK(seen == expected_indices);
  REQUIRE(report.count() == 11);  // indices 0, 2, ..., 20
  for (std::size_t k = 0; k < report.count(); ++k) CHECK(report.replaced[k].path == before_paths[2 * k]);
  CHECK(count_module_instances<torch::nn::BatchNorm2dImpl>(*net) == 10);
  CHECK(count_module_instances<torch::nn::IdentityImpl>(*net) == 11);
  // The replacements took the model's training mode, and the network still runs.
  for (const auto& r : report.replaced) CHECK_FALSE(r.replacement->is_training());
  CHECK(net->forward(x).sizes() == at::IntArrayRef{2, 4});
  // 11 batch norms lost their weight and bias: 65 - 22 parameters remain.
  CHECK(net->parameters().size() == 65 - 22);
}

TEST_CASE("replacing the classifier leaves the features bit for bit unchanged") {
  torch::manual_seed(2);
  auto net = composer::models::resnet20({.in_channels = 1, .num_classes = 3});
  net->eval();
  const auto x = torch::randn({3, 1, 10, 10});
  const auto features = net->features(x);
  auto report = replace_module_classes<torch::nn::LinearImpl>(*net, fresh_linear);
  CHECK(report.count() == 1);
  CHECK(torch::equal(net->features(x), features));
  const auto fc = std::dynamic_pointer_cast<torch::nn::LinearImpl>(report.replaced[0].replacement);
  REQUIRE(fc);
  CHECK(torch::allclose(net->forward(x), torch::nn::functional::linear(features, fc->weight, fc->bias)));
}

TEST_CASE("a module held in two slots is replaced once, in both") {
  torch::nn::Linear shared(3, 3);
  Shared net(shared);
  CHECK(count_module_instances<torch::nn::LinearImpl>(*net) == 1);
  auto report = replace_module_classes<torch::nn::LinearImpl>(*net, fresh_linear);
  CHECK(report.count() == 1);
  CHECK(net->slot_module("a").get() == net->slot_module("b").get());
  CHECK(net->slot_module("a").get() != shared.ptr().get());
}

TEST_CASE("a parent without slots stops the surgery before anything changes") {
  Plain net;
  const auto ok_before = net->slot_module("ok");
  CHECK_THROWS_WITH_AS(replace_module_classes<torch::nn::LinearImpl>(*net, fresh_linear),
                       doctest::Contains("cannot replace 'seq.0'"), std::invalid_argument);
  // The slot that could have been replaced (visited first) was not.
  CHECK(net->slot_module("ok").get() == ok_before.get());
}

TEST_CASE("the optimizer trains the new module's parameters and forgets the old module's state") {
  torch::manual_seed(3);
  TwoLayer net;
  auto sgd = std::make_shared<torch::optim::SGD>(net->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  const auto x = torch::randn({8, 4});
  net->forward(x).sum().backward();
  sgd->step();
  REQUIRE(sgd->state().size() == 4);  // momentum buffers of both layers' weight and bias

  const auto old_first = net->slot_module("first")->parameters();
  auto report = replace_module_classes<torch::nn::LinearImpl>(
      *net, [](torch::nn::LinearImpl& old, int64_t i) {
        return i == 0 ? fresh_linear(old, i) : torch::nn::AnyModule();
      },
      {sgd});
  REQUIRE(report.count() == 1);
  const auto& params = sgd->param_groups()[0].params();
  const auto new_first = net->slot_module("first")->parameters();
  CHECK(params.size() == 4);
  for (const auto& p : old_first) CHECK_FALSE(holds(params, p));
  for (const auto& p : new_first) CHECK(holds(params, p));
  // New parameters go last, in the new module's order (weight, bias).
  CHECK(params[2].unsafeGetTensorImpl() == new_first[0].unsafeGetTensorImpl());
  CHECK(params[3].unsafeGetTensorImpl() == new_first[1].unsafeGetTensorImpl());
  CHECK(sgd->state().size() == 2);  // the replaced layer's momentum is gone

  // A step now moves the new layer.
  const auto w = new_first[0].detach().clone();
  sgd->zero_grad();
  net->forward(x).sum().backward();
  sgd->step();
  CHECK_FALSE(torch::equal(w, new_first[0]));
}

TEST_CASE("update_params_in_optimizer keeps the parameter group of the removed parameters") {
  auto a = torch::randn({2}, torch::requires_grad());
  auto b = torch::randn({2}, torch::requires_grad());
  auto c = torch::randn({2}, torch::requires_grad());
  auto d = torch::randn({2}, torch::requires_grad());
  auto fresh = torch::randn({2}, torch::requires_grad());
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<at::Tensor>{a, b}, std::make_unique<torch::optim::SGDOptions>(0.1));
  groups.emplace_back(std::vector<at::Tensor>{c, d}, std::make_unique<torch::optim::SGDOptions>(0.01));
  auto sgd = std::make_shared<torch::optim::SGD>(groups, torch::optim::SGDOptions(0.1));

  SUBCASE("into the group that held them") {
    update_params_in_optimizer({c}, {fresh}, {sgd});
    CHECK(sgd->param_groups()[0].params().size() == 2);
    const auto& g1 = sgd->param_groups()[1].params();
    REQUIRE(g1.size() == 2);
    CHECK(g1[0].unsafeGetTensorImpl() == d.unsafeGetTensorImpl());
    CHECK(g1[1].unsafeGetTensorImpl() == fresh.unsafeGetTensorImpl());
  }
  SUBCASE("parameters kept by the new module stay where they are") {
    update_params_in_optimizer({a, b}, {b, fresh}, {sgd});
    const auto& g0 = sgd->param_groups()[0].params();
    REQUIRE(g0.size() == 2);
    CHECK(g0[0].unsafeGetTensorImpl() == b.unsafeGetTensorImpl());
    CHECK(g0[1].unsafeGetTensorImpl() == fresh.unsafeGetTensorImpl());
  }
  SUBCASE("spread over two groups with parameters to add is ambiguous") {
    CHECK_THROWS_WITH_AS(update_params_in_optimizer({a, c}, {fresh}, {sgd}),
                         doctest::Contains("several optimizer parameter groups"), std::invalid_argument);
    CHECK(sgd->param_groups()[0].params().size() == 2);  // nothing changed
    CHECK(sgd->param_groups()[1].params().size() == 2);
  }
  SUBCASE("spread over two groups with nothing to add just removes") {
    update_params_in_optimizer({a, c}, {}, {sgd});
    CHECK(sgd->param_groups()[0].params().size() == 1);
    CHECK(sgd->param_groups()[1].params().size() == 1);
  }
  SUBCASE("new parameters with no removed ones and two groups is ambiguous") {
    CHECK_THROWS_WITH_AS(update_params_in_optimizer({}, {fresh}, {sgd}), doctest::Contains("unclear which"),
                         std::invalid_argument);
  }
}

TEST_CASE("update_params_in_optimizer finds the optimizer that holds the removed parameters") {
  auto a = torch::randn({2}, torch::requires_grad());
  auto b = torch::randn({2}, torch::requires_grad());
  auto fresh = torch::randn({2}, torch::requires_grad());
  auto first = std::make_shared<torch::optim::SGD>(std::vector<at::Tensor>{a}, torch::optim::SGDOptions(0.1));
  auto second = std::make_shared<torch::optim::Adam>(std::vector<at::Tensor>{b}, torch::optim::AdamOptions(0.1));
  update_params_in_optimizer({b}, {fresh}, {first, second});
  CHECK(first->param_groups()[0].params().size() == 1);
  REQUIRE(second->param_groups()[0].params().size() == 1);
  CHECK(second->param_groups()[0].params()[0].unsafeGetTensorImpl() == fresh.unsafeGetTensorImpl());
  // With one optimizer of one group, parameters of a module that had none (a pool becoming a blur pool with
  // weights) go to that group.
  auto lone = std::make_shared<torch::optim::SGD>(std::vector<at::Tensor>{a}, torch::optim::SGDOptions(0.1));
  update_params_in_optimizer({}, {fresh}, {lone});
  CHECK(lone->param_groups()[0].params().size() == 2);
}

TEST_CASE("a model changed by surgery round-trips through serialization under its new names") {
  torch::manual_seed(4);
  auto net = composer::models::resnet20({.in_channels = 1, .num_classes = 2});
  replace_module_classes<torch::nn::LinearImpl>(*net, [](torch::nn::LinearImpl& old, int64_t) {
    return torch::nn::AnyModule(LinearPair(old.options.in_features(), 5, old.options.out_features()));
  });
  const auto names = net->named_parameters().keys();
  CHECK(std::find(names.begin(), names.end(), "fc.0.weight") != names.end());
  CHECK(std::find(names.begin(), names.end(), "fc.weight") == names.end());

  std::stringstream stream;
  {
    torch::serialize::OutputArchive archive;
    net->save(archive);
    archive.save_to(stream);
  }
  auto copy = composer::models::resnet20({.in_channels = 1, .num_classes = 2});
  replace_module_classes<torch::nn::LinearImpl>(*copy, [](torch::nn::LinearImpl& old, int64_t) {
    return torch::nn::AnyModule(LinearPair(old.options.in_features(), 5, old.options.out_features()));
  });
  torch::serialize::InputArchive archive;
  archive.load_from(stream);
  copy->load(archive);
  net->eval();
  copy->eval();
  const auto x = torch::randn({2, 1, 8, 8});
  CHECK(torch::equal(net->forward(x), copy->forward(x)));
}
