"""VGG-like OTNNs and their unconstrained twins (paper appendix A.2.2, Tables 6 and 7).

Both families have the same layer sizes. The OTNN uses orthogonal convolutions (``conv='bcop'``, default, see
:mod:`otnn_plugin.orthogonal`) or the paper's deel-torchlip ``SpectralConv2d`` (``conv='spectral'``), deel-torchlip's
``SpectralLinear``, our ``GroupSort2``, L2-norm pooling and the scaled global average pool; the unconstrained twin
uses ``Conv2d`` + ``BatchNorm`` + ``ReLU`` and average pooling.

* ``*_vgg_fashionmnist``: Table 7 (3x96, stride-2 conv, 3x192, stride-2 conv, 3x384, global pool, dense 10).
* ``*_vgg_fashionmnist_shallow``: not in the paper; two conv stages (16, 32) with 2x2 pooling and a dense 64, the
  shape of deel-torchlip's Fashion-MNIST tutorial network, whose OTNN head is also ``head='disjoint'`` by default.
  At equal CPU budget it fits and reaches the transport regime much faster than the deep Table 7 stack
  (``benchmarks/bench_budget.py``).
* ``*_vgg_fashionmnist_gnp``: not in the paper; gradient-norm preserving (space-to-depth, 4 then 16 channels,
  dense 512-256, disjoint head): its OTNN has ``||grad f_k|| = 1`` at every input, by construction.
* ``*_vgg_celeba_gnp``: not in the paper; the gradient-norm-preserving construction at 3x109x89.
* ``*_vgg_celeba``: Table 6 (16-16 / 32-32 / 64x3 / 128x3 / 128x3 with pooling, dense 256-256-22),
  built at 3x109x89 (the resolution of our trained weights) unless ``img_size=(218, 178)`` asks for the paper's.
* ``*_vgg_imagenet``: a VGG-style stack for 3x224x224 ImageNet (:data:`IMAGENET`), ``num_classes=1000``;
  ``width_divisor`` narrows it for tests and CPU budgets. No trained weights are published.
* ``*_small``: the same stacks with narrower layers, for CPU budgets.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from timm.models import build_model_with_cfg, register_model
from torch import nn

from ..labels import FASHION_MNIST_CLASSES
from ..layers import (CenterCrop2d, FrobeniusLinear, GroupSort2, ScaledAdaptiveAvgPool2d, ScaledL2NormPool2d,
                      SpectralConv2d, SpectralLinear)
from ..orthogonal import PADDING_MODES, OrthogonalConv2d
from ..spectral import smooth_orthogonal_init_
from ._common import (CELEBA_SUBSET, CELEBA_SUBSET_TAG, check_pretrained, default_cfg, generate_cfgs, pretrained_cfg_of,
                      with_pretrained_file)

__all__ = ["VGGSpec", "VGGNet", "CONV_TYPES", "CONV_INITS", "HEAD_TYPES"]


@dataclass(frozen=True)
class VGGSpec:
    """Layer sizes of one VGG-like architecture.

    ``stages`` lists the conv widths of each stage. ``downsample='pool'`` pools 2x2 after every stage (Table 6);
    ``'stride'`` makes the last conv of every stage but the final one a stride-2 conv (Table 7); ``'unshuffle'``
    starts every stage with an invertible 2x2 space-to-depth (``nn.PixelUnshuffle(2)``: 4x the channels, a
    permutation of the pixels), which loses nothing, so no layer of the stack has to widen; an input whose sides are
    not multiples of ``2 ** len(stages)`` is first cropped to its centre that is (109x89 to 104x88 for three).
    ``global_pool`` averages the last feature map before the head (else it is flattened); ``hidden`` lists the
    widths of the dense layers before the classifier.
    """

    stages: tuple[tuple[int, ...], ...]
    downsample: str
    global_pool: bool
    hidden: tuple[int, ...] = ()

    def scaled(self, divisor: int) -> "VGGSpec":
        """The same stack with every width divided by ``divisor`` (kept even for GroupSort2)."""
        def shrink(width: int) -> int:
            return max(2, 2 * round(width / divisor / 2))

        return VGGSpec(
            tuple(tuple(shrink(w) for w in stage) for stage in self.stages),
            self.downsample,
            self.global_pool,
            tuple(shrink(w) for w in self.hidden),
        )


FASHIONMNIST = VGGSpec(stages=((96,) * 4, (192,) * 4, (384,) * 3), downsample="stride", global_pool=True)
#: Not in the paper: deel-torchlip's Fashion-MNIST tutorial shape, two conv stages with pooling and one dense layer.
FASHIONMNIST_SHALLOW = VGGSpec(stages=((16,), (32,)), downsample="pool", global_pool=False, hidden=(64,))
#: Not in the paper: a gradient-norm-preserving stack (Anil et al. 2019) for 1x28x28. Space-to-depth instead of
#: pooling, convolutions as wide as their input (4 channels at 14x14, 16 at 7x7: 784 values throughout) and dense
#: layers that only narrow, so every OTNN layer's Jacobian has orthonormal rows.
FASHIONMNIST_GNP = VGGSpec(stages=((4, 4, 4), (16, 16, 16, 16)), downsample="unshuffle", global_pool=False,
                           hidden=(512, 256))
#: Not in the paper: the same construction for 3x109x89 CelebA (cropped to 104x88): 12, 48 and 192 channels after
#: each space-to-depth, a last convolution that narrows to 32 (orthonormal rows), dense 256-128.
CELEBA_GNP = VGGSpec(stages=((12, 12), (48, 48), (192, 32)), downsample="unshuffle", global_pool=False,
                     hidden=(256, 128))
CELEBA = VGGSpec(
    stages=((16, 16), (32, 32), (64,) * 3, (128,) * 3, (128,) * 3), downsample="pool", global_pool=False,
    hidden=(256, 256),
)
#: A VGG-style OTNN for 224x224 ImageNet built from the orthogonal convolutions of :mod:`otnn_plugin.orthogonal`, as
#: 1-Lipschitz CNNs are scaled up in the literature (BCOP stacks: Li et al. 2019, extended to large CNNs by AOC,
#: Boissin et al., ICML 2025; the residual alternative certified on ImageNet: LiResNet, Hu et al., NeurIPS 2023).
#: VGG-16's widths (64 to 512) in six stages: every stage but the last ends with a 2x2 stride-2 orthogonal conv to
#: the next stage's width, so five halvings take 224 to 7x7 where VGG has five max-pools; the first stage is 32 wide
#: at full resolution to save compute there. 11 3x3 convs and 5 stride-2 convs, GroupSort2 after each, then the
#: scaled global average pool and one dense layer: about 4 GMACs per 224x224 image, ResNet-50's cost. A plain
#: stack, so that ``export_vanilla`` folds it into ``Conv2d`` layers, with no residual branch to constrain (a
#: 1-Lipschitz residual block needs care, e.g. the convex combination ``(x + f(x)) / 2``).
IMAGENET = VGGSpec(
    stages=((32, 64), (64, 128), (128, 128, 256), (256, 256, 512), (512, 512, 512), (512, 512, 512)),
    downsample="stride", global_pool=True,
)


def _conv_block(in_chs: int, out_chs: int, stride: int, lipschitz: bool, conv: str, padding_mode: str
                ) -> list[nn.Module]:
    if lipschitz and conv == "bcop":  # a stride-2 layer is a 2x2 stride-2 orthogonal conv (RKO, exact)
        kernel_size = 3 if stride == 1 else stride
        return [OrthogonalConv2d(in_chs, out_chs, kernel_size, stride, padding_mode=padding_mode), GroupSort2()]
    if lipschitz:
        return [SpectralConv2d(in_chs, out_chs, kernel_size=3, stride=stride, padding=1), GroupSort2()]
    return [
        nn.Conv2d(in_chs, out_chs, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_chs),
        nn.ReLU(inplace=True),
    ]


def _dense_block(in_features: int, out_features: int, lipschitz: bool) -> list[nn.Module]:
    if lipschitz:
        return [SpectralLinear(in_features, out_features), GroupSort2()]
    return [nn.Linear(in_features, out_features, bias=False), nn.BatchNorm1d(out_features), nn.ReLU(inplace=True)]


def _classifier(in_features: int, num_classes: int, lipschitz: bool, head: str = "orthogonal") -> nn.Module:
    if num_classes <= 0:
        return nn.Identity()
    if not lipschitz:
        return nn.Linear(in_features, num_classes)
    if head == "disjoint":
        return FrobeniusLinear(in_features, num_classes, disjoint_neurons=True)
    return SpectralLinear(in_features, num_classes)


#: OTNN heads: ``orthogonal`` (the paper's SpectralLinear: orthonormal rows, the whole output 1-Lipschitz) or
#: ``disjoint`` (each row of unit norm on its own: each ``f_k`` a 1-Lipschitz one-vs-all classifier, as Sec. 4
#: defines the multiclass OTNN, without forcing the heads to be orthogonal to each other).
HEAD_TYPES = ("orthogonal", "disjoint")
#: How a stage halves the resolution: pooling after it, a stride-2 last convolution, or a space-to-depth before it.
DOWNSAMPLINGS = ("pool", "stride", "unshuffle")
#: OTNN convolutions: ``bcop`` (orthogonal, gradient-norm preserving) or the paper's ``spectral`` (deel-torchlip).
CONV_TYPES = ("bcop", "spectral")
#: Initialisations of the ``spectral`` convolutions: ``smooth`` (gain-preserving, see :mod:`otnn_plugin.spectral`)
#: or deel-torchlip's ``orthogonal``. The unconstrained twin keeps PyTorch's default either way.
CONV_INITS = ("smooth", "orthogonal")


class VGGNet(nn.Module):
    """A VGG-like network, 1-Lipschitz (OTNN) when ``lipschitz=True``, else its unconstrained twin.

    ``conv`` picks the OTNN convolutions: ``'bcop'`` (default) is orthogonal, so the network can reach
    ``||grad f|| = 1`` (its stride-2 layers are 2x2 stride-2 orthogonal convolutions, where Table 7 has 3x3);
    ``'spectral'`` is the paper's deel-torchlip ``SpectralConv2d``, a contraction that shrinks deep stacks'
    gradients. ``padding_mode`` (``bcop`` only): ``'circular'`` keeps every convolution exactly orthogonal,
    ``'zeros'`` is the paper's padding. ``conv_init`` (``spectral`` only): ``'smooth'`` (default) keeps a deep
    stack's gradient (``||grad f|| ~ 0.04`` at init for Table 6 instead of ``~6e-7``), ``'orthogonal'`` is
    deel-torchlip's own. ``head`` (OTNN only): ``'orthogonal'`` (default, Tables 6-7's SDense) or ``'disjoint'``, see
    :data:`HEAD_TYPES`; with disjoint heads ``f_i - f_j`` is 2-Lipschitz instead of sqrt(2)-Lipschitz
    (:func:`otnn_plugin.lipschitz.output_gap_lipschitz`).
    """

    def __init__(
        self,
        spec: VGGSpec,
        lipschitz: bool,
        num_classes: int = 10,
        in_chans: int = 1,
        img_size: int | Sequence[int] = 28,
        conv: str = "bcop",
        padding_mode: str = "circular",
        conv_init: str = "smooth",
        head: str = "orthogonal",
    ) -> None:
        super().__init__()
        if spec.downsample not in DOWNSAMPLINGS:
            raise ValueError(f"downsample must be one of {', '.join(DOWNSAMPLINGS)}, got {spec.downsample!r}")
        if conv not in CONV_TYPES:
            raise ValueError(f"conv must be one of {', '.join(CONV_TYPES)}, got {conv!r}")
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {', '.join(PADDING_MODES)}, got {padding_mode!r}")
        if conv_init not in CONV_INITS:
            raise ValueError(f"conv_init must be one of {', '.join(CONV_INITS)}, got {conv_init!r}")
        if head not in HEAD_TYPES:
            raise ValueError(f"head must be one of {', '.join(HEAD_TYPES)}, got {head!r}")
        height, width = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.spec = spec
        self.is_lipschitz = lipschitz
        self.head_type = head
        self.num_classes = num_classes
        self.img_size = (height, width)

        layers: list[nn.Module] = []
        self.feature_info: list[dict] = []
        in_chs, reduction = in_chans, 1
        if spec.downsample == "unshuffle":  # keep the centre that every space-to-depth can split evenly
            multiple = 2 ** len(spec.stages)
            height, width = height - height % multiple, width - width % multiple
            if min(height, width) < multiple:
                raise ValueError(f"img_size={img_size} is too small for {len(spec.stages)} space-to-depth steps: "
                                 f"use at least {multiple} pixels per side")
            if (height, width) != self.img_size:
                layers.append(CenterCrop2d(height, width))
        for stage_idx, widths in enumerate(spec.stages):
            last_stage = stage_idx == len(spec.stages) - 1
            if spec.downsample == "unshuffle":
                layers.append(nn.PixelUnshuffle(2))
                in_chs, height, width, reduction = in_chs * 4, height // 2, width // 2, reduction * 2
            for conv_idx, out_chs in enumerate(widths):
                stride = 2 if spec.downsample == "stride" and not last_stage and conv_idx == len(widths) - 1 else 1
                layers += _conv_block(in_chs, out_chs, stride, lipschitz, conv, padding_mode)
                in_chs, reduction = out_chs, reduction * stride
                if stride == 2:  # 3x3 convs pad by 1; the 2x2 orthogonal ones drop an odd last row
                    bump = 1 if conv == "spectral" or not lipschitz else 0
                    height, width = (height + bump) // 2, (width + bump) // 2
            self.feature_info.append(dict(num_chs=in_chs, reduction=reduction, module=f"features.{len(layers) - 1}"))
            if spec.downsample == "pool":
                layers.append(ScaledL2NormPool2d(kernel_size=2) if lipschitz else nn.AvgPool2d(kernel_size=2))
                height, width, reduction = height // 2, width // 2, reduction * 2
                if min(height, width) < 1:
                    raise ValueError(
                        f"img_size={img_size} is too small for {len(spec.stages)} 2x2 poolings: "
                        f"use at least {2 ** len(spec.stages)} pixels per side"
                    )
        self.features = nn.Sequential(*layers)
        if lipschitz and conv_init == "smooth":
            for conv in self.features:
                if isinstance(conv, SpectralConv2d):
                    smooth_orthogonal_init_(conv)
        self.num_features = in_chs if spec.global_pool else in_chs * height * width

        if spec.global_pool:
            self.global_pool = ScaledAdaptiveAvgPool2d((1, 1)) if lipschitz else nn.AdaptiveAvgPool2d(1)
        else:
            self.global_pool = nn.Identity()
        self.flatten = nn.Flatten(1)
        dense: list[nn.Module] = []
        in_features = self.num_features
        for hidden in spec.hidden:
            dense += _dense_block(in_features, hidden, lipschitz)
            in_features = hidden
        self.pre_logits = nn.Sequential(*dense)
        self.head_hidden_size = in_features
        self.head = _classifier(in_features, num_classes, lipschitz, head)

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool is not None:
            raise ValueError("the pooling of a VGGNet is fixed by its architecture; pass global_pool=None")
        self.num_classes = num_classes
        self.head = _classifier(self.head_hidden_size, num_classes, self.is_lipschitz, self.head_type)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"{type(self).__name__} takes (N, C, H, W) batches, got shape {tuple(x.shape)}; for one "
                             "image pass x[None]")
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pre_logits(self.flatten(self.global_pool(x)))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _create_vgg(variant: str, pretrained: bool, spec: VGGSpec, **kwargs) -> VGGNet:
    """Build ``variant``, at its pretrained config's input size unless ``img_size`` is given."""
    out_indices = kwargs.pop("out_indices", tuple(range(len(spec.stages))))
    if "img_size" not in kwargs:
        kwargs["img_size"] = tuple(pretrained_cfg_of(variant, kwargs).input_size[1:])
    model = build_model_with_cfg(
        VGGNet,
        variant,
        pretrained,
        spec=spec,
        lipschitz=variant.startswith("otnn_"),
        feature_cfg=dict(flatten_sequential=True, out_indices=out_indices),
        **with_pretrained_file(variant, pretrained, kwargs),
    )
    if pretrained and not kwargs.get("features_only"):
        in_chans = kwargs.get("in_chans", model.pretrained_cfg["input_size"][0])
        check_pretrained(model, variant, (in_chans, *model.img_size))
    return model


