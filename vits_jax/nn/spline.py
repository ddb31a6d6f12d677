"""Piecewise rational-quadratic spline (Durkan et al. 2019) as transformers' VITS uses it.

Pure `jnp`: every element goes through the spline and `jnp.where` picks the identity outside
[-tail_bound, tail_bound], so shapes never depend on data (jit/vmap safe). The spline's input is
replaced by 0 outside the interval so the discarded branch stays finite (a NaN there would still
poison gradients through `where`); `jnp.clip` would do too, but halves the gradient at the bounds.

Shapes: `...` any leading dims, K bins. inputs (...), widths/heights (..., K), derivatives (..., K-1).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

DEFAULT_MIN_BIN_WIDTH = 1e-3
DEFAULT_MIN_BIN_HEIGHT = 1e-3
DEFAULT_MIN_DERIVATIVE = 1e-3


def _knots(unnormalized, minimum, bound):
    """Softmaxed bin sizes -> knot positions (..., K+1) from -bound to bound, and bin sizes (..., K)."""
    num_bins = unnormalized.shape[-1]
    sizes = jax.nn.softmax(unnormalized, axis=-1)
    sizes = minimum + (1 - minimum * num_bins) * sizes
    knots = jnp.cumsum(sizes, axis=-1)
    knots = jnp.pad(knots, [(0, 0)] * (knots.ndim - 1) + [(1, 0)])
    knots = 2 * bound * knots - bound
    knots = knots.at[..., 0].set(-bound).at[..., -1].set(bound)
    return knots, knots[..., 1:] - knots[..., :-1]


def _gather(values, index):
    return jnp.take_along_axis(values, index[..., None], axis=-1)[..., 0]


def rational_quadratic_spline(inputs, unnormalized_widths, unnormalized_heights,
                              unnormalized_derivatives, reverse=False, tail_bound=5.0,
                              min_bin_width=DEFAULT_MIN_BIN_WIDTH,
                              min_bin_height=DEFAULT_MIN_BIN_HEIGHT,
                              min_derivative=DEFAULT_MIN_DERIVATIVE):
    """Spline on [-tail_bound, tail_bound]; derivatives here are (..., K+1), knots included.

    Returns (outputs, log|d outputs / d inputs|), both shaped like inputs. In reverse, the log-det
    is that of the inverse map (transformers' sign convention).
    """
    num_bins = unnormalized_widths.shape[-1]
    if min_bin_width * num_bins > 1.0 or min_bin_height * num_bins > 1.0:
        raise ValueError(f"minimal bin size too large for {num_bins} bins")

    cumwidths, widths = _knots(unnormalized_widths, min_bin_width, tail_bound)
    cumheights, heights = _knots(unnormalized_heights, min_bin_height, tail_bound)
    derivatives = min_derivative + jax.nn.softplus(unnormalized_derivatives)

    locations = cumheights if reverse else cumwidths
    locations = locations.at[..., -1].add(1e-6)
    bin_idx = jnp.sum(inputs[..., None] >= locations, axis=-1) - 1
    bin_idx = jnp.clip(bin_idx, 0, num_bins - 1)

    input_cumwidths = _gather(cumwidths, bin_idx)
    input_bin_widths = _gather(widths, bin_idx)
    input_cumheights = _gather(cumheights, bin_idx)
    input_delta = _gather(heights / widths, bin_idx)
    input_derivatives = _gather(derivatives, bin_idx)
    input_derivatives_plus_one = _gather(derivatives[..., 1:], bin_idx)
    input_heights = _gather(heights, bin_idx)

    intermediate1 = input_derivatives + input_derivatives_plus_one - 2 * input_delta
    if not reverse:
        theta = (inputs - input_cumwidths) / input_bin_widths
    else:
        # Root of a quadratic; the discriminant is >= 0 in exact arithmetic, clamp round-off.
        intermediate2 = inputs - input_cumheights
        intermediate3 = intermediate2 * intermediate1
        a = input_heights * (input_delta - input_derivatives) + intermediate3
        b = input_heights * input_derivatives - intermediate3
        c = -input_delta * intermediate2
        discriminant = jnp.maximum(b ** 2 - 4 * a * c, 0.0)
        theta = (2 * c) / (-b - jnp.sqrt(discriminant))

    theta_one_minus_theta = theta * (1 - theta)
    denominator = input_delta + intermediate1 * theta_one_minus_theta
    derivative_numerator = input_delta ** 2 * (
        input_derivatives_plus_one * theta ** 2
        + 2 * input_delta * theta_one_minus_theta
        + input_derivatives * (1 - theta) ** 2)
    log_abs_det = jnp.log(derivative_numerator) - 2 * jnp.log(denominator)
    if not reverse:
        numerator = input_heights * (input_delta * theta ** 2 + input_derivatives * theta_one_minus_theta)
        return input_cumheights + numerator / denominator, log_abs_det
    return theta * input_bin_widths + input_cumwidths, -log_abs_det


def unconstrained_rational_quadratic_spline(inputs, unnormalized_widths, unnormalized_heights,
                                            unnormalized_derivatives, reverse=False, tail_bound=5.0,
                                            min_bin_width=DEFAULT_MIN_BIN_WIDTH,
                                            min_bin_height=DEFAULT_MIN_BIN_HEIGHT,
                                            min_derivative=DEFAULT_MIN_DERIVATIVE):
    """Spline inside [-tail_bound, tail_bound], identity (log-det 0) outside.

    inputs (...), unnormalized_widths/heights (..., K), unnormalized_derivatives (..., K-1).
    """
    inside = (inputs >= -tail_bound) & (inputs <= tail_bound)
    # Boundary derivatives are fixed so the spline meets the identity tails with slope 1.
    constant = math.log(math.exp(1 - min_derivative) - 1)
    pad = [(0, 0)] * (unnormalized_derivatives.ndim - 1) + [(1, 1)]
    unnormalized_derivatives = jnp.pad(unnormalized_derivatives, pad, constant_values=constant)
    outputs, log_abs_det = rational_quadratic_spline(
        jnp.where(inside, inputs, 0.0), unnormalized_widths, unnormalized_heights,
        unnormalized_derivatives, reverse=reverse, tail_bound=tail_bound,
        min_bin_width=min_bin_width, min_bin_height=min_bin_height, min_derivative=min_derivative)
    return jnp.where(inside, outputs, inputs), jnp.where(inside, log_abs_det, 0.0)
