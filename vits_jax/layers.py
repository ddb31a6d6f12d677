"""Small layers shared by the VITS blocks, laid out channels-last.

Shapes: B batch, T time (tokens, frames or samples), C channels.
Conv kernels are stored as `(kernel, in/groups, out)` (flax's layout); the converter maps torch's
`(out, in/groups, kernel)` onto it.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

ACTIVATIONS: dict[str, Callable] = {
    "relu": jax.nn.relu,
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "tanh": jnp.tanh,
}


def conv1d(features: int, kernel_size: int, dilation: int = 1, padding: int | tuple[int, int] = 0,
           groups: int = 1, use_bias: bool = True, name: str | None = None) -> nn.Conv:
    """torch.nn.Conv1d with explicit (never "SAME") zero padding, channels-last."""
    pad = (padding, padding) if isinstance(padding, int) else tuple(padding)
    return nn.Conv(features, kernel_size=(kernel_size,), kernel_dilation=(dilation,), padding=[pad],
                   feature_group_count=groups, use_bias=use_bias, precision=None, name=name)


def layer_norm(eps: float, name: str | None = None) -> nn.LayerNorm:
    """torch.nn.LayerNorm over channels; two-pass variance as torch computes it."""
    return nn.LayerNorm(epsilon=eps, use_fast_variance=False, name=name)


def leaky_relu(x: jax.Array, slope: float) -> jax.Array:
    return jnp.where(x >= 0, x, x * slope)


class ConvTranspose1d(nn.Module):
    """torch.nn.ConvTranspose1d(in, out, kernel, stride, padding), channels-last.

    `kernel` is `(k, in, out)` with kernel[j] == torch_weight[:, :, j]. Computed as a stride-1 conv
    over the input dilated by `stride`, with the kernel flipped in time and padding k-1-p each side,
    which is exactly torch's transposed conv: (B, L, in) -> (B, (L-1)*stride - 2p + k, out).
    """

    features: int
    kernel_size: int
    stride: int
    padding: int = 0
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        in_features = x.shape[-1]
        kernel = self.param("kernel", nn.initializers.lecun_normal(),
                            (self.kernel_size, in_features, self.features))
        pad = self.kernel_size - 1 - self.padding
        y = lax.conv_general_dilated(
            x, kernel[::-1].astype(x.dtype), window_strides=(1,), padding=[(pad, pad)],
            lhs_dilation=(self.stride,), dimension_numbers=("NWC", "WIO", "NWC"))
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(x.dtype)
        return y