_FASHION = dict(
    num_classes=10, input_size=(1, 28, 28), mean=(0.0,), std=(1.0,), label_names=FASHION_MNIST_CLASSES,
    license="mit", description="Fashion-MNIST classifier, inputs in [0, 1]",
)
_IMAGENET = dict(
    num_classes=1000, input_size=(3, 224, 224), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), crop_pct=0.875,
    license="other", hf_hub_id=None,
    description="ImageNet-style classifier, inputs in [0, 1] (no mean/std normalisation: it would scale the "
                "Lipschitz constant in pixel space by 1/std)",
    notes=("no trained weights are published; weights trained on ImageNet fall under its terms of access "
           "(non-commercial research)",),
)

# The CelebA models' one config is that of the weights we trained (subset, 109x89); img_size=(218, 178) builds the
# paper's full-resolution network.
default_cfgs = generate_cfgs({
    **{  # only the small, shallow and gnp pairs have trained weights
        f"{family}_vgg_fashionmnist{size}": default_cfg(**_FASHION, **({} if size else {"hf_hub_id": None}))
        for family in ("otnn", "unconstrained")
        for size in ("", "_small", "_shallow", "_gnp")
    },
    **{
        f"{family}_vgg_celeba{size}.{CELEBA_SUBSET_TAG}": default_cfg(**CELEBA_SUBSET)
        for family in ("otnn", "unconstrained")
        for size in ("", "_small", "_gnp")
    },
    **{f"{family}_vgg_imagenet": default_cfg(**_IMAGENET) for family in ("otnn", "unconstrained")},
})


