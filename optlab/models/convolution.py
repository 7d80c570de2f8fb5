"""Convolutions as sums of shifted matrix products, for fast training on a CPU.

:func:`apply` computes what a :class:`flax.nnx.Conv` or :class:`flax.nnx.ConvTranspose`
computes, from the same parameters, without a convolution op: for every kernel tap
``t`` it takes the (strided) window of the padded input that the tap sees and multiplies
it by the ``(in, out)`` matrix ``kernel[t]``; the output is the sum over taps
(:func:`conv`). A transposed convolution is the same on the input with ``stride - 1``
zeros between its elements. The gradients are matrix products and slices too.

Why: on XLA's CPU backend the gradients of a convolution run many times slower inside a
loop body (a ``lax.scan`` or ``while_loop``) than outside one (jax-ml/jax#12868); the
forward convolution is hardly affected.
Measured on a 2-core CPU (``python -m experiments.bench_conv``, see BENCHMARKS.md), an
Adam step of the 1-D autoencoder on 128 windows took 570 ms with flax's layers inside
``optlab.train.fit`` (whose epochs are a ``lax.scan`` of steps), 107 ms as a separately
compiled step, and 59 ms inside ``fit`` with these functions; for the CNN at batch 250,
48.7 s, 2.7 s and 1.3 s. Matrix products have no such penalty, and vmapped
over runs (kernels with a leading runs axis) they stay batched matrix products instead
of the grouped convolutions that vmapping a convolution makes. On an accelerator the
convolution ops are as good; these functions are still correct there.

Supported: ``padding`` ``'SAME'``, ``'VALID'`` or explicit ``(low, high)`` pairs, any
strides, no kernel or input dilation, one feature group, no mask, inputs
``(N, *spatial, C)`` (channels last, one batch axis).
"""

from __future__ import annotations

import itertools
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax


def conv(
    x: jax.Array,
    kernel: jax.Array,
    strides: Sequence[int],
    padding: Sequence[tuple[int, int]],
    *,
    precision=None,
) -> jax.Array:
    """The cross-correlation of ``lax.conv_general_dilated`` (channels last), as a sum of
    one matrix product per kernel tap.

    Args:
      x: ``(N, *spatial, C_in)``.
      kernel: ``(*window, C_in, C_out)``.
      strides: one per spatial axis.
      padding: ``(low, high)`` zeros added on each spatial axis, non-negative.
      precision: passed to the matrix products.

    Returns:
      ``(N, *out, C_out)`` with ``out = (size + low + high - window) // stride + 1``.
    """
    window = kernel.shape[:-2]
    if x.ndim != len(window) + 2 or x.shape[-1] != kernel.shape[-2]:
        raise ValueError(
            f"inputs {x.shape} do not fit a kernel {kernel.shape}: expected "
            f"(N, {len(window)} spatial dimensions, {kernel.shape[-2]})"
        )
    if any(low < 0 or high < 0 for low, high in padding):
        raise ValueError(f"padding must be non-negative, got {padding}")
    x = jnp.pad(x, ((0, 0), *padding, (0, 0)))
    out = [(size - k) // s + 1 for size, k, s in zip(x.shape[1:-1], window, strides)]
    if min(out) < 1:
        raise ValueError(f"the window {window} is larger than the padded input {x.shape[1:-1]}")
    y = None
    for tap in itertools.product(*map(range, window)):
        seen = x[(slice(None),
                  *(slice(t, t + (o - 1) * s + 1, s) for t, o, s in zip(tap, out, strides)),
                  slice(None))]
        term = jnp.matmul(seen, kernel[tap], precision=precision)
        y = term if y is None else y + term
    return y


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
