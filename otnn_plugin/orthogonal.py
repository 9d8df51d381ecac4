"""Gradient-norm-preserving convolutions for OTNNs: kernels that are orthogonal by construction.

The paper's properties (proof of Prop. 1 and 2) need ``||grad f|| = 1`` almost everywhere. deel-torchlip's
``SpectralConv2d`` bounds each convolution by 1 through the lconv coefficient (1/3 for a 3x3 kernel), but it is not
orthogonal, so a deep stack shrinks gradients. :class:`OrthogonalConv2d` is orthogonal:

* stride 1, odd ``k``: the block convolutional orthogonal parametrisation (BCOP, Li et al., NeurIPS 2019). A
  two-tap kernel ``[P, I - P]`` with ``P`` a symmetric projector has the unitary transfer function
  ``P + (I - P) e^{-iw}`` at every frequency, so it is an orthogonal convolution; ``k - 1`` of them along the
  width, ``k - 1`` along the height and an orthogonal ``c x c`` matrix compose into an orthogonal ``k x k``
  kernel, exactly orthogonal with circular padding (``||conv(x)|| = ||x||``) and 1-Lipschitz with zero padding.
* stride ``s`` with ``kernel_size == s``: the reshaped kernel orthogonalisation (RKO) is exact here, because the
  ``s x s`` patches do not overlap: an orthonormal ``(out, in * s * s)`` matrix on each patch.

With different input and output widths the kernel is the corner of a square orthogonal one: row-orthogonal
(gradient-norm preserving) when the layer narrows, an isometry when it widens. Orthonormal factors come from a
QR decomposition with the signs of ``R``'s diagonal made positive, which is unique and smooth in the raw weights.
In eval mode the kernel is computed once, without autograd, and reused until a parameter changes, so inference
and explanations pay nothing for the parametrisation; :meth:`vanilla_export` folds it into a plain ``nn.Conv2d``.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["CircularConv2d", "OrthogonalConv2d", "circular_pad", "orthonormal_columns", "PADDING_MODES"]

#: ``circular`` is exactly orthogonal; ``zeros`` is the usual image padding, 1-Lipschitz but lossy at the border.
PADDING_MODES = ("circular", "zeros")


def circular_pad(x: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    """``F.pad(x, (pad_w, pad_w, pad_h, pad_h), mode="circular")`` bit for bit, in ``x``'s memory format.

    torch's circular padding returns a contiguous tensor from a channels-last one, which the next convolution then
    converts back; here the padded tensor is written once, in the input's layout (RISE on the exported OTNNs:
    1.2-1.4x, ``python -m benchmarks --only rise``).
    """
    height, width = x.shape[-2:]
    if not (0 <= pad_h <= height and 0 <= pad_w <= width):
        raise ValueError(f"circular padding of ({pad_h}, {pad_w}) needs an input at least that large, got "
                         f"{height}x{width}")
    channels_last = x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    out = torch.empty((*x.shape[:-2], height + 2 * pad_h, width + 2 * pad_w), dtype=x.dtype, device=x.device,
                      memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    rows = slice(pad_h, pad_h + height)
    out[..., rows, pad_w:pad_w + width] = x
    out[..., rows, :pad_w] = x[..., width - pad_w:]
    out[..., rows, pad_w + width:] = x[..., :pad_w]
    out[..., :pad_h, :] = out[..., height:height + pad_h, :]
    out[..., pad_h + height:, :] = out[..., pad_h:2 * pad_h, :]
    return out


class CircularConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose ``padding_mode="circular"`` pads with :func:`circular_pad`: the same outputs, without a
    layout round trip; what :meth:`OrthogonalConv2d.vanilla_export` gives for circular padding."""

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.padding_mode != "circular":
            return super()._conv_forward(x, weight, bias)
        return F.conv2d(circular_pad(x, *self.padding), weight, bias, self.stride, 0, self.dilation, self.groups)


def orthonormal_columns(raw: torch.Tensor) -> torch.Tensor:
    """The orthonormal factor ``Q`` of ``raw = QR`` (``(..., n, r)``, ``n >= r``) with ``diag(R) > 0``."""
    q, r = torch.linalg.qr(raw)
    signs = torch.where(torch.diagonal(r, dim1=-2, dim2=-1) < 0, -1.0, 1.0).to(q.dtype)
    return q * signs.unsqueeze(-2)


def _compose(first: torch.Tensor, then: torch.Tensor) -> torch.Tensor:
    """Taps ``(t1 + t2 - 1, c, c)`` of the 1-D convolution ``then`` applied after ``first`` (taps ``(t, c, c)``)."""
    products = torch.einsum("sij,tjk->stik", then, first)
    out = products.new_zeros(first.shape[0] + then.shape[0] - 1, *products.shape[-2:])
    for shift in range(then.shape[0]):
        out[shift:shift + first.shape[0]] += products[shift]
    return out