@register_model
def otnn_vgg_fashionmnist(pretrained: bool = False, **kwargs) -> VGGNet:
    """OTNN of paper Table 7 for 1x28x28 Fashion-MNIST."""
    return _create_vgg("otnn_vgg_fashionmnist", pretrained, FASHIONMNIST, **kwargs)


@register_model
def unconstrained_vgg_fashionmnist(pretrained: bool = False, **kwargs) -> VGGNet:
    """Unconstrained twin of paper Table 7 (Conv2d + BatchNorm + ReLU)."""
    return _create_vgg("unconstrained_vgg_fashionmnist", pretrained, FASHIONMNIST, **kwargs)


@register_model
def otnn_vgg_fashionmnist_small(pretrained: bool = False, **kwargs) -> VGGNet:
    """Table 7 OTNN with widths divided by 4 (24/48/96), for CPU budgets."""
    return _create_vgg("otnn_vgg_fashionmnist_small", pretrained, FASHIONMNIST.scaled(4), **kwargs)


@register_model
def unconstrained_vgg_fashionmnist_small(pretrained: bool = False, **kwargs) -> VGGNet:
    """Unconstrained twin of ``otnn_vgg_fashionmnist_small``."""
    return _create_vgg("unconstrained_vgg_fashionmnist_small", pretrained, FASHIONMNIST.scaled(4), **kwargs)


