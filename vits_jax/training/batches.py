"""Deterministic, length-bucketed training batches of a `Dataset`.

Shapes: B batch, T tokens (padded to a multiple of `token_multiple`), S samples (padded to a
multiple of `frame_multiple` x hop).

Examples are sorted by audio length and cut into batches of `batch_size` consecutive examples, so
each batch holds similar lengths and a corpus yields a handful of shapes (the jitted step compiles a
handful of times). Every batch has exactly `batch_size` rows (the last one is filled up with
repeats of its own examples). The batch order is a permutation drawn from (seed, epoch):
`batch_at(step)` is a pure function of the step, which makes resuming exact.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .dataset import Dataset
from .step import Batch

__all__ = ["Batches"]


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


class Batches:
    """Deterministic, bucketed batches of a Dataset.

    `batch_at(step)`: the batch of training step `step` (epoch = step // len(self); inside an
    epoch the batch order is a permutation drawn from numpy's PCG64 seeded with (seed, epoch)).
    Batches are built on demand (host numpy arrays).
    """

    def __init__(self, dataset: Dataset, batch_size: int, *, hop_length: int, seed: int = 0,
                 token_multiple: int = 16, frame_multiple: int = 32, min_frames: int = 0,
                 padding_id: int = 0):
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        if not dataset.examples:
            raise ValueError("the dataset has no usable examples")
        self.dataset, self.batch_size, self.hop, self.seed = dataset, batch_size, hop_length, seed
        self.token_multiple, self.frame_multiple = token_multiple, frame_multiple
        self.min_frames, self.padding_id = min_frames, padding_id
        order = sorted(range(len(dataset.examples)),
                       key=lambda i: (len(dataset.examples[i].waveform), len(dataset.examples[i].ids), i))
        self.groups: list[list[int]] = []
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            self.groups.append([chunk[j % len(chunk)] for j in range(batch_size)])
        self.multi_speaker = any(e.speaker is not None for e in dataset.examples)

    def __len__(self) -> int:
        return len(self.groups)

    def shape_of(self, group: Sequence[int]) -> tuple[int, int]:
        """(T, S) padded sizes of a group of example indices."""
        ex = [self.dataset.examples[i] for i in group]
        tokens = _round_up(max(len(e.ids) for e in ex), self.token_multiple)
        frames = max(_round_up(max(len(e.waveform) // self.hop for e in ex), self.frame_multiple),
                     self.min_frames)
        return tokens, frames * self.hop

    def shapes(self) -> list[tuple[int, int]]:
        return sorted({self.shape_of(g) for g in self.groups})

    def make(self, group: Sequence[int]) -> Batch:
        tokens, samples = self.shape_of(group)
        b = len(group)
        ids = np.full((b, tokens), self.padding_id, np.int32)        # (B, T)
        text_lengths = np.zeros(b, np.int32)                          # (B,)
        wav = np.zeros((b, samples), np.float32)                      # (B, S)
        audio_lengths = np.zeros(b, np.int32)                         # (B,)
        speakers = np.zeros(b, np.int32)
        for r, i in enumerate(group):
            e = self.dataset.examples[i]
            ids[r, :len(e.ids)], text_lengths[r] = e.ids, len(e.ids)
            wav[r, :len(e.waveform)], audio_lengths[r] = e.waveform, len(e.waveform)
            speakers[r] = e.speaker or 0
        return Batch(ids, text_lengths, wav, audio_lengths, speakers if self.multi_speaker else None)

    def order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.groups))

    def batch_at(self, step: int) -> Batch:
        epoch, index = divmod(int(step), len(self.groups))
        return self.make(self.groups[int(self.order(epoch)[index])])
