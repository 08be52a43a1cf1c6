"""Which device to run on, for training (--device) and serving (ELCREC_DEVICE) alike."""

from __future__ import annotations

import torch


def pick_device(name: str = "auto", setting: str = "--device") -> str:
    """auto (a GPU when there is one), cpu or cuda[:N] -> the device name; a ValueError names `setting`."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"{setting} {name} was asked for, but no CUDA device is available")
    if name != "cpu" and not name.startswith("cuda"):
        raise ValueError(f"{setting} must be auto, cpu or cuda[:N], got {name!r}")
    return name


def describe_device(name: str) -> str:
    """The device a run trained on, for its result and manifest: "cpu" or "cuda (NVIDIA H100 80GB HBM3)"."""
    if not name.startswith("cuda"):
        return name
    return f"{name} ({torch.cuda.get_device_name(torch.device(name))})"