@register_model
def otnn_vgg_fashionmnist_shallow(pretrained: bool = False, **kwargs) -> VGGNet:
    """Not in the paper: a two-stage OTNN for 1x28x28 Fashion-MNIST (conv 16, pool, conv 32, pool, dense 64), with
    one-vs-all heads of unit norm each (``head='disjoint'``) unless ``head`` says otherwise."""
    kwargs.setdefault("head", "disjoint")
    return _create_vgg("otnn_vgg_fashionmnist_shallow", pretrained, FASHIONMNIST_SHALLOW, **kwargs)


@register_model
def unconstrained_vgg_fashionmnist_shallow(pretrained: bool = False, **kwargs) -> VGGNet:
    """Unconstrained twin of ``otnn_vgg_fashionmnist_shallow`` (Conv2d + BatchNorm + ReLU, average pooling)."""
    return _create_vgg("unconstrained_vgg_fashionmnist_shallow", pretrained, FASHIONMNIST_SHALLOW, **kwargs)


@register_model
def otnn_vgg_fashionmnist_gnp(pretrained: bool = False, **kwargs) -> VGGNet:
    """Not in the paper: a gradient-norm-preserving OTNN for 1x28x28 Fashion-MNIST (space-to-depth, 3 convs of 4
    channels at 14x14, space-to-depth, 4 convs of 16 at 7x7, dense 512-256, one-vs-all heads).

    Every layer's Jacobian has orthonormal rows (space-to-depth and GroupSort2 permute, the square orthogonal
    convolutions rotate, the dense layers only narrow), and each one-vs-all head (``head='disjoint'`` unless
    ``head`` says otherwise) is a unit vector, so ``||grad f_k(x)|| = 1`` at every input for every class: the
    property the hKR optimum has (paper Prop. 1), here by construction rather than by training.
    """
    kwargs.setdefault("head", "disjoint")
    return _create_vgg("otnn_vgg_fashionmnist_gnp", pretrained, FASHIONMNIST_GNP, **kwargs)


