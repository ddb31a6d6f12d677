"""The pure core: functions of arrays, traceable under jit, vmap, sharding and jax.export.

    params.py    VitsParams: the param tree with its config as static pytree metadata
    stages.py    encode (stage 1), render (stage 2), generate (both): ids -> waveforms
    noise.py     noise drawn per position from a key (independent of padding, batch and window)
    conversion.py  the posterior path: posterior, flow (both ways), decode; voice conversion
    spectrogram.py VITS' linear spectrogram (the posterior encoder's input)
    windows.py   receptive fields and exact windowed rendering (streaming, bounded memory)
    sharding.py  the batch axis over a device mesh

Nothing here reads files or validates values on the host: `vits_jax.synth` does.
"""

from .conversion import convert_speaker, decode, flow, posterior
from .noise import POSTERIOR_STREAM, PRIOR_STREAM, SDP_STREAM, item_keys, positional_normal
from .spectrogram import SpectrogramConfig, linear_spectrogram
from .params import VitsParams, split_params, tree_and_config
from .stages import (COMPUTE_DTYPES, Encoded, GenerateOutput, check_dtype, encode, finish, generate,
                     render)

__all__ = ["VitsParams", "split_params", "tree_and_config", "Encoded", "GenerateOutput", "encode",
           "render", "generate", "finish", "check_dtype", "COMPUTE_DTYPES", "item_keys",
           "positional_normal", "SDP_STREAM", "PRIOR_STREAM", "POSTERIOR_STREAM", "linear_spectrogram",
           "SpectrogramConfig", "posterior", "flow", "decode", "convert_speaker"]
