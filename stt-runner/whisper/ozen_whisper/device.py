"""Which device and compute type the worker runs a model on, and the GPU benchmark's preflight.

`auto` asks CTranslate2 how many CUDA devices it can use (`get_cuda_device_count()`, 0 when the
wheel finds no driver, no GPU, or no cuBLAS/cuDNN) and picks CUDA when there is one. The compute
type follows faster-whisper's documented choices: float16 on a GPU (int8_float16 halves the
weights' memory), int8 on the CPU (the playbook's CPU setting). An explicit type is checked
against what CTranslate2 supports on that device (`get_supported_compute_types`), so a wrong one
is a clear error at start, not a fallback nobody sees.

`python -m ozen_whisper.device --require-cuda [--model-dir D --repo R]` is `make bench-gpu`'s
preflight: it exits non-zero, saying why, on a machine without a usable GPU or without the model.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

DEVICES = ("auto", "cpu", "cuda")
DEFAULT_COMPUTE = {"cuda": "float16", "cpu": "int8"}
EXIT_NO_GPU = 3
EXIT_NO_MODEL = 4


@dataclass(frozen=True)
class DeviceChoice:
    device: str  # "cuda" | "cpu"
    compute_type: str
    cuda_devices: int


def cuda_device_count() -> int:
    """CUDA devices CTranslate2 can use here (0 without a GPU, a driver or the CUDA libraries)."""
    import ctranslate2

    return int(ctranslate2.get_cuda_device_count())


def supported_compute_types(device: str) -> set[str]:
    """Compute types CTranslate2 supports on `device` ("cpu" or "cuda")."""
    import ctranslate2

    return set(ctranslate2.get_supported_compute_types(device))


def choose_device(
    device: str = "auto",
    compute_type: str = "auto",
    *,
    cuda_count: Callable[[], int] = cuda_device_count,
    supported: Callable[[str], set[str]] = supported_compute_types,
) -> DeviceChoice:
    """The device (`auto`, `cpu`, `cuda`) and compute type (`auto` or a CTranslate2 type) to load
    a model with. Raises ValueError with a message a person can act on."""
    if device not in DEVICES:
        raise ValueError(f"device is {device!r}, expected one of {', '.join(DEVICES)}")
    gpus = cuda_count() if device in ("auto", "cuda") else 0
    if device == "cuda" and gpus == 0:
        raise ValueError(
            "device cuda, but CTranslate2 sees no CUDA device (get_cuda_device_count() = 0): "
            "check the NVIDIA driver and the cuBLAS/cuDNN libraries, or use device auto or cpu"
        )
    chosen = "cuda" if gpus > 0 and device != "cpu" else "cpu"
    compute = DEFAULT_COMPUTE[chosen] if compute_type == "auto" else compute_type
    if compute_type != "auto":
        allowed = supported(chosen)
        if compute not in allowed:
            raise ValueError(
                f"compute type {compute} is not supported on {chosen} here "
                f"(CTranslate2 supports {', '.join(sorted(allowed))})"
            )
    return DeviceChoice(chosen, compute, gpus)


def bench_gpu_preflight(
    model_dir: Path | None, repo_id: str | None, cuda_count: Callable[[], int] = cuda_device_count
) -> tuple[int, str]:
    """`make bench-gpu`'s check: (0, the choice) when a GPU and the model are there, else the
    exit code and what to do."""
    gpus = cuda_count()
    if gpus == 0:
        return EXIT_NO_GPU, (
            "bench-gpu needs an NVIDIA GPU that CTranslate2 can use, and this machine has none "
            "(ctranslate2.get_cuda_device_count() = 0). Run it on a GPU machine (the GPU image: "
            "`docker build -f stt-runner/Dockerfile --target gpu ...`); `make bench-stt` is the "
            "CPU benchmark."
        )
    if model_dir is not None and not (model_dir / "model.bin").is_file():
        fetch = f"node tools/bin/ozen.js models fetch {repo_id}" if repo_id else "ozen models fetch"
        return EXIT_NO_MODEL, f"no model at {model_dir}: fetch it first with `{fetch}`"
    return 0, f"{gpus} CUDA device(s); model at {model_dir}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ozen_whisper.device")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--compute-type", default="auto")
    p.add_argument("--require-cuda", action="store_true", help="bench-gpu's preflight")
    p.add_argument("--model-dir", type=Path, default=None, help="with --require-cuda: must exist")
    p.add_argument("--repo", default=None, help="with --model-dir: the repo to fetch it from")
    args = p.parse_args(argv)
    if args.require_cuda:
        code, message = bench_gpu_preflight(args.model_dir, args.repo)
        print(f"{'ok' if code == 0 else 'refused'}: {message}", file=sys.stderr)
        return code
    try:
        choice = choose_device(args.device, args.compute_type)
    except ValueError as e:
        print(str(e), file=sys.stderr)
        return 2
    print(json.dumps(asdict(choice)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
