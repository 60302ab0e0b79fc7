"""Typed run configuration: dataclasses with defaults, YAML loading, dotted CLI overrides.

A YAML file may omit any field. Every key is checked against the schema, so a typo fails at
load time with the nearest valid key instead of being ignored; every value is checked against
its annotated type (Literal types are the enumerations) and its range. Defaults follow
docs/method.md §10 and the decisions of §14.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import (TYPE_CHECKING, Any, Literal, Optional, Union, get_args, get_origin,
                    get_type_hints)

import yaml

from synsim.files import write_text

from .errors import ConfigError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

# The named configs ship inside the package (package data), so `python -m artsy.run cifar100`
# works from any directory after a plain `pip install`, editable or not.
CONFIG_DIR = resources.files(__package__) / "configs"
# The override of every frozen row: the sub-networks are never trained, so each stays E_0 and
# a gate routes between copies of the frozen backbone (what the trained sub-networks add)
UNTRAINED = "train.epochs=0"


def config_names() -> list[str]:
    """The names `load_config` accepts without a path: the package's configs/*.yaml."""
    return sorted(p.name.removesuffix(".yaml") for p in CONFIG_DIR.iterdir()
                  if p.name.endswith(".yaml"))


def source_checkout() -> Optional[Path]:
    """The source tree this package runs from (a folder with pyproject.toml above artsy/), or
    None when it is installed; relative data paths may also resolve against it."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() else None


def _f(default: Any, lo: Optional[float] = None, hi: Optional[float] = None) -> Any:
    """A field with an inclusive numeric range, checked at load time."""
    return field(default=default, metadata={"range": (lo, hi)})


@dataclass
class SyntheticConfig:
    """The synthetic dataset (data.name: synthetic): class-coloured gratings plus noise."""

    n_classes: int = _f(10, 1)
    train_per_class: int = _f(50, 1)
    test_per_class: int = _f(20, 1)
    image_size: int = _f(32, 1)  # native size; the transforms resize to data.image_size
    seed: int = 0  # the content's seed, independent of the class-order seed
    noise: float = _f(0.1, 0.0)


@dataclass
class DataConfig:
    name: str = "cifar100"  # a key of artsy.data.DATASETS, checked at load time
    root: Optional[str] = "data"  # folder or .tar.gz; unused for synthetic and digits
    image_size: int = _f(224, 1)
    init_cls: int = _f(10, 1)  # CIFAR-100 B0 Inc10, Artsy's "10 steps"
    increment: int = _f(10, 1)
    class_order: Union[Literal["seed", "identity"], list[int]] = "seed"
    seed: int = 1993  # class-order seed (EASE / PILOT)
    tiny_protocol: Literal["b100", "b0"] = "b100"
    max_per_class_train: Optional[int] = _f(None, 1)
    max_per_class_test: Optional[int] = _f(None, 1)
    num_workers: int = _f(0, 0)
    cache_dir: Optional[str] = None  # None: ~/.cache/artsy
    download: bool = False  # only CIFAR-100 and CIFAR-10 can be downloaded (torchvision)
    # "none": raw [0, 1] pixels, as EASE feeds its ViTs; "backbone": the mean/std the backbone's
    # weights were trained with (e.g. EfficientNet-Lite's (255x - 127)/128)
    normalize: Literal["none", "backbone"] = "none"
    # > 0: evaluate on this share of each class's training images (seeded by data.seed) instead
    # of the test split, to choose hyper-parameters on training data only (artsy.data.holdout)
    holdout: float = _f(0.0, 0.0, 0.9)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass
class BackboneConfig:
    name: str = "vit_base_patch16_224_in21k"
    pretrained: bool = True
    checkpoint: Optional[str] = None  # local weights file; wins over the hub
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. tiny test ViTs


@dataclass
class AdapterConfig:
    r: int = _f(64, 1)
    scale: float = 0.1
    dropout: float = _f(0.1, 0.0, 1.0)


@dataclass
class TrainConfig:
    epochs: int = _f(20, 0)
    batch_size: int = _f(48, 1)
    lr: float = _f(0.025, 0.0)
    momentum: float = _f(0.9, 0.0, 1.0)
    weight_decay: float = _f(5e-4, 0.0)
    min_lr: float = _f(0.0, 0.0)
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    scheduler: Literal["cosine", "constant"] = "cosine"
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    amp: Literal["bf16", "fp16", "none"] = "bf16"
    # false: adapters train on the eval transform (no random crop or flip): the demo's small-data
    # choice (docs/method.md §5.6), and to compare a run on several processes with a
    # single-process one (docs/architecture.md §5.8)
    augment: bool = True
    # null: no clipping (EASE). A value: each step's gradient norm over the adapters and the head
    # is clipped to it, which kept the demo's high lr from wrecking a sub-network at 500 images
    # per class (the demo's choice, docs/method.md §5.6)
    clip_grad_norm: Optional[float] = _f(None, 0.0)


@dataclass
class NgaiConfig:
    """The receptor-rule gate (docs/architecture.md §3; synsim.rule.RuleParams)."""

    # presynaptic drive pre_t: a joint T-way scorer on h0 from exact running class statistics,
    # pre_t = task t's softmax mass (artsy.gates.scorers): "ridge" (RanPAC-style) or "lda"
    # (shared shrunk covariance); or "mlp", the paper's one-vs-rest MLP synapses. Defaults
    # chosen on held-out training images (benchmarks/gate_signals.py, docs/method.md §8.3)
    pre: Literal["ridge", "lda", "mlp"] = "ridge"
    ridge_lambda: float = _f(2.0, 0.0)  # ridge: lambda / mean diagonal of the Gram matrix
    ridge_temperature: float = _f(0.05, 0.0)  # ridge: softmax over the class scores
    lda_shrinkage: float = _f(0.7, 0.0, 1.0)  # lda: weight of the identity in the covariance
    lda_temperature: float = _f(3.0, 0.0)  # lda: softmax over the class scores
    random_features: int = _f(0, 0)  # ridge/lda: seeded ReLU random projection width; 0: h0
    # h0 as this gate reads it: E_0(x), followed by the global average of the outputs of the
    # backbone's last k stages, from the same pass (AdaptedNetwork.frozen_feature; the class means
    # of h0 that prototype_share and prototypes.beta read are of the same h0); 0: E_0(x) only.
    # Backbone-specific: the demo config sets it (benchmarks/gate_signals.py)
    frozen_stages: int = _f(0, 0)
    projection_seed: int = 0
    depolarisation: Literal["prototype_share", "own_prototype", "own_entropy",
                            "own_similarity"] = "prototype_share"
    prototype_temperature: float = _f(0.1, 0.0)  # softmax over prototype similarities
    target_open_rate: float = _f(0.9, 0.0, 1.0)  # calibration: share of own inputs that open
    calibrate: bool = True
    delta_ms: Optional[float] = _f(None, 0.0)  # presentation window; null: calcium peak time
    v_rest_mV: float = -70.0
    dv_mV: float = 70.0
    carry_over: bool = True


@dataclass
class SynapseConfig:
    gate: str = "ngai"  # a name in artsy.gates.GATES, checked in _check_consistency
    hidden: int = _f(256, 1)
    epochs: int = _f(2, 0)
    lr: float = _f(1e-3, 0.0)
    batch_size: int = _f(256, 1)
    thr: float = _f(0.5, 0.0, 1.0)
    negatives: Literal["cache", "gaussian"] = "cache"
    retrain: Literal["all", "new_only"] = "all"
    fallback: Literal["argmax", "none"] = "argmax"
    # synapse log: record every k-th training presentation; null: k = ceil(N_t / 500), so that
    # each task adds at most ~500 rows to synapses.nc
    record_every: Optional[int] = _f(None, 1)
    ngai: NgaiConfig = field(default_factory=NgaiConfig)


@dataclass
class PrototypeConfig:
    alpha: float = _f(0.1, 0.0)
    divide_alpha_by_tasks: bool = True  # EASE's code divides by T; the paper does not
    beta: float = _f(0.0, 0.0)


@dataclass
class RanpacConfig:
    """The RanPAC baseline (method: ranpac; artsy.methods.ranpac): a seeded random ReLU
    projection of h0 and a ridge read-out of its running Gram statistics."""

    m: int = _f(5000, 1)  # projection width M (RanPAC uses 10000 on ViT-B; 5000 suits the demo)
    ridge: Optional[float] = _f(None, 0.0)  # lambda; null: chosen per task on held-out inputs
    val_share: float = _f(0.2, 0.0, 1.0)  # share of the task's training inputs held out for it
    # the read-out solves with lambda >= ridge_floor * trace(G): below it the float64 solve of the
    # rank-deficient G (fewer inputs than M) returns noise; 0 keeps RanPAC's grid as it is
    ridge_floor: float = _f(1e-12, 0.0)


@dataclass
class RunConfig:
    name: str = "run"
    out_dir: str = "runs"
    seed: int = 1993
    eval_batch_size: int = _f(128, 1)
    save_checkpoints: bool = True


@dataclass
class Config:
    # what learns (artsy.methods.METHODS): artsy (EASE sub-networks behind synapse.gate), or a
    # frozen-backbone baseline without adapters or gates (simplecil, ranpac)
    method: str = "artsy"
    data: DataConfig = field(default_factory=DataConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    synapse: SynapseConfig = field(default_factory=SynapseConfig)
    prototypes: PrototypeConfig = field(default_factory=PrototypeConfig)
    ranpac: RanpacConfig = field(default_factory=RanpacConfig)
    run: RunConfig = field(default_factory=RunConfig)
    # the seeds of `python -m artsy.run CONFIG --seeds` (artsy.seeds): one run each
    seeds: list[int] = field(default_factory=lambda: [1993, 1994, 1995])


# ----------------------------------------------------------------------------------------------
# Loading and overrides


def config_path(name_or_path: Union[str, os.PathLike]) -> Union[Path, Traversable]:
    """A file, or a name with .yaml/.yml or a slash, is a path; otherwise the package's
    configs/NAME.yaml."""
    p = Path(name_or_path).expanduser()
    if p.is_file() or p.suffix in (".yaml", ".yml") or len(p.parts) > 1:
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        return p
    named = CONFIG_DIR / f"{p}.yaml"
    if not named.is_file():
        raise ConfigError(f"no config named {str(name_or_path)!r}: expected {named} (available: "
                          f"{', '.join(config_names()) or 'none'}), or pass a path to a YAML file")
    return named


def load_config(name_or_path: Union[str, os.PathLike],
                overrides: Sequence[str] = ()) -> Config:
    """Load the package's configs/NAME.yaml or a YAML path, then apply `key.sub=value` overrides
    in order."""
    path = config_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {' '.join(str(e).split())}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config file {path} ({type(e).__name__}: "
                          f"{' '.join(str(e).split())[:120]}): give a readable YAML file") from None
    if raw is None:
        raise ConfigError(f"{path} is empty: give the keys to change (e.g. data.name: cifar10), "
                          "or use a config name such as cifar100")
    try:
        cfg = from_dict(_without_retired_keys(raw))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    return apply_overrides(cfg, overrides)


# Keys removed from the schema, with the one value they could take: the config.yaml of a run
# written before their removal still holds them, and that run must stay resumable.
RETIRED_KEYS = {("synapse", "input"): "h0", ("prototypes", "fusion"): "concat"}
# Keys added with a default that changes what a run does, with the behaviour before them. A run's
# config.yaml is a full dump of the config of its day: a key it lacks takes that old value.
ADDED_KEYS = {("synapse", "ngai", "pre"): "mlp", ("train", "augment"): True,
              ("ranpac", "ridge_floor"): 0.0}


def load_run_config(path: Union[str, os.PathLike]) -> Config:
    """A run directory's config.yaml, as the run was made (see ADDED_KEYS)."""
    config = load_config(path)
    raw = yaml.safe_load(Path(path).read_text())  # a mapping: load_config refused the rest
    overrides = []
    for keys, before in ADDED_KEYS.items():
        section = raw
        for k in keys[:-1]:
            section = section.get(k) if isinstance(section, dict) else None
        if isinstance(section, dict) and keys[-1] not in section:
            overrides.append(f"{'.'.join(keys)}={before}")
    return apply_overrides(config, overrides)