@register_model
def unconstrained_vgg_fashionmnist_gnp(pretrained: bool = False, **kwargs) -> VGGNet:
    """Unconstrained twin of ``otnn_vgg_fashionmnist_gnp`` (space-to-depth, Conv2d + BatchNorm + ReLU, the same
    widths)."""
    return _create_vgg("unconstrained_vgg_fashionmnist_gnp", pretrained, FASHIONMNIST_GNP, **kwargs)


@register_model
def otnn_vgg_celeba(pretrained: bool = False, **kwargs) -> VGGNet:
    """OTNN of paper Table 6 for CelebA, 22 attributes, at 109x89; ``img_size=(218, 178)`` for the paper's size."""
    return _create_vgg("otnn_vgg_celeba", pretrained, CELEBA, **kwargs)


@register_model
def unconstrained_vgg_celeba(pretrained: bool = False, **kwargs) -> VGGNet:
    """Unconstrained twin of paper Table 6 (Conv2d + BatchNorm + ReLU, average pooling)."""
    return _create_vgg("unconstrained_vgg_celeba", pretrained, CELEBA, **kwargs)


@register_model
def otnn_vgg_celeba_gnp(pretrained: bool = False, **kwargs) -> VGGNet:
    """Not in the paper: a gradient-norm-preserving OTNN for 3x109x89 CelebA (centre crop to 104x88, space-to-depth
    to 12, 48 and 192 channels with two convs each, the last narrowing to 32, dense 256-128, one-vs-all heads).

    As ``otnn_vgg_fashionmnist_gnp``: every layer's Jacobian has orthonormal rows, so each label's
    ``||grad f_k(x)|| = 1`` at every input.
    """
    kwargs.setdefault("head", "disjoint")
    return _create_vgg("otnn_vgg_celeba_gnp", pretrained, CELEBA_GNP, **kwargs)


