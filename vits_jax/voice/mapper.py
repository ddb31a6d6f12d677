"""The one strict mapper: named source tensors -> a Flax param tree, through a name table.

A `Table` is a list of rows. A row matches a source *module* path (the tensor's name without its
last segment, e.g. `enc_p.encoder.attn_layers.0.conv_q`) and names a layer *kind* and the Flax
module path it fills. The kind says how each tensor of that module becomes a Flax leaf (layouts
below). Every source of weights (transformers names, original VITS names, the discriminator, Piper
voices, converted folders) is a table; this file holds the single matching loop and its report.

Strict: every source tensor is used, every target leaf is filled, every shape agrees, every float
is finite; otherwise one `ConversionError` lists all missing, unexpected, mis-shaped and
non-finite keys at once. Training-only subtrees (`TRAINING_ONLY`) may be absent *as a whole*: the
result then says which are absent (an inference-only voice); a partial absence is an error.

Layouts (torch -> Flax): Conv1d (out, in/g, k) -> (k, in/g, out), Conv2d (out, in, k, 1) -> (k, 1, in,
out); ConvTranspose1d (in, out, k) -> (k, in, out) (kernel[j] == weight[:, :, j]); Linear (out, in)
-> (in, out); a 1x1 Conv1d used as a linear layer (C_out, C_in, 1) -> (C_in, C_out).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np

Transform = Callable[[np.ndarray], np.ndarray]
Path = tuple[str, ...]


class ConversionError(ValueError):
    """The weights do not fit the config: lists every missing, unexpected, mis-shaped and
    non-finite key."""


# ---------------------------------------------------------------------------------- transforms
def conv_layout(w: np.ndarray) -> np.ndarray:
    """ConvNd weight (out, in/g, *k) -> kernel (*k, in/g, out)."""
    return np.transpose(w, (*range(2, w.ndim), 1, 0))


def _same(w):
    return w


def _flat(w):
    """(C, 1) or (C, 1, 1) -> (C,): weight-norm gains and the duration flow's affine vectors."""
    return np.reshape(w, (-1,))


# kind -> {source tensor name: (Flax leaf name, transform)}
KINDS: dict[str, dict[str, tuple[str, Transform]]] = {
    "conv": {"weight": ("kernel", conv_layout), "bias": ("bias", _same)},
    "conv_transpose": {"weight": ("kernel", lambda w: w.transpose(2, 0, 1)), "bias": ("bias", _same)},
    "linear": {"weight": ("kernel", lambda w: w.T), "bias": ("bias", _same)},
    # original VITS attention projections are 1x1 Conv1d: (C_out, C_in, 1)
    "conv_as_linear": {"weight": ("kernel", lambda w: w[:, :, 0].T), "bias": ("bias", _same)},
    "layer_norm": {"weight": ("scale", _same), "bias": ("bias", _same)},
    "vits_layer_norm": {"gamma": ("scale", _same), "beta": ("bias", _same)},   # original VITS LayerNorm
    "embedding": {"weight": ("embedding", _same)},
    # relative position tables (1, 2W+1, D) -> (2W+1, D)
    "attention": {"emb_rel_k": ("emb_rel_k", lambda w: w[0]), "emb_rel_v": ("emb_rel_v", lambda w: w[0])},
    # elementwise affine (C, 1) -> (C,); transformers' and the original's names
    "affine": {"translate": ("translate", _flat), "log_scale": ("log_scale", _flat)},
    "vits_affine": {"m": ("translate", _flat), "logs": ("log_scale", _flat)},
    # weight norm kept as parameters (the discriminator trains g and v): g (out, 1, ...) -> (out,)
    "weight_norm_conv": {"weight_g": ("weight_g", _flat), "weight_v": ("weight_v", conv_layout),
                         "bias": ("bias", _same)},
    # already Flax-named leaves (a converted folder read back)
    "flax": {},
}

# The weight-norm spellings: old `weight_g`/`weight_v` and torch's parametrizations.
WEIGHT_NORM_SPELLINGS = ((".weight_g", ".weight_v"),
                         (".parametrizations.weight.original0", ".parametrizations.weight.original1"))

# Subtrees the reverse (inference) pass never reads. A source may lack each group as a whole.
TRAINING_ONLY: dict[str, str] = {
    "posterior encoder": r"posterior_encoder(/.*)?",
    "duration posterior": r"duration_predictor/(post_conv_pre|post_conv_proj|post_conv_dds|post_flows_\d+)(/.*)?",
    "unused duration flow": r"duration_predictor/flows_1(/.*)?",
}


# ---------------------------------------------------------------------------------- tables
Target = Union[str, Callable[[re.Match], Optional[str]], Sequence[str], None]