def _without_retired_keys(raw: Any) -> Any:
    """`raw` without the retired keys that hold their only former value (any other value is
    still refused as an unknown key)."""
    if not isinstance(raw, dict):
        return raw
    for (section, key), only in RETIRED_KEYS.items():
        sub = raw.get(section)
        if isinstance(sub, dict) and sub.get(key, None) == only:
            raw = {**raw, section: {k: v for k, v in sub.items() if k != key}}
    return raw


def apply_overrides(cfg: Config, overrides: Sequence[str]) -> Config:
    """Return a new Config with each `a.b.c=value` applied; the value is parsed as YAML."""
    d = to_dict(cfg)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text  # e.g. an unquoted string with a colon: keep it as written
        _set_dotted(d, key, value)
    return from_dict(d)


def _set_dotted(d: dict, key: str, value: Any) -> None:
    cls: Any = Config
    parts = key.split(".")
    for i, part in enumerate(parts):
        here = ".".join(parts[: i + 1])
        hints = get_type_hints(cls)
        if part not in hints:
            raise _unknown_key(key if i < len(parts) - 1 else here)
        tp = hints[part]
        last = i == len(parts) - 1
        if dataclasses.is_dataclass(tp):
            if last:
                if not isinstance(value, dict):
                    raise ConfigError(f"config key {here!r} is a section: set its fields "
                                      f"({here}.<field>=...) or give a mapping, got {value!r}")
                d[part] = {**d[part], **value}
                return
            d, cls = d[part], tp
        elif get_origin(tp) is dict and not last:  # free-form mapping, e.g. model_kwargs.depth
            sub = d[part]
            for k in parts[i + 1: -1]:
                sub = sub.setdefault(k, {})
                if not isinstance(sub, dict):
                    raise ConfigError(f"cannot set {key!r}: {k!r} is not a mapping")
            sub[parts[-1]] = value
            return
        elif not last:
            raise ConfigError(f"config key {here!r} is a value, not a section: cannot set {key!r}")
        else:
            d[part] = value


