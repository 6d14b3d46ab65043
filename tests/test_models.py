"""Every model behind the one interface: logits, named features, shapes, names."""

import itertools

import pytest
import torch
from torch import nn

from kdcore.models import MODELS, KDModel, ModelOutput, ResNet, build_model

# What each entry should be, written out independently of the builders.
MLP_WIDTHS = {
    "mlp-1200-dropout": (1200, 1200),
    "mlp-1200-paper": (1200, 1200),
    "mlp-1200": (1200, 1200),
    "mlp-800": (800, 800),
    "mlp-300": (300, 300),
    "mlp-100": (100, 100),
    "mlp-30": (30, 30),
}
RESNETS = {  # name -> (depth, width multiplier); He et al. 2016 §4.2: depth 6n+2
    "resnet8": (8, 1),
    "resnet14": (14, 1),
    "resnet20": (20, 1),
    "resnet32": (32, 1),
    "resnet56": (56, 1),
    "resnet8x4": (8, 4),
    "resnet32x4": (32, 4),
}


def test_the_table_is_what_the_tests_know():
    assert set(MODELS) == set(MLP_WIDTHS) | set(RESNETS) | {"cnn", "cnn-8"}


def expected_features(name: str, b: int, in_shape: tuple[int, int, int], k: int = 10) -> dict:
    _, h, w = in_shape
    if name in MLP_WIDTHS:
        w1, w2 = MLP_WIDTHS[name]
        return {"hidden1_pre": (b, w1), "hidden1": (b, w1), "hidden2_pre": (b, w2),
                "hidden2": (b, w2), "embedding": (b, w2)}  # fmt: skip
    if name in ("cnn", "cnn-8"):
        c = 32 if name == "cnn" else 8
        return {"conv1_pre": (b, c, h, w), "conv1": (b, c, h // 2, w // 2),
                "conv2_pre": (b, 2 * c, h // 2, w // 2), "conv2": (b, 2 * c, h // 4, w // 4),
                "embedding": (b, 128)}  # fmt: skip
    _, m = RESNETS[name]
    return {
        "stem": (b, 16 * m, h, w),
        "stage1_pre": (b, 16 * m, h, w),
        "stage1": (b, 16 * m, h, w),
        "stage2_pre": (b, 32 * m, h // 2, w // 2),
        "stage2": (b, 32 * m, h // 2, w // 2),
        "stage3_pre": (b, 64 * m, h // 4, w // 4),
        "stage3": (b, 64 * m, h // 4, w // 4),
        "cam": (b, k, h // 4, w // 4),
        "embedding": (b, 64 * m),
    }


def default_shape(name: str) -> tuple[int, int, int]:
    return (3, 32, 32) if name.startswith("resnet") else (1, 28, 28)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_gives_logits_and_named_features(name):
    in_shape = default_shape(name)
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, in_shape=in_shape).eval()
    assert isinstance(model, KDModel)
    x = torch.randn(3, *in_shape)
    with torch.no_grad():
        logits = model(x)
        out = model.forward_features(x)
    assert isinstance(out, ModelOutput)
    assert logits.shape == (3, 10) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    assert torch.equal(out.logits, logits)
    want = expected_features(name, 3, in_shape)
    assert list(out.features) == list(want)  # names, in forward order
    assert {k: tuple(v.shape) for k, v in out.features.items()} == want
    # The embedding is what the head reads: the logits are a linear map of it.
    torch.testing.assert_close(model.head(out.features["embedding"]), logits)
    if "cam" in out.features:  # the class maps: each one's mean is its logit less the bias
        torch.testing.assert_close(out.features["cam"].mean((2, 3)) + model.head.bias, logits)


@pytest.mark.parametrize("name", ["mlp-30", "cnn", "resnet8"])
def test_other_class_counts_and_input_shapes(name):
    in_shape = (3, 32, 32)
    model = build_model(name, num_classes=100, in_shape=in_shape).eval()
    out = model.forward_features(torch.randn(2, *in_shape))
    assert out.logits.shape == (2, 100)
    assert {k: tuple(v.shape) for k, v in out.features.items()} == expected_features(
        name, 2, in_shape, 100
    )


@pytest.mark.parametrize("name", ["mlp-30", "mlp-1200-dropout", "cnn", "resnet8", "resnet8x4"])
def test_every_parameter_receives_a_gradient(name):
    in_shape = default_shape(name)
    model = build_model(name, in_shape=in_shape).train()
    model(torch.randn(4, *in_shape)).logsumexp(1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


def mlp_params(dims: tuple[int, ...]) -> int:
    return sum(a * b + b for a, b in itertools.pairwise(dims))


@pytest.mark.parametrize("name", sorted(MLP_WIDTHS))
def test_mlp_parameter_counts(name):
    # e.g. Hinton's student 784-800-800-10: 784*800+800 + 800*800+800 + 800*10+10 = 1,276,810.
    want = mlp_params((784, *MLP_WIDTHS[name], 10))
    assert build_model(name).num_params() == want
    if name == "mlp-800":
        assert want == 1_276_810


@pytest.mark.parametrize("name", sorted(RESNETS))
def test_resnet_depth_counts_weighted_layers(name):
    """Depth 6n+2 = the 3x3 convolutions (stem + 2 per block) plus the final linear layer;
    1x1 projection shortcuts are not counted (He et al. 2016, §4.2)."""
    depth, m = RESNETS[name]
    model = build_model(name, in_shape=(3, 32, 32))
    convs3 = [
        mod for mod in model.modules() if isinstance(mod, nn.Conv2d) and mod.kernel_size == (3, 3)
    ]
    linears = [mod for mod in model.modules() if isinstance(mod, nn.Linear)]
    assert len(convs3) + len(linears) == depth
    assert model.head.in_features == 64 * m


def test_dropout_only_in_the_teacher_and_only_in_training():
    x = torch.randn(8, 1, 28, 28)
    teacher = build_model("mlp-1200-dropout").train()
    assert not torch.equal(teacher(x), teacher(x))  # dropout active
    teacher.eval()
    assert torch.equal(teacher(x), teacher(x))
    student = build_model("mlp-1200").train()
    assert torch.equal(student(x), student(x))


def test_a_resnet_stage_is_its_pre_activation_cut_at_zero():
    """The blocks run as their forward would: each stage, the ReLU of what its "_pre" holds,
    and the logits those of the plain forward."""
    torch.manual_seed(0)
    model = build_model("resnet8", 10, (1, 28, 28)).eval()
    x = torch.randn(2, 1, 28, 28)
    out = model.forward_features(x)
    for i in (1, 2, 3):
        assert torch.equal(out.features[f"stage{i}"], torch.relu(out.features[f"stage{i}_pre"]))
    h = model.stem(x)
    for stage in model.stages:
        h = stage(h)
    torch.testing.assert_close(out.features["stage3"], h)


@pytest.mark.parametrize(
    "name, widths",
    [("mlp-50", (50, 50)), ("mlp-7", (7, 7)), ("mlp-64-32", (64, 32)), ("mlp-9-8-7", (9, 8, 7))],
)
def test_mlp_names_with_any_widths(name, widths):
    model = build_model(name).eval()
    out = model.forward_features(torch.randn(2, 1, 28, 28))
    hidden = {k: tuple(v.shape) for k, v in out.features.items() if k.startswith("hidden")}
    assert hidden == {f"hidden{i + 1}{pre}": (2, w) for i, w in enumerate(widths)
                      for pre in ("_pre", "")}  # fmt: skip
    for i in range(len(widths)):  # after the ReLU (no dropout in eval): the same, cut at zero
        h, z = out.features[f"hidden{i + 1}"], out.features[f"hidden{i + 1}_pre"]
        assert torch.equal(h, torch.relu(z))
    assert out.features["embedding"].shape == (2, widths[-1])
    assert out.logits.shape == (2, 10)
    assert model.num_params() == mlp_params((784, *widths, 10))


@pytest.mark.parametrize(
    "name",
    ["resnet7", "resnet", "vgg16", "mlp-", "mlp-0", "mlp-x", "mlp--3", "mlp-10-", "MLP-30", ""],
)
def test_unknown_names_raise_value_error(name):
    with pytest.raises(ValueError, match="unknown model"):
        build_model(name)


def test_resnet_depth_must_be_6n_plus_2():
    with pytest.raises(ValueError, match="6n\\+2"):
        ResNet(depth=10)


def test_batch_norm_uses_running_statistics_in_eval():
    # In eval mode a ResNet's output for one image must not depend on the rest of the batch.
    model = build_model("resnet8", in_shape=(3, 32, 32))
    model.train()
    with torch.no_grad():
        model(torch.randn(16, 3, 32, 32) * 3 + 1)  # move the running statistics off their init
    model.eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[:1], model(x[:1]), rtol=1e-4, atol=1e-5)
