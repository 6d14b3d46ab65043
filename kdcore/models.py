"""Models, all behind one interface.

Every model is a :class:`KDModel`: ``model(x)`` returns the logits ``(B, K)``, and
``model.forward_features(x)`` returns :class:`ModelOutput` with the same logits plus the named
intermediate features that feature- and relation-based distillation read (FitNets hints, attention
maps, RKD distances). No flag changes a return type.

Architectures:
- :class:`MLP` -- Hinton et al. (2015, §3) MNIST nets: teacher 784-1200-1200-10 with dropout,
  student 784-800-800-10 without; widths down to 30 units for the small-student experiments.
- :class:`SmallCNN` -- two conv blocks and a linear head, a fast MNIST teacher.
- :class:`ResNet` -- the CIFAR ResNet family of He et al. (2016, §4.2): depth 6n+2, three stages
  of n basic blocks, widths (16, 32, 64) times a multiplier (resnet8/14/20/32/56).
- :class:`kdcore.vit.TinyViT` -- a tiny vision transformer with a class token and a DeiT
  distillation token (``vit-tiny``; ``vit-tiny-cls`` without it), listed in
  :data:`kdcore.vit.VIT_MODELS` and built by :func:`build_model` like the others.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ModelOutput:
    logits: torch.Tensor  # (B, K)
    features: dict[str, torch.Tensor]  # name -> (B, ...) in forward order; "embedding" is (B, D)


def class_activation_maps(feat: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    r"""The class activation maps (Zhou et al. 2016) of a linear head's weights (K, C) read at
    every position of a map (B, C, H, W): :math:`M_k(h, w) = w_k^\top F(h, w)`, (B, K, H, W).
    Each map's mean is the head applied to the pooled map less its bias: the logit up to a
    constant per class."""
    return F.conv2d(feat, weight[:, :, None, None])


class KDModel(nn.Module):
    """Base class: subclasses implement ``forward_features``; ``forward`` returns the logits."""

    def forward_features(self, x: torch.Tensor) -> ModelOutput:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x).logits

    def classifier(self) -> nn.Module | None:
        """The last layer, which maps the ``"embedding"`` feature to the logits (its ``head``), or
        None where the logits are not that layer's output alone."""
        head = getattr(self, "head", None)
        return head if isinstance(head, nn.Module) else None

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


class MLP(KDModel):
    """Fully connected ReLU net on flattened images. Its features: each hidden layer before its
    ReLU (``hidden<i>_pre``, what activation-boundary transfer reads) and after it
    (``hidden<i>``), and the last of those again as ``embedding``.

    Hinton et al. (2015, §3) regularised the teacher with dropout (Srivastava et al. 2014 used 20%
    on the inputs and 50% on hidden units for MNIST). Those rates need thousands of epochs; the
    teacher here trains for tens, so it uses 30% on hidden units only (see ``MODELS``).
    """

    def __init__(
        self,
        in_dim: int = 784,
        hidden: tuple[int, ...] = (1200, 1200),
        num_classes: int = 10,
        dropout: float = 0.0,
        input_dropout: float = 0.0,
    ):
        super().__init__()
        self.hidden = tuple(hidden)
        self.input_dropout = nn.Dropout(input_dropout)
        dims = (in_dim, *self.hidden)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(dims[-1], num_classes)

    def forward_features(self, x: torch.Tensor) -> ModelOutput:
        h = self.input_dropout(x.flatten(1))  # (B, 784)
        feats: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.layers):
            z = layer(h)  # (B, H_i), before the ReLU: its sign is whether each unit fires
            feats[f"hidden{i + 1}_pre"] = z
            h = self.dropout(F.relu(z))  # (B, H_i)
            feats[f"hidden{i + 1}"] = h
        feats["embedding"] = h
        return ModelOutput(self.head(h), feats)