def _all_keys(cls: Any = Config, prefix: str = "") -> list[str]:
    keys = []
    for name, tp in get_type_hints(cls).items():
        keys.append(prefix + name)
        if dataclasses.is_dataclass(tp):
            keys += _all_keys(tp, f"{prefix}{name}.")
    return keys


def _unknown_key(key: str) -> ConfigError:
    """The error for an unknown dotted key, naming the nearest valid key when there is one."""
    keys = _all_keys()
    section, _, leaf = key.rpartition(".")
    if section and section not in keys:  # a misspelt section: compare whole dotted keys
        match = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
    else:
        siblings = [k.rpartition(".")[2] for k in keys if k.rpartition(".")[0] == section]
        near = difflib.get_close_matches(leaf, siblings, n=1, cutoff=0.6)
        # 'lr_rate' is far from 'lr' by ratio but contains it: take the longest contained name
        near = near or sorted((s for s in siblings if min(len(s), len(leaf)) >= 2 and (
            s in leaf or leaf in s)), key=len, reverse=True)[:1]
        match = [f"{section}.{m}" if section else m for m in near]
        if not match:
            where = f"in {section!r}" if section else "at the top level"
            return ConfigError(f"unknown config key {key!r}: valid keys {where} are "
                               f"{', '.join(siblings)}")
    if match:
        return ConfigError(f"unknown config key {key!r}: did you mean {match[0]!r}?")
    return ConfigError(f"unknown config key {key!r}: valid top-level keys are "
                       f"{', '.join(k for k in keys if '.' not in k)}")


