"""The training loop behind `vits-jax train`: fine-tune (or continue training) a VITS model on a
manifest of recordings.

    run = RunConfig(model="facebook/mms-tts-eng", data="corpus/train.csv", out="runs/eng", steps=2000)
    result = train(run)          # -> runs/eng/model/, loadable with vits_jax.load

Output folder:
    losses.csv         one row per step: step, seconds since start, every metric of train_step
    losses.png         the loss curves (when matplotlib is installed), redrawn at every save
    skipped.csv        manifest rows that were skipped and why
    samples/           step_XXXXXXX.wav every `sample_every` steps: the sample text spoken
    checkpoints/       full training state every `save_every` steps (training/checkpoints.py)
    tensorboard/       scalars, when tensorboardX is installed
    model/             the final generator, config and tokenizer files (vits_jax.save)

Running again with the same folder resumes from the newest checkpoint (losses.csv is cut back to
it). Step i trains on `Batches.batch_at(i)` with key `fold_in(key(seed), i)`, so a resumed run
follows the same trajectory as an uninterrupted one.

MMS checkpoints hold the generator only: the discriminator starts from random weights (with
`discriminator_scale` dividing its widths, for small models and smoke tests), or from PyTorch
discriminator weights given as `discriminator` (discriminators.load_discriminator).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import os
import sys
import time
from typing import Callable, Optional

import jax
import numpy as np

from ..voice.checkpoint import VitsParams, save
from ..synth.progress import progress_bar
from .checkpoints import TrainCheckpoints
from .data import Batches, load_dataset
from .discriminators import DiscriminatorConfig, init_discriminator, load_discriminator
from .spectrogram import SpectrogramConfig
from .step import FAST_COMPILE, TrainConfig, TrainState, make_train_step

__all__ = ["RunConfig", "RunResult", "train", "step_key"]


@dataclasses.dataclass
class RunConfig:
    model: str                           # converted folder, transformers folder or hub id
    data: str                            # manifest (CSV or JSONL), or a folder of NAME.wav + NAME.txt
    out: str                             # output folder
    steps: int = 1000
    batch_size: int = 8
    learning_rate: float = 2e-4
    save_every: int = 500
    sample_every: int = 500
    keep: int = 3                        # training checkpoints kept
    seed: int = 0
    max_seconds: float = 20.0            # longer clips are skipped
    segment_frames: int = 32             # decoder training window (VITS: 32 frames)
    n_mels: int = 80
    discriminator_scale: int = 1         # divide the discriminator's widths (1: VITS' discriminator)
    discriminator: Optional[str] = None  # PyTorch discriminator weights to start from (else random)
    max_grad_norm: Optional[float] = None
    sample_text: Optional[str] = None    # default: the text of the first usable example
    fast_compile: bool = False           # low XLA optimisation: quicker start, slower steps
    compute_dtype: Optional[str] = None  # "bfloat16": decoder + discriminator in bf16 (params float32)
    devices: Optional[int] = None        # local devices to train on, data-parallel (None: all of them)
    progress: bool = True                # tqdm bar when stderr is a terminal


@dataclasses.dataclass
class RunResult:
    step: int                 # steps done in total
    steps_run: int            # steps done by this call
    seconds: float            # wall time of the steps after the first (compilation excluded)
    model_dir: str
    skipped: list

    @property
    def steps_per_second(self) -> float:
        return (self.steps_run - 1) / self.seconds if self.steps_run > 1 and self.seconds > 0 else float("nan")


@functools.lru_cache(maxsize=4)
def _jitted_step(config, train_config: TrainConfig, fast_compile: bool, devices: tuple):
    """One jitted step per (configs, compile mode, devices), so a second run in this process (a
    resume, a notebook cell run again) reuses the compiled programs."""
    return make_train_step(config, train_config, devices=devices,
                           compiler_options=FAST_COMPILE if fast_compile else None)


def _devices(run: RunConfig) -> tuple:
    """The local devices of a run; the batch must split evenly over them."""
    local = jax.local_devices()
    n = len(local) if run.devices is None else run.devices
    if not 1 <= n <= len(local):
        raise ValueError(f"devices must be between 1 and the {len(local)} local device(s), got {run.devices}")
    if run.batch_size % n:
        raise ValueError(f"the batch size ({run.batch_size}) must be a multiple of the number of devices "
                         f"({n}) for data-parallel training: change --batch-size or pass --devices")
    return tuple(local[:n])


def step_key(base: jax.Array, step: int) -> jax.Array:
    """The key of training step `step`."""
    return jax.random.fold_in(base, step)


class _Log:
    """losses.csv (+ TensorBoard when tensorboardX is importable)."""

    def __init__(self, out: str, resume_step: int):
        self.path = os.path.join(out, "losses.csv")
        self.rows: list[dict] = []
        if resume_step and os.path.isfile(self.path):
            with open(self.path, newline="") as f:
                self.rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        elif os.path.isfile(self.path):
            os.remove(self.path)
        self.fields = list(self.rows[0]) if self.rows else None
        self._rewrite()
        try:
            from tensorboardX import SummaryWriter
            self.tb = SummaryWriter(os.path.join(out, "tensorboard"))
        except ImportError:
            self.tb = None

    def _rewrite(self):
        if self.fields is None:
            return
        tmp = self.path + ".tmp"
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, self.fields)
            w.writeheader()
            w.writerows(self.rows)
        os.replace(tmp, self.path)

    def add(self, step: int, seconds: float, metrics: dict):
        row = {"step": step, "seconds": f"{seconds:.3f}"}
        row.update({k: f"{float(v):.6g}" for k, v in sorted(metrics.items())})
        self.rows.append(row)
        if self.fields is None:
            self.fields = list(row)
            self._rewrite()
        else:
            with open(self.path, "a", newline="") as f:
                csv.DictWriter(f, self.fields).writerow(row)
        if self.tb is not None:
            for k, v in metrics.items():
                self.tb.add_scalar(f"train/{k}", float(v), step)

    def plot(self, path: str):
        """Loss curves as a PNG, when matplotlib is importable."""
        if not self.rows:
            return
        try:
            # A Figure with its own Agg canvas: pyplot (and the process-wide backend a notebook
            # has chosen) is left alone.
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError:
            return
        steps = [int(r["step"]) for r in self.rows]
        names = [("mel", "kl", "duration"), ("generator", "discriminator"), ("adversarial", "feature")]
        fig = Figure(figsize=(4 * len(names), 3))
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, len(names))
        for ax, group in zip(axes, names):
            for n in group:
                if n in self.rows[0]:
                    ax.plot(steps, [float(r[n]) for r in self.rows], label=n)
            ax.set_xlabel("step")
            ax.legend()
        fig.tight_layout()
        fig.savefig(path + ".tmp.png", dpi=80)
        os.replace(path + ".tmp.png", path)

    def close(self):
        if self.tb is not None:
            self.tb.close()


def train(run: RunConfig, *, echo: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> RunResult:
    import dataclasses

    from ..synth import audio
    from ..synth.voice import Voice   # samples are spoken as `vits-jax say` speaks

    if run.steps < 1 or run.batch_size < 1 or run.save_every < 1 or run.sample_every < 1:
        raise ValueError("--steps, --batch-size, --save-every and --sample-every must be >= 1")
    if not run.learning_rate > 0:
        raise ValueError(f"the learning rate must be positive, got {run.learning_rate}")
    if not os.path.exists(run.data):
        raise FileNotFoundError(f"manifest {run.data} not found")
    devices = _devices(run)
    voice = Voice.load(run.model)
    folder, params, tokenizer = voice.source, voice.params, voice.tokenizer
    config = params.config
    out = os.path.abspath(run.out)
    os.makedirs(os.path.join(out, "samples"), exist_ok=True)

    dataset = load_dataset(run.data, tokenizer, sampling_rate=config.sampling_rate,
                           hop_length=config.hop_length, num_speakers=config.num_speakers,
                           max_seconds=run.max_seconds)
    with open(os.path.join(out, "skipped.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["row", "reason"])
        w.writerows(dataset.skipped)
    if not dataset.examples:
        raise ValueError(f"{run.data}: no usable rows ({len(dataset.skipped)} skipped, see "
                         f"{os.path.join(out, 'skipped.csv')})")
    batches = Batches(dataset, run.batch_size, hop_length=config.hop_length, seed=run.seed,
                      min_frames=run.segment_frames, padding_id=tokenizer.padding_id)
    echo(f"data: {len(dataset)} clips, {dataset.seconds:.1f} s, {len(dataset.skipped)} rows skipped, "
         f"{len(batches)} batches of {run.batch_size} per epoch, shapes (tokens, samples) {batches.shapes()}")

    spec = SpectrogramConfig.from_vits(config, n_mels=run.n_mels)
    disc = DiscriminatorConfig()
    if run.discriminator_scale > 1:
        disc = disc.scaled(run.discriminator_scale)
    train_config = TrainConfig(learning_rate=run.learning_rate, decay_every=len(batches),
                               segment_frames=run.segment_frames, spectrogram=spec, discriminator=disc,
                               max_grad_norm=run.max_grad_norm, compute_dtype=run.compute_dtype)
    base = jax.random.key(run.seed)
    k_disc = jax.random.fold_in(base, 2 ** 32 - 1)   # a key no training step uses
    if run.discriminator is not None:
        if not os.path.isfile(run.discriminator):
            raise FileNotFoundError(f"discriminator weights {run.discriminator} not found")
        disc_params = load_discriminator(run.discriminator, disc)
        echo(f"discriminator: {run.discriminator}")
    else:
        disc_params = init_discriminator(disc, k_disc)
    state = TrainState.create(params.tree, disc_params, train_config)

    ckpt = TrainCheckpoints(os.path.join(out, "checkpoints"), save_every=run.save_every, keep=run.keep)
    start = 0
    restored = ckpt.restore_latest(state, base)
    if restored is not None:
        state, base, start = restored.state, restored.key, restored.step
        echo(f"resuming from {ckpt.directory}/{start}")
    meta = {"seed": run.seed, "model": run.model, "data": os.path.abspath(run.data)}
    log = _Log(out, start)
    step_fn = _jitted_step(config, train_config, run.fast_compile, devices)
    if len(devices) > 1:
        echo(f"data-parallel over {len(devices)} devices: {run.batch_size // len(devices)} clips each")
    sample_text = run.sample_text or dataset.examples[0].text

    def sample(step: int):
        now = dataclasses.replace(voice, params=VitsParams(state.generator, config))
        speech = now.speak(sample_text, seed=run.seed)
        audio.write_wav(os.path.join(out, "samples", f"step_{step:07d}.wav"), speech.waveform,
                        speech.sampling_rate)

    bar = progress_bar(run.steps, run.progress, unit="step", initial=start, dynamic_ncols=True)
    t0 = time.perf_counter()
    t_first = None
    try:
        for i in range(start, run.steps):
            state, metrics = step_fn(state, batches.batch_at(i), step_key(base, i))
            metrics = jax.device_get(metrics)
            if t_first is None:
                t_first = time.perf_counter()
            done = i + 1
            log.add(done, time.perf_counter() - t0, metrics)
            bar.update(1)
            bar.set_postfix(mel=f"{float(metrics['mel']):.3f}", gen=f"{float(metrics['generator']):.3g}",
                            disc=f"{float(metrics['discriminator']):.3g}")
            if not all(np.isfinite(float(v)) for v in metrics.values()):
                raise FloatingPointError(f"step {done}: non-finite loss {metrics}")
            if done % run.sample_every == 0:
                sample(done)
            if ckpt.maybe_save(done, state, base, meta):
                log.plot(os.path.join(out, "losses.png"))
        seconds = time.perf_counter() - (t_first or t0)
    finally:
        bar.close()
        log.close()
    steps_run = run.steps - start
    if steps_run > 0 and run.steps % run.save_every:
        ckpt.save(run.steps, state, base, meta)
    ckpt.close()
    if steps_run > 0 and run.steps % run.sample_every:
        sample(run.steps)
    log.plot(os.path.join(out, "losses.png"))
    model_dir = os.path.join(out, "model")
    save(VitsParams(state.generator, config), model_dir, tokenizer_dir=folder,
         overwrite=True)   # OUT/model is this run's own output (a resumed run writes it again)
    result = RunResult(run.steps, steps_run, seconds if steps_run else 0.0, model_dir, dataset.skipped)
    if steps_run > 1:
        echo(f"{steps_run} steps, {result.steps_per_second:.2f} steps/s after the first (compiling) step")
    echo(f"wrote {model_dir}")
    return result