@register_model
def unconstrained_vgg_celeba_gnp(pretrained: bool = False, **kwargs) -> VGGNet:
    """Unconstrained twin of ``otnn_vgg_celeba_gnp`` (space-to-depth, Conv2d + BatchNorm + ReLU, the same widths)."""
    return _create_vgg("unconstrained_vgg_celeba_gnp", pretrained, CELEBA_GNP, **kwargs)


@register_model
def otnn_vgg_celeba_small(pretrained: bool = False, **kwargs) -> VGGNet:
    """Table 6 OTNN with widths halved (8/16/32/64/64, dense 128), for CPU budgets."""
    return _create_vgg("otnn_vgg_celeba_small", pretrained, CELEBA.scaled(2), **kwargs)


@register_model
def unconstrained_vgg_celeba_small(pretrained: bool = False, **kwargs) -> VGGNet:
    """Unconstrained twin of ``otnn_vgg_celeba_small``."""
    return _create_vgg("unconstrained_vgg_celeba_small", pretrained, CELEBA.scaled(2), **kwargs)


def _imagenet_spec(width_divisor: int) -> VGGSpec:
    if not (isinstance(width_divisor, int) and width_divisor >= 1):
        raise ValueError(f"width_divisor must be a positive integer (1: the full widths), got {width_divisor!r}")
    return IMAGENET.scaled(width_divisor)


@register_model
def otnn_vgg_imagenet(pretrained: bool = False, width_divisor: int = 1, **kwargs) -> VGGNet:
    """VGG-style OTNN for 3x224x224 ImageNet (:data:`IMAGENET`); ``width_divisor`` divides every width (kept even),
    ``img_size`` and ``num_classes`` as for every model (a miniature: ``img_size=32, num_classes=3``)."""
    return _create_vgg("otnn_vgg_imagenet", pretrained, _imagenet_spec(width_divisor), **kwargs)


@register_model
def unconstrained_vgg_imagenet(pretrained: bool = False, width_divisor: int = 1, **kwargs) -> VGGNet:
    """Unconstrained twin of ``otnn_vgg_imagenet`` (Conv2d + BatchNorm + ReLU, 3x3 stride-2 convs)."""
    return _create_vgg("unconstrained_vgg_imagenet", pretrained, _imagenet_spec(width_divisor), **kwargs)