class SmallCNN(KDModel):
    """conv(32)-pool-conv(64)-pool-fc(128)-fc(K). About 0.4M parameters on 28x28 inputs. Its
    features: each convolution's map before its ReLU and pooling (``conv<i>_pre``, where OFD
    and AB read a layer) and after both (``conv<i>``), and the fc layer as ``embedding``."""

    def __init__(
        self, in_channels: int = 1, num_classes: int = 10, width: int = 32, image: int = 28
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.fc = nn.Linear(2 * width * (image // 4) ** 2, 128)
        self.head = nn.Linear(128, num_classes)

    def forward_features(self, x: torch.Tensor) -> ModelOutput:
        z1 = self.conv1(x)  # (B, w, H, W), before the ReLU
        c1 = F.max_pool2d(F.relu(z1), 2)  # (B, w, H/2, W/2)
        z2 = self.conv2(c1)  # (B, 2w, H/2, W/2)
        c2 = F.max_pool2d(F.relu(z2), 2)  # (B, 2w, H/4, W/4)
        emb = F.relu(self.fc(c2.flatten(1)))  # (B, 128)
        feats = {"conv1_pre": z1, "conv1": c1, "conv2_pre": z2, "conv2": c2, "embedding": emb}
        return ModelOutput(self.head(emb), feats)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def preact(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output before its last ReLU: the residual sum."""
        out = F.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out)) + self.shortcut(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.preact(x))


class ResNet(KDModel):
    """CIFAR ResNet (He et al. 2016, §4.2): depth = 6n + 2, stage widths (16, 32, 64) x width.
    Its features: the stem, each stage's output before its last ReLU (``stage<i>_pre``) and
    after it (``stage<i>``), the class activation maps (``cam``, (K, H, W): the head's weights
    applied at each position of ``stage3``, each map's mean its class's logit less the head's
    bias) and the pooled ``embedding``."""

    def __init__(
        self, depth: int = 20, width: int = 1, num_classes: int = 10, in_channels: int = 3
    ):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        widths = [16 * width, 32 * width, 64 * width]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        stages, cin = [], widths[0]
        for i, w in enumerate(widths):
            blocks = [
                BasicBlock(cin if j == 0 else w, w, 2 if (i > 0 and j == 0) else 1)
                for j in range(n)
            ]
            stages.append(nn.Sequential(*blocks))
            cin = w
        self.stages = nn.ModuleList(stages)
        self.head = nn.Linear(widths[-1], num_classes)

    def forward_features(self, x: torch.Tensor) -> ModelOutput:
        h = self.stem(x)  # (B, 16w, H, W)
        feats: dict[str, torch.Tensor] = {"stem": h}  # the first stage's input (FSP's first map)
        for i, stage in enumerate(self.stages):
            for block in stage[:-1]:
                h = block(h)
            pre = stage[-1].preact(h)  # (B, C_i, H/2^i, W/2^i), before the last ReLU
            h = F.relu(pre)
            # pre-activations as the MLPs': ReviewKD's (and OFD's) teacher targets
            feats[f"stage{i + 1}_pre"], feats[f"stage{i + 1}"] = pre, h
        # The class activation maps (Zhou et al. 2016): the head's weights at every position of
        # the last stage, (B, K, H, W). The head is linear and pooling an average, so each map's
        # mean is its class's logit less the head's bias: what CAT-KD transfers (Guo et al. 2023;
        # its official code copies the teacher's weights, not its bias, into a 1 x 1 conv).
        feats["cam"] = class_activation_maps(h, self.head.weight)
        emb = F.adaptive_avg_pool2d(h, 1).flatten(1)  # (B, 64w)
        feats["embedding"] = emb
        return ModelOutput(self.head(emb), feats)


def _mlp(hidden: tuple[int, ...], dropout: float = 0.0, input_dropout: float = 0.0):
    def build(num_classes: int = 10, in_shape: tuple[int, int, int] = (1, 28, 28)) -> KDModel:
        c, h, w = in_shape
        return MLP(c * h * w, hidden, num_classes, dropout, input_dropout)

    return build


def _cnn(width: int = 32):
    def build(num_classes: int = 10, in_shape: tuple[int, int, int] = (1, 28, 28)) -> KDModel:
        return SmallCNN(in_shape[0], num_classes, width, image=in_shape[1])

    return build


def _resnet(depth: int, width: int = 1):
    def build(num_classes: int = 10, in_shape: tuple[int, int, int] = (3, 32, 32)) -> KDModel:
        return ResNet(depth, width, num_classes, in_shape[0])

    return build


# The one table of architectures: name -> builder(num_classes, in_shape).
MODELS = {
    # Hinton's teacher, in the default and the paper profile. Dropout 0.3 on hidden units:
    # measured over 8 epochs with 1-px jitter it reached 94-110 test errors, against 204 with the
    # 0.5/0.2 rates of Srivastava et al. 2014; over 60 epochs with 2-px jitter and max-norm 3.5,
    # 72, against 81 for those rates over 150.
    "mlp-1200-dropout": _mlp((1200, 1200), dropout=0.3),
    # The rates of Srivastava et al. 2014 for MNIST (20% of the inputs, 50% of the hidden units),
    # which pay off only over a schedule far longer than ours.
    "mlp-1200-paper": _mlp((1200, 1200), dropout=0.5, input_dropout=0.2),
    "mlp-1200": _mlp((1200, 1200)),
    "mlp-800": _mlp((800, 800)),  # Hinton student
    "mlp-300": _mlp((300, 300)),
    "mlp-100": _mlp((100, 100)),
    "mlp-30": _mlp((30, 30)),  # Hinton's smallest student
    "cnn": _cnn(),
    # A thin student for the feature methods: the same layers with a quarter of the channels
    # (8 and 16), so its maps have the teacher's sizes and FitNets/AT pair layers by name.
    "cnn-8": _cnn(8),
    "resnet8": _resnet(8),
    "resnet14": _resnet(14),
    "resnet20": _resnet(20),
    "resnet32": _resnet(32),
    "resnet56": _resnet(56),
    "resnet8x4": _resnet(8, 4),
    "resnet32x4": _resnet(32, 4),
}


def build_model(
    name: str, num_classes: int = 10, in_shape: tuple[int, int, int] = (1, 28, 28)
) -> KDModel:
    """Build a model from :data:`MODELS`, or ``mlp-W`` / ``mlp-W1-W2-...`` for any widths."""
    if name in MODELS:
        return MODELS[name](num_classes=num_classes, in_shape=in_shape)
    from .vit import VIT_MODELS  # imported here: kdcore.vit builds on this module's KDModel

    if name in VIT_MODELS:
        return VIT_MODELS[name](num_classes=num_classes, in_shape=in_shape)
    if name.startswith("mlp-"):
        try:
            hidden = tuple(int(w) for w in name[4:].split("-"))
        except ValueError:
            hidden = ()
        if hidden and all(w > 0 for w in hidden):
            if len(hidden) == 1:
                hidden = hidden * 2  # "mlp-30" style names mean two layers of that width
            return _mlp(hidden)(num_classes=num_classes, in_shape=in_shape)
    names = ", ".join([*MODELS, *VIT_MODELS])
    raise ValueError(f"unknown model {name!r}; choose one of {names} or mlp-W")
