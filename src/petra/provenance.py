"""Where a computation ran, recorded by the code that ran it (never typed by hand): the
machine (CPU model, core counts, platform), the Python and torch versions, the device and
dtype of the tensors, the torch threads and the processes.

`environment()` is written into each trained run's results.json (by the trainer) and into
each `petra reproduce` results JSON (by the runner, for the process that writes it: its
measurements and analyses ran there); `describe()` renders one in a line;
`environment_problem()` says what is wrong with a hand-edited one.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from petra.checks import field_problem

# the JSON type of every field of an environment, and of its machine (`field_problem`)
FIELDS = {
    (None, "machine"): dict, (None, "python"): str, (None, "torch"): str,
    (None, "device"): str, (None, "dtype"): str, (None, "threads"): int,
    (None, "processes"): int,
    ("machine", "cpu"): str, ("machine", "cores"): int, ("machine", "cores_usable"): int,
    ("machine", "platform"): str,
}  # fmt: skip


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name: Linux's `model name` (x86) or `Hardware` / `Processor` (ARM)
    line of /proc/cpuinfo, else what `platform` says, else "unknown"."""
    if cpuinfo.is_file():
        fields = {}
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, colon, value = line.partition(":")
            if colon and value.strip():
                fields.setdefault(key.strip(), value.strip())
        for key in ("model name", "Hardware", "Processor"):
            if key in fields:
                return fields[key]
    return platform.processor() or platform.machine() or "unknown"


def machine() -> dict:
    """The CPU model, its logical cores, those this process may use (a pinned process uses
    fewer) and the platform."""
    cores = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    return {
        "cpu": cpu_model(),
        "cores": cores,
        "cores_usable": usable,
        "platform": platform.platform(),
    }


def device_name(device: torch.device | str) -> str:
    """`cpu`, or `cuda (NVIDIA H100 80GB HBM3)`: the type, with the GPU's name for CUDA."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def environment(device: torch.device | str, dtype: torch.dtype, processes: int = 1) -> dict:
    """This process's machine and software, with the `device` and `dtype` its tensors use
    and the number of `processes` (several under torchrun) it ran among."""
    return {
        "machine": machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device_name(device),
        "dtype": str(dtype).removeprefix("torch."),
        "threads": torch.get_num_threads(),
        "processes": processes,
    }


def environment_problem(value) -> str | None:
    """What makes `value` not an environment as `environment()` writes it (a field missing
    or of another JSON type), or None."""
    if not isinstance(value, dict):
        return "must be a JSON object"
    problem = field_problem(value, FIELDS)
    return None if problem is None else f"is not as petra writes it ({problem})"


def describe(env: dict) -> str:
    """One line: `cuda (NVIDIA H100 80GB HBM3), float32, 1 process; torch 2.11.0+cu130,
    Python 3.12.3; CPU AMD EPYC, 16 cores (2 usable), 2 torch threads; Linux-6.8-x86_64`."""
    machine = env["machine"]
    cores = _count(machine["cores"], "core")
    if machine["cores_usable"] != machine["cores"]:
        cores += f" ({machine['cores_usable']} usable)"
    return (
        f"{env['device']}, {env['dtype']}, {_count(env['processes'], 'process')}; "
        f"torch {env['torch']}, Python {env['python']}; CPU {machine['cpu']}, "
        f"{cores}, {_count(env['threads'], 'torch thread')}; "
        f"{machine['platform']}"
    )


def _count(n: int, thing: str) -> str:
    """`1 process`, `4 processes`, `2 torch threads`."""
    if n == 1:
        return f"1 {thing}"
    return f"{n} {thing}{'es' if thing.endswith('s') else 's'}"