def _block_chain(projectors: torch.Tensor) -> torch.Tensor:
    """Taps ``(m + 1, c, c)`` of the chain of two-tap orthogonal convolutions ``[P_i, I - P_i]``, ``P_i`` ``(m, c, c)``."""
    eye = torch.eye(projectors.shape[-1], dtype=projectors.dtype, device=projectors.device)
    taps = torch.stack([projectors[0], eye - projectors[0]])
    for projector in projectors[1:]:
        taps = _compose(taps, torch.stack([projector, eye - projector]))
    return taps


class OrthogonalConv2d(nn.Module):
    """A 2-D convolution whose kernel is orthogonal by construction (BCOP for stride 1, RKO for stride = kernel).

    Args:
        in_channels, out_channels: widths.
        kernel_size: odd for stride 1 (``'same'`` padding of ``k // 2``); equal to ``stride`` otherwise.
        stride: 1, or the kernel size (a non-overlapping, invertible downsampling).
        bias: learn an additive bias (it does not change the Lipschitz constant).
        padding_mode: ``'circular'`` (exactly orthogonal, default) or ``'zeros'``.

    ``weight`` is the ``(out, in, k, k)`` kernel, recomputed from the raw parameters at every training forward
    and cached in eval mode. Parameter gradients flow in training mode only, as in deel-torchlip's layers.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 bias: bool = True, padding_mode: str = "circular") -> None:
        super().__init__()
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {', '.join(PADDING_MODES)}, got {padding_mode!r}")
        if stride == 1 and kernel_size % 2 == 0:
            raise ValueError(f"a stride-1 OrthogonalConv2d needs an odd kernel_size, got {kernel_size}")
        if stride != 1 and kernel_size != stride:
            raise ValueError(f"a strided OrthogonalConv2d needs kernel_size == stride, got {kernel_size} and {stride}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = (kernel_size, kernel_size), (stride, stride)
        self.padding = (kernel_size // 2,) * 2 if stride == 1 else (0, 0)
        self.padding_mode = padding_mode
        if stride == 1:
            width = max(in_channels, out_channels)
            self.rotation = nn.Parameter(torch.empty(width, width))
            self.projectors = nn.Parameter(torch.empty(2 * (kernel_size - 1), width, width // 2))
        else:
            patch = in_channels * stride * stride
            self.rotation = nn.Parameter(torch.empty(max(out_channels, patch), min(out_channels, patch)))
            self.register_parameter("projectors", None)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self._cache: tuple[tuple, torch.Tensor] | None = None
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Random orthogonal factors (a Gaussian's QR factor is Haar-distributed); zero bias."""
        for raw in (self.rotation, self.projectors):
            if raw is not None:
                raw.normal_()
        if self.bias is not None:
            self.bias.zero_()
        self._cache = None

    def _kernel(self) -> torch.Tensor:
        k = self.kernel_size[0]
        if self.projectors is None:  # RKO: one orthonormal matrix on each non-overlapping patch
            q = orthonormal_columns(self.rotation)
            matrix = q if q.shape[0] == self.out_channels else q.T
            return matrix.reshape(self.out_channels, self.in_channels, k, k)
        rotation = orthonormal_columns(self.rotation)
        if k == 1:
            return rotation[:self.out_channels, :self.in_channels, None, None]
        q = orthonormal_columns(self.projectors)
        projectors = q @ q.transpose(-1, -2)
        rows, cols = _block_chain(projectors[:k - 1]), _block_chain(projectors[k - 1:])
        kernel = torch.einsum("ij,ajk,bkl->ilab", rotation, cols, rows)
        return kernel[:self.out_channels, :self.in_channels]

    def _parameter_versions(self) -> tuple:
        return tuple((p.data_ptr(), p._version, p.dtype) for p in (self.rotation, self.projectors) if p is not None)

    @property
    def weight(self) -> torch.Tensor:
        """The orthogonal kernel ``(out, in, k, k)``: with autograd in training mode, cached in eval mode."""
        if self.training:
            self._cache = None
            return self._kernel()
        versions = self._parameter_versions()
        if self._cache is None or self._cache[0] != versions:
            with torch.no_grad():
                self._cache = (versions, self._kernel())
        return self._cache[1]

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """``nn.Conv2d``'s signature, so :func:`otnn_plugin.lipschitz.layer_operator_norms` can probe it."""
        if self.padding_mode == "circular" and any(self.padding):
            return F.conv2d(circular_pad(x, *self.padding), weight, bias, self.stride)
        return F.conv2d(x, weight, bias, self.stride, self.padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding_mode={self.padding_mode!r}, bias={self.bias is not None}")

    @torch.no_grad()
    def vanilla_export(self) -> nn.Conv2d:
        """A plain ``nn.Conv2d`` computing the same function (the folded orthogonal kernel); a
        :class:`CircularConv2d` for circular padding."""
        training = self.training
        self.eval()
        kernel = self.weight.clone()
        self.train(training)
        conv_type = CircularConv2d if self.padding_mode == "circular" else nn.Conv2d
        conv = conv_type(self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding,
                         bias=self.bias is not None, padding_mode=self.padding_mode, device=kernel.device,
                         dtype=kernel.dtype)
        conv.weight.copy_(kernel)
        if self.bias is not None:
            conv.bias.copy_(self.bias)
        return conv
