"""Training data: a manifest of (audio, text[, speaker]) rows -> padded, length-bucketed `Batch`es.

One import path for the pieces, each in the file named after its concern:
  manifest.py   CSV / JSONL / folder manifests -> numbered rows
  dataset.py    rows -> tokenized, resampled `Example`s in a `Dataset` (bad rows recorded, not fatal)
  batches.py    a `Dataset` -> deterministic, length-bucketed `Batch`es
  ../audio.py   audio reading (`read_audio`) and resampling (`resample`)
"""

from ..synth.audio import read_audio, resample
from .batches import Batches
from .dataset import Dataset, Example, load_dataset
from .manifest import read_manifest

__all__ = ["Example", "Dataset", "read_manifest", "read_audio", "resample", "load_dataset", "Batches"]
