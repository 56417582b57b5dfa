"""Load a VarNet or U-Net from a local weights file, inferring its size from the weights.

Accepted files (read with ``torch.load(..., weights_only=True)``, so nothing in them is executed):
a plain state dict (fastMRI's published ``*_state_dict.pt`` files, our demo model) or a Lightning
checkpoint, a dict whose ``state_dict`` holds the weights under a ``varnet.`` or ``unet.`` prefix.
The hyper-parameters are read off key names and tensor shapes, and the weights are loaded with
``strict=True``: a file for another architecture or size is refused with the keys that differ.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from recon_backend.errors import ReconError
from recon_backend.models.unet import Unet
from recon_backend.models.varnet import VarNet

ModelKind = Literal["varnet", "unet"]

#: The official fastMRI VarNet configuration, used when a file's keys say nothing about a size.
OFFICIAL_VARNET = {"num_cascades": 12, "sens_chans": 8, "sens_pools": 4, "chans": 18, "pools": 4}
#: The official fastMRI U-Net configuration.
OFFICIAL_UNET = {"in_chans": 1, "out_chans": 1, "chans": 256, "num_pool_layers": 4}

_SHOWN_KEYS = 5


def load_model(
    path: str | Path, kind: ModelKind, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, int]]:
    """Build the model that a weights file describes and load the weights strictly.

    Parameters
    ----------
    path
        Local weights file (plain state dict or Lightning checkpoint).
    kind
        ``"varnet"`` or ``"unet"``.
    device
        Where the model goes; it is returned in eval mode.

    Returns
    -------
    model : torch.nn.Module
        The :class:`~recon_backend.models.VarNet` or :class:`~recon_backend.models.Unet`.
    hparams : dict
        The constructor arguments inferred from the file (e.g. ``num_cascades``, ``chans``).

    Raises
    ------
    ReconError
        The file is missing, not a torch file, not a state dict, or its keys or shapes do not
        match the architecture.
    """
    path = Path(path)
    if kind not in ("varnet", "unet"):
        raise ReconError(f"{path}: unknown model kind {kind!r}; expected 'varnet' or 'unet'")
    state = _read_state_dict(path, kind)
    hparams = infer_varnet_hparams(state) if kind == "varnet" else infer_unet_hparams(state)
    # built without memory, then the file's tensors are assigned: the weights exist only once
    with torch.device("meta"):
        model = _build(kind, hparams)
    _check_keys(path, kind, model, state)
    model.load_state_dict(state, strict=True, assign=True)
    return model.to(device).eval(), hparams


def _build(kind: ModelKind, hparams: dict[str, int]) -> nn.Module:
    if kind == "varnet":
        return VarNet(
            num_cascades=hparams["num_cascades"],
            sens_chans=hparams["sens_chans"],
            sens_pools=hparams["sens_pools"],
            chans=hparams["chans"],
            pools=hparams["pools"],
        )
    return Unet(
        in_chans=hparams["in_chans"],
        out_chans=hparams["out_chans"],
        chans=hparams["chans"],
        num_pool_layers=hparams["num_pool_layers"],
    )


def _read_state_dict(path: Path, kind: ModelKind) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ReconError(f"{path}: model file not found")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # the unpickler raises many kinds (IndexError, KeyError, ...) on junk
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ReconError(
            f"{path}: not a torch weights file that can be read safely (weights_only): {first_line}"
        ) from err
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        # a Lightning checkpoint: the model sits under the module's attribute name
        loaded = loaded["state_dict"]
        prefix = f"{kind}."
        if any(str(key).startswith(prefix) for key in loaded):
            loaded = {
                key.removeprefix(prefix): value
                for key, value in loaded.items()
                if key.startswith(prefix)
            }
    if not isinstance(loaded, Mapping) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in loaded.items()
    ):
        raise ReconError(
            f"{path}: expected a state dict (parameter name -> tensor) or a checkpoint with "
            f"'state_dict', got {type(loaded).__name__}"
        )
    return dict(loaded)


def _count(state: Mapping[str, torch.Tensor], pattern: str) -> int:
    """Number of distinct indices ``N`` among keys matching ``pattern`` (with one ``(\\d+)``)."""
    found = {int(m.group(1)) for key in state if (m := re.match(pattern, key))}
    return max(found) + 1 if found else 0


def infer_varnet_hparams(state: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """VarNet constructor arguments read off a state dict (official values where keys are absent).

    Parameters
    ----------
    state
        The state dict.

    Returns
    -------
    dict
        ``num_cascades``, ``sens_chans``, ``sens_pools``, ``chans``, ``pools``.
    """
    hparams = dict(OFFICIAL_VARNET)
    sens = "sens_net.norm_unet.unet."
    cascade = "cascades.0.model.unet."
    if (n := _count(state, r"cascades\.(\d+)\.")) > 0:
        hparams["num_cascades"] = n
    if (w := state.get(cascade + "down_sample_layers.0.layers.0.weight")) is not None:
        hparams["chans"] = int(w.shape[0])
    if (n := _count(state, re.escape(cascade) + r"down_sample_layers\.(\d+)\.")) > 0:
        hparams["pools"] = n
    if (w := state.get(sens + "down_sample_layers.0.layers.0.weight")) is not None:
        hparams["sens_chans"] = int(w.shape[0])
    if (n := _count(state, re.escape(sens) + r"down_sample_layers\.(\d+)\.")) > 0:
        hparams["sens_pools"] = n
    return hparams


def infer_unet_hparams(state: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """U-Net constructor arguments read off a state dict (official values where keys are absent).

    Parameters
    ----------
    state
        The state dict.

    Returns
    -------
    dict
        ``in_chans``, ``out_chans``, ``chans``, ``num_pool_layers``.
    """
    hparams = dict(OFFICIAL_UNET)
    if (w := state.get("down_sample_layers.0.layers.0.weight")) is not None and w.ndim == 4:
        hparams["chans"], hparams["in_chans"] = int(w.shape[0]), int(w.shape[1])
    if (n := _count(state, r"down_sample_layers\.(\d+)\.")) > 0:
        hparams["num_pool_layers"] = n
    last = _count(state, r"up_conv\.(\d+)\.") - 1
    if (w := state.get(f"up_conv.{last}.1.weight")) is not None:
        hparams["out_chans"] = int(w.shape[0])
    return hparams


def _check_keys(
    path: Path, kind: ModelKind, model: nn.Module, state: Mapping[str, torch.Tensor]
) -> None:
    """Raise a ReconError listing missing, unexpected and wrongly shaped keys, if any."""
    expected = {key: value.shape for key, value in model.state_dict().items()}
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    wrong_shape = [
        f"{key} {tuple(state[key].shape)} != {tuple(shape)}"
        for key, shape in expected.items()
        if key in state and state[key].shape != shape
    ]
    if not (missing or unexpected or wrong_shape):
        return
    parts = []
    for label, keys in (
        ("missing keys", missing),
        ("unexpected keys", unexpected),
        ("wrong shapes", wrong_shape),
    ):
        if keys:
            more = f", ... ({len(keys) - _SHOWN_KEYS} more)" if len(keys) > _SHOWN_KEYS else ""
            parts.append(f"{len(keys)} {label}: {', '.join(keys[:_SHOWN_KEYS])}{more}")
    raise ReconError(f"{path}: weights do not fit a fastMRI {kind}: " + "; ".join(parts))