@dataclasses.dataclass(frozen=True)
class Row:
    """`pattern` fullmatches a source module path; `kind` is a KINDS key; `target` the Flax module
    path: a template with `{1}`, `{2}` for the pattern's groups, a function of the match (returning
    None rejects the key), a tuple of templates (the first that the config's tree has wins), or None
    for the source path itself with `.N` indices as `_N` suffixes."""

    pattern: str
    kind: str
    target: Target = None


def flax_module_path(module_path: str) -> Path:
    """'flow.flows.2.wavenet.in_layers.0' -> ('flow', 'flows_2', 'wavenet', 'in_layers_0')."""
    out: list[str] = []
    for part in module_path.split("."):
        if part.isdigit() and out:
            out[-1] = f"{out[-1]}_{part}"
        else:
            out.append(part)
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class Table:
    """A named list of rows. `weight_norm`: "fold" (w = g v / ||v||, the generator), "keep"
    (g and v stay parameters, the discriminator) or "none". `strip_prefixes` are dropped from source names."""

    name: str
    rows: tuple[Row, ...]
    weight_norm: str = "fold"
    strip_prefixes: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "_compiled", tuple((re.compile(r.pattern), r) for r in self.rows))

    def candidates(self, key: str) -> tuple[list[Path], Transform] | None:
        """A source tensor name -> (possible Flax leaf paths, transform), or None if no row has it."""
        if self.rows and self.rows[0].kind == "flax":       # identity table: 'a/b/c' names
            return [tuple(key.split("/"))], _same
        module_path, _, name = key.rpartition(".")
        for pattern, row in self._compiled:
            match = pattern.fullmatch(module_path)
            if match is None:
                continue
            if name not in KINDS[row.kind]:
                return None
            leaf, transform = KINDS[row.kind][name]
            targets = row.target
            if targets is None:
                modules = [flax_module_path(module_path)]
            else:
                if isinstance(targets, str) or callable(targets):
                    targets = (targets,)
                modules = []
                for t in targets:
                    t = t(match) if callable(t) else t.format(*([match[0]] + list(match.groups())))
                    if t is not None:
                        modules.append(tuple(t.split("/")))
            return [m + (leaf,) for m in modules], transform
        return None


# ---------------------------------------------------------------------------------- weight norm
def weight_norm(g: np.ndarray, v: np.ndarray) -> np.ndarray:
    """w = g * v / ||v||, the norm over all dims but 0 (torch's weight_norm(dim=0)), in v's dtype."""
    norm = np.sqrt(np.sum(np.square(v, dtype=np.float64), axis=tuple(range(1, v.ndim)),
                          keepdims=True)).astype(v.dtype)
    return v * (g / norm)     # torch's order of operations


