"""Training checkpoints: the full TrainState (generator and discriminator params, both optimiser
states, the step) plus the run's random key and a little JSON metadata, with orbax's
CheckpointManager.

    ckpt = TrainCheckpoints(out / "checkpoints", save_every=1000, keep=3)
    restored = ckpt.restore_latest(abstract_state)      # None on a fresh run
    ...
    ckpt.maybe_save(step, state, key, meta)              # every `save_every` steps
    ckpt.close()

Each checkpoint is a folder `<step>/` holding `state/` (orbax PyTree) and `meta/` (JSON). orbax
writes into a temporary folder and renames it when complete, so an interrupted save leaves the
previous checkpoints intact and is ignored on restore. Saves are synchronous: when `save` returns
the checkpoint is on disk, and the state's buffers may be donated to the next step.

Resuming is exact: restore gives back the arrays bit for bit, and the training loop derives each
step's batch and key from (seed, step) alone, so k steps + save + restore + k steps equals 2k steps.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple, Optional

import jax
import numpy as np

from .step import TrainState

__all__ = ["TrainCheckpoints", "Restored", "abstract_state"]


class Restored(NamedTuple):
    step: int
    state: TrainState
    key: jax.Array          # the run's base key (typed jax.random key)
    meta: dict


def abstract_state(state: Any) -> Any:
    """A state (or a tree of ShapeDtypeStructs) -> ShapeDtypeStructs, the restore target."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), state)


class TrainCheckpoints:
    """Save every `save_every` steps into `directory`, keeping the newest `keep` checkpoints."""

    def __init__(self, directory: str | os.PathLike, *, save_every: int = 1000, keep: Optional[int] = 3):
        import orbax.checkpoint as ocp

        if save_every < 1:
            raise ValueError(f"save_every must be >= 1, got {save_every}")
        if keep is not None and keep < 1:
            raise ValueError(f"keep must be >= 1 (or None for all), got {keep}")
        self.directory = os.path.abspath(os.fspath(directory))
        self.save_every = save_every
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, save_interval_steps=save_every, create=True,
                                               enable_async_checkpointing=False)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    # -- saving
    def save(self, step: int, state: TrainState, key: jax.Array, meta: Optional[dict] = None,
             force: bool = True) -> bool:
        """Writes checkpoint `step` (force=False: only on a multiple of save_every). -> saved?"""
        import orbax.checkpoint as ocp

        tree = {"train": state, "key": jax.random.key_data(key)}
        saved = self._manager.save(
            int(step), args=ocp.args.Composite(state=ocp.args.StandardSave(tree),
                                               meta=ocp.args.JsonSave(dict(meta or {}))),
            force=force)
        self._manager.wait_until_finished()
        return bool(saved)

    def maybe_save(self, step: int, state: TrainState, key: jax.Array, meta: Optional[dict] = None) -> bool:
        return self.save(step, state, key, meta, force=False) if step % self.save_every == 0 else False

    # -- restoring
    @property
    def steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def latest_step(self) -> Optional[int]:
        return self._manager.latest_step()

    def restore(self, step: int, like_state: Any, like_key: jax.Array) -> Restored:
        """Checkpoint `step`, with the tree structure, shapes and dtypes of `like_state` (a state or
        its abstract_state) and a key of `like_key`'s implementation."""
        import orbax.checkpoint as ocp

        target = {"train": abstract_state(like_state), "key": abstract_state(jax.random.key_data(like_key))}
        out = self._manager.restore(int(step), args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
        tree = out["state"]
        key = jax.random.wrap_key_data(tree["key"], impl=jax.random.key_impl(like_key))
        return Restored(int(step), tree["train"], key, dict(out["meta"] or {}))

    def restore_latest(self, like_state: Any, like_key: jax.Array) -> Optional[Restored]:
        step = self.latest_step()
        return None if step is None else self.restore(step, like_state, like_key)

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