# ----------------------------------------------------------------------------------------------
# Typed construction and validation


def from_dict(data: Any) -> Config:
    """Build and validate a Config from a (possibly partial) nested mapping."""
    cfg = _build(Config, {} if data is None else data, "")
    _check_consistency(cfg)
    return cfg


def _build(cls: Any, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        where = f"config key {prefix[:-1]!r}" if prefix else "a config file"
        raise ConfigError(f"{where} must be a mapping of keys to values, got {data!r}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}{name}"
        if name not in fields:
            raise _unknown_key(key)
        if dataclasses.is_dataclass(hints[name]):
            kwargs[name] = _build(hints[name], {} if value is None else value, key + ".")
            continue
        kwargs[name] = _convert(value, hints[name], key)
        _check_range(kwargs[name], fields[name], key)
    return cls(**kwargs)


def _convert(value: Any, tp: Any, key: str) -> Any:
    """`value` as type `tp`, or a one-line ConfigError naming key, value and expected type."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key)
            except ConfigError:
                pass
    elif origin is Literal:
        if isinstance(value, str) and value in args:
            return value
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        number = value
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                number = float(value)
            except ValueError:
                pass
        if isinstance(number, (int, float)) and not isinstance(number, bool) and math.isfinite(
                number):
            return float(number)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin is list:
        if isinstance(value, (list, tuple)):
            return [_convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    elif origin is dict:
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return dict(value)
    else:  # pragma: no cover - a schema type this converter does not know
        raise TypeError(f"unsupported config type {tp!r} for {key!r}")
    raise ConfigError(f"config key {key!r}: expected {_type_name(tp)}, got {value!r} "
                      f"({type(value).__name__})")


def _type_name(tp: Any) -> str:
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        names = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(names + (["null"] if type(None) in args else []))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is list:
        return f"a list of {_type_name(args[0]).removeprefix('an ').removeprefix('a ')}s"
    if origin is dict:
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a finite number",
            str: "a string"}.get(tp, str(tp))


def _check_range(value: Any, f: dataclasses.Field, key: str) -> None:
    lo, hi = f.metadata.get("range", (None, None))
    if value is None or (lo is None and hi is None):
        return
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ConfigError(f"config key {key!r}: expected a value {bounds}, got {value!r}")


_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def _check_consistency(cfg: Config) -> None:
    """Rules that tie several fields together."""
    from .methods import method_class  # here: both import this module
    from .gates import gate_class

    method_class(cfg.method).check_config(cfg)
    gate_class(cfg.synapse.gate).check_config(cfg.synapse)
    d = cfg.data
    if cfg.train.clip_grad_norm == 0:
        raise ConfigError("config key 'train.clip_grad_norm': expected null (no clipping) or a "
                          "value > 0, got 0 (no step would move the adapters)")
    if not _DEVICE.fullmatch(cfg.train.device):
        raise ConfigError(f"config key 'train.device': expected auto, cpu, cuda, cuda:N or mps, "
                          f"got {cfg.train.device!r}")
    from .data.registry import check_data_config  # here: artsy.data must not import config

    check_data_config(d)  # data.name, class_order and the dataset's own rules
    if not cfg.seeds:
        raise ConfigError("config key 'seeds': expected a non-empty list of integers")
    if len(set(cfg.seeds)) != len(cfg.seeds):
        raise ConfigError(f"config key 'seeds': each seed once, got {cfg.seeds}")


# ----------------------------------------------------------------------------------------------
# Output


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def dump_yaml(cfg: Config, path: Union[str, os.PathLike]) -> Path:
    """Write the full config atomically (temp file + os.replace): a reader never sees half."""
    text = yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=None)
    return write_text(path, text)
