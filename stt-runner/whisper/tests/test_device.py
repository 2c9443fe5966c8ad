"""The device choice (CUDA counted by CTranslate2, faked here to test the GPU side on a CPU
machine) and `make bench-gpu`'s refusal on a machine without a GPU."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ozen_whisper import device
from ozen_whisper.device import DeviceChoice, bench_gpu_preflight, choose_device

from .conftest import REPO_ROOT

CUDA_TYPES = {"float16", "int8_float16", "int8", "float32", "bfloat16", "int8_bfloat16"}
CPU_TYPES = {"int8", "int8_float32", "float32", "int16"}


def fake_supported(device_name: str) -> set[str]:
    """What CTranslate2 reports on a machine with an NVIDIA GPU."""
    return CUDA_TYPES if device_name == "cuda" else CPU_TYPES


def test_auto_picks_cuda_and_float16_when_ctranslate2_sees_a_gpu() -> None:
    assert choose_device(
        "auto", "auto", cuda_count=lambda: 1, supported=fake_supported
    ) == DeviceChoice("cuda", "float16", 1)


def test_auto_picks_the_cpu_and_int8_without_a_gpu() -> None:
    assert choose_device(
        "auto", "auto", cuda_count=lambda: 0, supported=fake_supported
    ) == DeviceChoice("cpu", "int8", 0)


def test_int8_float16_is_accepted_on_a_gpu() -> None:
    choice = choose_device("auto", "int8_float16", cuda_count=lambda: 2, supported=fake_supported)
    assert choice == DeviceChoice("cuda", "int8_float16", 2)


def test_cpu_stays_on_the_cpu_with_a_gpu_present() -> None:
    assert choose_device(
        "cpu", "auto", cuda_count=lambda: 1, supported=fake_supported
    ) == DeviceChoice("cpu", "int8", 0)


def test_cuda_without_a_gpu_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"no CUDA device \(get_cuda_device_count\(\) = 0\)"):
        choose_device("cuda", "auto", cuda_count=lambda: 0, supported=fake_supported)


def test_float16_on_the_cpu_is_refused_with_what_is_supported() -> None:
    with pytest.raises(ValueError, match=r"float16 is not supported on cpu.*int8"):
        choose_device("auto", "float16", cuda_count=lambda: 0, supported=fake_supported)


def test_an_unknown_device_is_refused() -> None:
    with pytest.raises(ValueError, match="expected one of auto, cpu, cuda"):
        choose_device("tpu", "auto", cuda_count=lambda: 0, supported=fake_supported)


def test_ctranslate2_itself_on_this_machine() -> None:
    n = device.cuda_device_count()
    choice = choose_device()
    assert choice.cuda_devices == n
    assert choice == (DeviceChoice("cuda", "float16", n) if n else DeviceChoice("cpu", "int8", 0))
    assert "int8" in device.supported_compute_types("cpu")


def test_bench_gpu_preflight_refuses_without_a_gpu(tmp_path: Path) -> None:
    code, message = bench_gpu_preflight(tmp_path, "ivrit-ai/whisper-large-v3-turbo-ct2", lambda: 0)
    assert code == device.EXIT_NO_GPU
    assert "needs an NVIDIA GPU" in message and "get_cuda_device_count() = 0" in message


def test_bench_gpu_preflight_says_the_fetch_command_when_the_model_is_missing(
    tmp_path: Path,
) -> None:
    code, message = bench_gpu_preflight(
        tmp_path / "absent", "ivrit-ai/whisper-large-v3-turbo-ct2", lambda: 1
    )
    assert code == device.EXIT_NO_MODEL
    assert "models fetch ivrit-ai/whisper-large-v3-turbo-ct2" in message


def test_bench_gpu_preflight_passes_with_a_gpu_and_the_model(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"x")
    code, _ = bench_gpu_preflight(tmp_path, "org/name", lambda: 1)
    assert code == 0


@pytest.mark.skipif(device.cuda_device_count() > 0, reason="this machine has a GPU: it would run")
def test_make_bench_gpu_refuses_on_a_machine_without_a_gpu() -> None:
    r = subprocess.run(
        ["make", "--no-print-directory", "bench-gpu"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode != 0
    assert "bench-gpu needs an NVIDIA GPU" in r.stderr
    assert "get_cuda_device_count() = 0" in r.stderr
    assert "bench stt" not in r.stdout  # refused before any benchmark ran
