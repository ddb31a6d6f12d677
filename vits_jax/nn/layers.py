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


def same_padding(kernel_size: int, dilation: int = 1) -> int:
    """Zero padding per side that keeps a stride-1 conv's length: (k - 1) * dilation / 2 (odd k)."""
    return (kernel_size * dilation - dilation) // 2


def conv1d(features: int, kernel_size: int, dilation: int = 1, padding: int | tuple[int, int] = 0,
           groups: int = 1, use_bias: bool = True, name: str | None = None, dtype=None) -> nn.Conv:
    """torch.nn.Conv1d with explicit (never "SAME") zero padding, channels-last.

    dtype: the compute dtype (inputs and the float32 params are cast to it); None keeps flax's
    promotion of the input and param dtypes."""
    pad = (padding, padding) if isinstance(padding, int) else tuple(padding)
    return nn.Conv(features, kernel_size=(kernel_size,), kernel_dilation=(dilation,), padding=[pad],
                   feature_group_count=groups, use_bias=use_bias, precision=None, name=name, dtype=dtype)


def layer_norm(eps: float, name: str | None = None) -> nn.LayerNorm:
    """torch.nn.LayerNorm over channels; two-pass variance as torch computes it."""
    return nn.LayerNorm(epsilon=eps, use_fast_variance=False, name=name)


def leaky_relu(x: jax.Array, slope: float) -> jax.Array:
    return jnp.where(x >= 0, x, x * slope)


class ConvTranspose1d(nn.Module):
    """torch.nn.ConvTranspose1d(in, out, kernel, stride, padding), channels-last.

    `kernel` is `(k, in, out)` with kernel[j] == torch_weight[:, :, j]:
    (B, L, in) -> (B, (L-1)*stride - 2p + k, out).

    Computed polyphase: output sample n takes taps j = r + stride*m (r = (n+p) mod stride) from
    inputs (n+p)//stride - m, so all `stride` phases are one ordinary conv with ceil(k/stride) taps
    and stride*out output channels, interleaved afterwards. The textbook form (a conv over the
    input dilated by `stride`) multiplies stride-1 inserted zeros out of every stride and costs
    stride times the FLOPs; both agree with torch to float32 round-off.
    """

    features: int
    kernel_size: int
    stride: int
    padding: int = 0
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b, length, in_features = x.shape
        k, s, p, out = self.kernel_size, self.stride, self.padding, self.features
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, in_features, out))
        taps = -(-k // s)                                                      # M = ceil(k / s)
        w = jnp.pad(kernel.astype(x.dtype), ((0, taps * s - k), (0, 0), (0, 0)))
        w = w.reshape(taps, s, in_features, out)                               # w[m, r] = kernel[r + s*m]
        w = w[::-1].transpose(0, 2, 1, 3).reshape(taps, in_features, s * out)  # (M, in, s*out)
        z = lax.conv_general_dilated(x, w, window_strides=(1,), padding=[(taps - 1, taps - 1)],
                                     dimension_numbers=("NWC", "WIO", "NWC"))  # (B, L+M-1, s*out)
        y = z.reshape(b, (length + taps - 1) * s, out)                         # index = n + p
        y = y[:, p:p + (length - 1) * s - 2 * p + k]
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (out,)).astype(x.dtype)
        return y
