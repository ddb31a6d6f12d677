"""The VITS blocks as Flax modules, one file per transformers block, channels-last, no I/O.

    model.py         VitsModel: the blocks composed, one method per stage; init_params, param_shapes
    text_encoder.py  attention.py  duration.py  spline.py  flow.py  wavenet.py  hifigan.py
    posterior.py     layers.py (shared small layers)  alignment.py (durations -> frames)
"""

from .model import VitsModel, init_params, param_shapes

__all__ = ["VitsModel", "init_params", "param_shapes"]
