"""Convolutions as matrix products, for fast training on a CPU.

:func:`apply` computes what a :class:`flax.nnx.Conv` or :class:`flax.nnx.ConvTranspose`
computes, from the same parameters, without a convolution op (:func:`conv`): each kernel
tap ``t`` meets a (strided) window of the padded input, which is multiplied by the
``(in, out)`` matrix ``kernel[t]``, and the output is the sum over taps. :func:`conv`
arranges that sum in one of three ways (the windows side by side and one product; one
product per tap; all taps' products first, then shifted sums), whichever moves the
least memory for the layer's channel counts. A transposed convolution is the same on
the input with ``stride - 1`` zeros between its elements. The gradients are matrix
products and slices too.

Why: on XLA's CPU backend the gradients of a convolution run many times slower inside a
loop body (a ``lax.scan`` or ``while_loop``) than outside one (jax-ml/jax#12868); the
forward convolution is hardly affected.
``python -m experiments.bench_conv`` measures the difference inside ``optlab.train.fit``
(whose epochs are a ``lax.scan`` of steps; BENCHMARKS.md). Matrix products have no such
penalty, and vmapped
over runs (kernels with a leading runs axis) they stay batched matrix products instead
of the grouped convolutions that vmapping a convolution makes. On an accelerator the
convolution ops are as good; these functions are still correct there.

Supported: ``padding`` ``'SAME'``, ``'VALID'`` or explicit ``(low, high)`` pairs, any
strides, no kernel or input dilation, one feature group, no mask, inputs
``(N, *spatial, C)`` (channels last, one batch axis).
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax


METHODS = ("patches", "taps", "products")

# Floating-point operations that cost as much time as moving one float through memory,
# for the choice of a method; about right for the 2-core CPU of BENCHMARKS.md, where the
# small-channel layers of the autoencoders are bound by memory traffic and the CNN's
# 256 -> 128 layer by arithmetic.
_FLOPS_PER_FLOAT = 16


def conv(
    x: jax.Array,
    kernel: jax.Array,
    strides: Sequence[int],
    padding: Sequence[tuple[int, int]],
    *,
    precision=None,
    method: str | None = None,
) -> jax.Array:
    """The cross-correlation of ``lax.conv_general_dilated`` (channels last), as matrix
    products.

    Three equivalent ways, which differ in the memory they move (per output position,
    with ``T`` kernel taps, ``C`` input and ``D`` output channels):

    * ``"patches"``: gather the ``T`` shifted windows of the input side by side
      (``T * C`` channels) and multiply once by the ``(T * C, D)`` kernel; cheap when
      ``C`` is small (a one-channel image);
    * ``"taps"``: one ``(C, D)`` matrix product per tap on that tap's shifted window,
      summed; moves ``T * (C + 2 D)`` floats, and is the choice when the products
      dominate (many channels);
    * ``"products"``: multiply the unshifted input by all taps at once (``(C, T * D)``),
      then add up the ``T`` shifted slices of the product; cheap when ``D`` is small (an
      output layer with one channel), but it computes the products at every input
      position, ``prod(strides)`` times too many for a strided convolution.

    Args:
      x: ``(N, *spatial, C_in)``.
      kernel: ``(*window, C_in, C_out)``.
      strides: one per spatial axis.
      padding: ``(low, high)`` zeros added on each spatial axis, non-negative.
      precision: passed to the matrix products.
      method: one of :data:`METHODS`, or None for the one that a cost model (floats
        moved plus floating-point operations) finds cheapest; every method gives the
        same values up to rounding.

    Returns:
      ``(N, *out, C_out)`` with ``out = (size + low + high - window) // stride + 1``.
    """
    window = kernel.shape[:-2]
    if x.ndim != len(window) + 2 or x.shape[-1] != kernel.shape[-2]:
        raise ValueError(
            f"inputs {x.shape} do not fit a kernel {kernel.shape}: expected "
            f"(N, {len(window)} spatial dimensions, {kernel.shape[-2]})"
        )
    if len(strides) != len(window) or len(padding) != len(window):
        raise ValueError(
            f"expected {len(window)} strides and padding pairs, got {strides} and {padding}"
        )
    if any(low < 0 or high < 0 for low, high in padding):
        raise ValueError(f"padding must be non-negative, got {padding}")
    if method is not None and method not in METHODS:
        raise ValueError(f"method must be one of {METHODS} or None, got {method!r}")
    x = jnp.pad(x, ((0, 0), *padding, (0, 0)))
    out = [(size - k) // s + 1 for size, k, s in zip(x.shape[1:-1], window, strides)]
    if min(out) < 1:
        raise ValueError(f"the window {window} is larger than the padded input {x.shape[1:-1]}")
    taps = list(itertools.product(*map(range, window)))
    in_channels, out_channels = kernel.shape[-2:]
    if method is None:
        positions_ratio = math.prod(x.shape[1:-1]) / math.prod(out)
        method = _cheapest(len(taps), in_channels, out_channels, positions_ratio)

    def window_at(array, tap, channels=slice(None)):
        """The positions of ``array`` that tap ``tap`` meets, for every output position."""
        return array[(slice(None),
                      *(slice(t, t + (o - 1) * s + 1, s) for t, o, s in zip(tap, out, strides)),
                      channels)]

    if method == "patches":
        patches = jnp.concatenate([window_at(x, tap) for tap in taps], axis=-1)
        flat = jnp.reshape(kernel, (len(taps) * in_channels, out_channels))
        return jnp.matmul(patches, flat, precision=precision)
    if method == "taps":
        terms = (jnp.matmul(window_at(x, tap), kernel[tap], precision=precision) for tap in taps)
    else:
        # (C, T * D), tap-major columns: tap i's outputs are columns i * D ... (i + 1) * D.
        by_tap = jnp.reshape(kernel, (len(taps), in_channels, out_channels))
        flat = jnp.reshape(jnp.moveaxis(by_tap, 0, 1), (in_channels, len(taps) * out_channels))
        products = jnp.matmul(x, flat, precision=precision)
        terms = (
            window_at(products, tap, slice(i * out_channels, (i + 1) * out_channels))
            for i, tap in enumerate(taps)
        )
    return functools.reduce(operator.add, terms)


def _cheapest(taps: int, in_channels: int, out_channels: int, positions_ratio: float) -> str:
    """The method of :func:`conv` with the smallest modelled time per output position:
    floats written and read, plus floating-point operations over ``_FLOPS_PER_FLOAT``.
    ``positions_ratio`` is padded input positions per output position.

    The model of ``"products"`` charges each tap's slice with the whole ``T * D``-wide
    rows of the product, which a strided channel slice streams through memory, so that it
    wins only for one or two output channels."""
    flops = 2 * taps * in_channels * out_channels / _FLOPS_PER_FLOAT
    cost = {
        "patches": 2 * taps * in_channels + out_channels + flops,
        "taps": taps * (in_channels + 2 * out_channels) + flops,
        "products": positions_ratio * (in_channels + taps * out_channels + flops)
        + taps * taps * out_channels,
    }
    return min(cost, key=cost.get)


def _as_tuple(value, length: int) -> tuple[int, ...]:
    if value is None:
        return (1,) * length
    if isinstance(value, int):
        return (value,) * length
    return tuple(value)


def _padding(padding, length: int) -> str | list[tuple[int, int]]:
    if isinstance(padding, str):
        if padding.upper() not in ("SAME", "VALID"):
            raise ValueError(f"padding must be 'SAME', 'VALID' or (low, high) pairs, got {padding!r}")
        return padding.upper()
    if isinstance(padding, int):
        return [(padding, padding)] * length
    pairs = [(p, p) if isinstance(p, int) else tuple(p) for p in padding]
    if len(pairs) != length or any(len(p) != 2 for p in pairs):
        raise ValueError(f"padding must be 'SAME', 'VALID' or (low, high) pairs, got {padding!r}")
    return pairs


def _check(layer, spatial: int) -> None:
    ones = (1,) * spatial
    if _as_tuple(layer.kernel_dilation, spatial) != ones:
        raise ValueError(f"kernel_dilation is not supported, got {layer.kernel_dilation}")
    if _as_tuple(getattr(layer, "input_dilation", 1), spatial) != ones:
        raise ValueError(f"input_dilation is not supported, got {layer.input_dilation}")
    if getattr(layer, "feature_group_count", 1) != 1:
        raise ValueError(f"one feature group is supported, got {layer.feature_group_count}")
    if getattr(layer, "mask", None) is not None:
        raise ValueError("a kernel mask is not supported")
    if getattr(layer, "transpose_kernel", False):
        raise ValueError("transpose_kernel=True is not supported")


def _transpose_pads(kernel: int, stride: int, padding) -> tuple[int, int]:
    """Padding of the zero-interleaved input in ``lax.conv_transpose`` (``padding`` a
    string, or an explicit pair, which ``lax.conv_transpose`` uses as it is)."""
    if padding == "SAME":
        total = kernel + stride - 2
        low = kernel - 1 if stride > kernel - 1 else -(-total // 2)
        return low, total - low
    if padding == "VALID":
        total = kernel + stride - 2 + max(kernel - stride, 0)
        return kernel - 1, total - (kernel - 1)
    return padding


def apply(layer: nnx.Conv | nnx.ConvTranspose, x: jax.Array) -> jax.Array:
    """``layer(x)``, computed by :func:`conv` (matrix products) from the layer's
    parameters; see the module docstring for what is supported.

    Raises:
      TypeError: ``layer`` is neither an ``nnx.Conv`` nor an ``nnx.ConvTranspose``.
      ValueError: an unsupported option, or inputs of the wrong rank.
    """
    if not isinstance(layer, (nnx.Conv, nnx.ConvTranspose)):
        raise TypeError(f"expected an nnx.Conv or nnx.ConvTranspose, got {type(layer).__name__}")
    window = tuple(layer.kernel_size)
    spatial = len(window)
    _check(layer, spatial)
    if jnp.ndim(x) != spatial + 2:
        raise ValueError(
            f"expected inputs (N, {spatial} spatial dimensions, C), got shape {jnp.shape(x)}"
        )
    kernel = layer.kernel[...]
    bias = layer.bias[...] if layer.bias is not None else None
    x, kernel, bias = layer.promote_dtype((x, kernel, bias), dtype=layer.dtype)
    strides = _as_tuple(layer.strides, spatial)
    padding = _padding(layer.padding, spatial)
    if isinstance(layer, nnx.Conv):
        if isinstance(padding, str):
            padding = lax.padtype_to_pads(x.shape[1:-1], window, strides, padding)
        y = conv(x, kernel, strides, padding, precision=layer.precision)
    else:
        pads = [
            _transpose_pads(k, s, padding if isinstance(padding, str) else padding[i])
            for i, (k, s) in enumerate(zip(window, strides))
        ]
        # Zero-interleave and pad in one op (negative padding would crop; it is not used
        # by 'SAME' or 'VALID').
        x = lax.pad(
            x,
            jnp.zeros((), x.dtype),
            ((0, 0, 0), *((low, high, s - 1) for (low, high), s in zip(pads, strides)), (0, 0, 0)),
        )
        y = conv(x, kernel, (1,) * spatial, [(0, 0)] * spatial, precision=layer.precision)
    return y if bias is None else y + jnp.reshape(bias, (1,) * (y.ndim - 1) + (-1,))