def fold_weight_norm(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Replaces weight-norm pairs (either spelling) by the weight they stand for. Unpaired halves
    stay, to be reported as unexpected keys."""
    out = dict(state_dict)
    for g_suffix, v_suffix in WEIGHT_NORM_SPELLINGS:
        for key in [k for k in state_dict if k.endswith(g_suffix)]:
            base = key[: -len(g_suffix)]
            if base + v_suffix not in state_dict:
                continue
            out[base + ".weight"] = weight_norm(state_dict[key], state_dict[base + v_suffix])
            del out[key], out[base + v_suffix]
    return out


def unify_weight_norm_spelling(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`X.parametrizations.weight.original0/1` -> `X.weight_g/weight_v` (kept unfolded)."""
    (g_old, v_old), (g_new, v_new) = WEIGHT_NORM_SPELLINGS
    out = {}
    for k, v in state_dict.items():
        if k.endswith(g_new):
            k = k[: -len(g_new)] + g_old
        elif k.endswith(v_new):
            k = k[: -len(v_new)] + v_old
        out[k] = v
    return out


# ---------------------------------------------------------------------------------- the mapper
@dataclasses.dataclass
class Mapped:
    """The mapper's result: the nested Flax tree (numpy float32) and the training-only groups the
    source lacked as a whole (empty for a full checkpoint)."""

    tree: dict
    absent: tuple[str, ...] = ()


def _flatten(tree, prefix: Path = ()) -> dict[Path, tuple[int, ...]]:
    out = {}
    for k, v in tree.items():
        if isinstance(v, Mapping):
            out.update(_flatten(v, prefix + (k,)))
        else:
            out[prefix + (k,)] = tuple(v.shape)
    return out


def _unflatten(flat: Mapping[Path, Any]) -> dict:
    tree: dict = {}
    for path, value in flat.items():
        node = tree
        for k in path[:-1]:
            node = node.setdefault(k, {})
        node[path[-1]] = value
    return tree


def _as_array(key: str, value: Any) -> np.ndarray:
    value = np.asarray(value)
    if value.dtype.kind not in "fiub":
        raise ConversionError(f"{key}: not a numeric tensor (dtype {value.dtype})")
    return value


def map_weights(state_dict: Mapping[str, Any], table: Table, expected: Mapping,
                *, optional: Mapping[str, str] = TRAINING_ONLY, source: str = "") -> Mapped:
    """Maps `state_dict` ({name: array}) through `table` onto the tree `expected` (nested dict of
    arrays or ShapeDtypeStructs: the shapes `config` calls for).

    `optional`: {group name: regex over '/'-joined Flax leaf paths}; a group entirely absent from
    the source is left out of the tree and named in `Mapped.absent`. `source` prefixes the error
    message (e.g. the file name). Raises ConversionError listing every problem at once.
    """
    state: dict[str, np.ndarray] = {}
    for key, value in state_dict.items():
        for prefix in table.strip_prefixes:
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        state[key] = _as_array(key, value)
    if table.weight_norm == "fold":
        state = fold_weight_norm(state)
    elif table.weight_norm == "keep":
        state = unify_weight_norm_spelling(state)
    target = _flatten(expected)

    params: dict[Path, np.ndarray] = {}
    unexpected, mis_shaped, non_finite = [], [], []
    seen: set[Path] = set()
    for key in sorted(state):
        found = table.candidates(key)
        paths = [p for p in found[0] if p in target] if found else []
        if not paths:
            unexpected.append(key)
            continue
        path, transform = paths[0], found[1]
        if path in seen:
            unexpected.append(f"{key} (a second source for {'/'.join(path)})")
            continue
        seen.add(path)
        value = transform(state[key])
        if value.shape != target[path]:
            mis_shaped.append(f"{key}: weights give {value.shape} for {'/'.join(path)}, "
                              f"config expects {target[path]}")
            continue
        value = np.ascontiguousarray(value, dtype=np.float32)
        if not np.all(np.isfinite(value)):
            bad = int(np.size(value) - np.count_nonzero(np.isfinite(value)))
            non_finite.append(f"{key}: {bad} of {value.size} values are NaN or infinite")
            continue
        params[path] = value

    absent = []
    groups = {name: re.compile(rx) for name, rx in optional.items()}
    for name, rx in groups.items():
        leaves = [p for p in target if rx.fullmatch("/".join(p))]
        if leaves and not any(p in seen for p in leaves):
            absent.append(name)
            for p in leaves:
                del target[p]
    missing = sorted("/".join(p) for p in target if p not in seen)
    if unexpected or missing or mis_shaped or non_finite:
        head = f"{source}: " if source else ""
        lines = [f"{head}weights ({table.name} names) do not match the config:"]
        for title, items in (("missing", missing), ("unexpected", unexpected),
                             ("mis-shaped", mis_shaped), ("non-finite", non_finite)):
            if items:
                lines.append(f"  {title} ({len(items)}):")
                lines.extend(f"    {item}" for item in items)
        raise ConversionError("\n".join(lines))
    return Mapped(_unflatten(params), tuple(absent))


# ---------------------------------------------------------------------------------- trainability
class InferenceOnlyError(ValueError):
    """Weights without the training-only parts (e.g. a Piper ONNX voice) asked to train."""


def absent_training_weights(tree: Mapping) -> list[str]:
    """Which TRAINING_ONLY groups a generator param tree (nested dict) lacks as a whole."""
    dp = tree.get("duration_predictor", {})
    stochastic = "flows_0" in dp
    absent = []
    if "posterior_encoder" not in tree:
        absent.append("posterior encoder")
    if stochastic and not any(k.startswith(("post_conv", "post_flows")) for k in dp):
        absent.append("duration posterior")
    if stochastic and "flows_1" not in dp:
        absent.append("unused duration flow")
    return absent


def check_trainable(params: Mapping) -> None:
    """Raises InferenceOnlyError when a generator tree (VitsParams or nested dict) lacks weights
    that training needs. Never fills them with random values."""
    tree = getattr(params, "tree", params)
    absent = absent_training_weights(tree)
    if absent:
        raise InferenceOnlyError(
            f"this voice holds inference weights only (it has no {', no '.join(absent)}), so it cannot "
            "be trained or fine-tuned. Fine-tune from a full checkpoint instead: a transformers model "
            "folder, an original VITS G_*.pth with its config.json, or a Piper training checkpoint "
            "(.ckpt); Piper's .onnx voices are exported without these parts.")
