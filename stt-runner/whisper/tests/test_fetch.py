"""`python -m ozen_whisper fetch`: a model from a stand-in Hugging Face hub on loopback (never the
network), serving the tiny.en files installed here, through huggingface_hub itself. Every failure
has its own exit code and message, each tested here."""

from __future__ import annotations

import filecmp
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ozen_whisper import fetch, models

from .conftest import WORKER_DIR, Worker, model_or_skip
from .hub_standin import StandInFile, StandInHub, StandInRepo

COMMIT = hashlib.sha1(b"ozen stand-in commit", usedforsecurity=False).hexdigest()
REPO = "ozen-test/whisper-tiny.en-ct2"
PRIVATE = "ozen-test/private-whisper-tiny.en-ct2"
TINY_FILES = ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt")
README = b"# whisper tiny.en, CTranslate2\n\nA stand-in for the tests.\n"


def tiny_repo(repo_id: str, tiny: Path, token: str | None = None) -> StandInRepo:
    files = {n: StandInFile(n, tiny / n, lfs=n == "model.bin") for n in TINY_FILES}
    files["README.md"] = StandInFile("README.md", README, lfs=False)
    files[".gitattributes"] = StandInFile(".gitattributes", b"*.bin filter=lfs\n", lfs=False)
    return StandInRepo(repo_id, COMMIT, files, branches=("main", "v1"), token=token)


def bytes_repo(repo_id: str, files: dict[str, bytes], lfs: str) -> StandInRepo:
    """A repository of small in-memory files; `lfs` names the one stored in LFS."""
    return StandInRepo(
        repo_id, COMMIT, {n: StandInFile(n, data, lfs=n == lfs) for n, data in files.items()}
    )


@pytest.fixture(scope="module")
def tiny() -> Path:
    return Path(model_or_skip("tiny.en"))


@pytest.fixture(scope="module")
def module_hub(tiny: Path) -> Iterator[StandInHub]:
    hub = StandInHub()
    hub.add(tiny_repo(REPO, tiny))
    hub.add(tiny_repo(PRIVATE, tiny, token="hf_ozen_test_token"))
    transformers_config = {"architectures": ["WhisperForConditionalGeneration"], "d_model": 384}
    hub.add(
        bytes_repo(
            "ozen-test/whisper-tiny-transformers",
            {
                "config.json": json.dumps(transformers_config).encode(),
                "model.safetensors": b"\0" * 4096,
                "tokenizer.json": b"{}",
            },
            lfs="model.safetensors",
        )
    )
    translator_config = {"add_source_bos": False, "add_source_eos": False, "unk_token": "<unk>"}
    hub.add(
        bytes_repo(
            "ozen-test/opus-mt-en-he-ct2",
            {
                "config.json": json.dumps(translator_config).encode(),
                "model.bin": b"\1" * 8192,
                "tokenizer.json": b"{}",
                "vocabulary.json": b"[]",
            },
            lfs="model.bin",
        )
    )
    yield hub
    hub.close()


@pytest.fixture
def hub(module_hub: StandInHub) -> StandInHub:
    """The module's stand-in with no fault armed and an empty request log."""
    module_hub.faults = type(module_hub.faults)()
    module_hub.requests.clear()
    return module_hub


def run_fetch(
    endpoint: str, home: Path, *args: str, **env_extra: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(
        HF_ENDPOINT=endpoint,
        HF_HOME=str(home / "hf-home"),  # no stored token, no cache outside the test
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        NO_PROXY="127.0.0.1,localhost",
        **env_extra,
    )
    return subprocess.run(
        [sys.executable, "-m", "ozen_whisper", "fetch", *args],
        cwd=WORKER_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def same_files(a: Path, b: Path, names: tuple[str, ...] = TINY_FILES) -> bool:
    return all(filecmp.cmp(a / n, b / n, shallow=False) for n in names)


def model_bin_gets(hub: StandInHub) -> list[str | None]:
    """The Range header of every CDN GET of model.bin (None = from the start)."""
    sha = hub.repos[REPO].sha256("model.bin")
    return [r.range for r in hub.gets(f"/lfs/{sha}")]


@pytest.fixture(scope="module")
def fetched(module_hub: StandInHub, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny.en fetched once through the CLI into a fresh models root."""
    root = tmp_path_factory.mktemp("models")
    r = run_fetch(module_hub.endpoint, root, REPO, "--dir", str(root), "--json")
    assert r.returncode == 0, r.stderr
    return root


def test_fetch_downloads_verifies_and_lists_the_model(
    fetched: Path, tiny: Path, module_hub: StandInHub
) -> None:
    target = fetched / "ozen-test--whisper-tiny.en-ct2"
    assert same_files(target, tiny)
    assert (target / "README.md").read_bytes() == README
    assert not (target / ".gitattributes").exists()  # not part of a model
    [listed] = models.local_models(fetched)
    assert listed.name == "tiny.en" and listed.path == str(target)
    assert listed.source == f"hf:{REPO}@{COMMIT}"


def test_models_lists_a_fetched_model_beside_a_packaged_one_of_the_same_name(
    fetched: Path, tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OZEN_WHISPER_MODELS_DIR", str(fetched))
    target = str(fetched / "ozen-test--whisper-tiny.en-ct2")
    tiny_ens = [m for m in models.list_models() if m.name == "tiny.en"]
    assert [m.path for m in tiny_ens] == [str(tiny), target]
    # the name keeps meaning the model it meant; the fetched one is reached by its path
    assert models.resolve_model("tiny.en").path == str(tiny)
    assert models.resolve_model(target).path == target


def test_the_json_line_names_the_model_by_path(module_hub: StandInHub, tmp_path: Path) -> None:
    r = run_fetch(module_hub.endpoint, tmp_path, REPO, "--dir", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["path"] == str(tmp_path / "ozen-test--whisper-tiny.en-ct2")
    assert info["name"] == "tiny.en" and not info["multilingual"]
    assert "verified 5 files against the hub's checksums" in r.stderr


def test_lfs_files_come_from_the_cdn_the_hub_redirects_to(hub: StandInHub, tmp_path: Path) -> None:
    r = run_fetch(hub.endpoint, tmp_path, REPO, "--dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert model_bin_gets(hub) == [None]
    resolves = [q for q in hub.requests if q.path.endswith("/resolve/" + COMMIT + "/model.bin")]
    assert [q.method for q in resolves] == ["HEAD"]  # the client reads the 302's headers only


def test_the_worker_loads_the_fetched_folder_by_path(fetched: Path) -> None:
    target = fetched / "ozen-test--whisper-tiny.en-ct2"
    w = Worker("--model", str(target), "--pool", "1", "--cpu-threads", "1")
    try:
        ready = w.wait_for(lambda m: m["type"] in ("ready", "fatal"), 120)
        assert ready["type"] == "ready", ready
        assert ready["path"] == str(target) and ready["model"] == "tiny.en"
    finally:
        w.close()


def test_a_second_fetch_downloads_nothing(fetched: Path, hub: StandInHub, tmp_path: Path) -> None:
    r = run_fetch(hub.endpoint, tmp_path, REPO, "--dir", str(fetched))
    assert r.returncode == 0, r.stderr
    assert "(0.0 MB to download)" in r.stderr
    assert [q for q in hub.requests if q.method == "GET" and "/resolve/" in q.path] == []
    assert model_bin_gets(hub) == []


def test_a_tag_resolves_to_its_commit(hub: StandInHub, tmp_path: Path) -> None:
    r = run_fetch(hub.endpoint, tmp_path, REPO, "--revision", "v1", "--dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert f"@{COMMIT[:12]}" in r.stderr
    # every file request names the commit, not the tag: one commit's files, whatever the tag does
    resolves = [q.path for q in hub.requests if "/resolve/" in q.path]
    assert resolves and all(f"/resolve/{COMMIT}/" in p for p in resolves)


def test_an_unknown_repo_is_exit_3(hub: StandInHub, tmp_path: Path) -> None:
    r = run_fetch(hub.endpoint, tmp_path, "ozen-test/no-such-model", "--dir", str(tmp_path))
    assert r.returncode == fetch.EXIT_NOT_FOUND == 3
    assert "no model repository ozen-test/no-such-model on http://127.0.0.1:" in r.stderr
    assert "Traceback" not in r.stderr


def test_an_unknown_revision_is_exit_3(hub: StandInHub, tmp_path: Path) -> None:
    r = run_fetch(hub.endpoint, tmp_path, REPO, "--revision", "v9", "--dir", str(tmp_path))
    assert r.returncode == fetch.EXIT_NOT_FOUND
    assert f"{REPO} has no revision 'v9'" in r.stderr


def test_a_private_repo_needs_hf_token(hub: StandInHub, tmp_path: Path, tiny: Path) -> None:
    r = run_fetch(hub.endpoint, tmp_path, PRIVATE, "--dir", str(tmp_path))
    assert r.returncode == fetch.EXIT_NOT_FOUND
    assert "HF_TOKEN is not set" in r.stderr
    hub.requests.clear()
    r = run_fetch(
        hub.endpoint, tmp_path, PRIVATE, "--dir", str(tmp_path), HF_TOKEN="hf_ozen_test_token"
    )
    assert r.returncode == 0, r.stderr
    assert same_files(tmp_path / "ozen-test--private-whisper-tiny.en-ct2", tiny)
    hub_requests = [q for q in hub.requests if q.path.startswith("hub:") and PRIVATE in q.path]
    cdn_requests = [q for q in hub.requests if q.path.startswith("cdn:")]
    assert hub_requests and all(
        q.authorization == "Bearer hf_ozen_test_token" for q in hub_requests
    )
    # the token stays on the hub: the client drops it for the CDN's origin
    assert cdn_requests and all(q.authorization is None for q in cdn_requests)


def test_a_transformers_checkpoint_is_exit_4(hub: StandInHub, tmp_path: Path) -> None:
    r = run_fetch(
        hub.endpoint, tmp_path, "ozen-test/whisper-tiny-transformers", "--dir", str(tmp_path)
    )
    assert r.returncode == fetch.EXIT_NOT_WHISPER == 4
    assert "is not a CTranslate2 Whisper model" in r.stderr
    assert "no model.bin, vocabulary.json or vocabulary.txt" in r.stderr
    assert "it has config.json, model.safetensors, tokenizer.json" in r.stderr
    assert not (tmp_path / "ozen-test--whisper-tiny-transformers").exists()
    assert [q for q in hub.requests if "/resolve/" in q.path] == []


def test_a_ct2_model_that_is_not_whisper_is_exit_4(hub: StandInHub, tmp_path: Path) -> None:
    r = run_fetch(hub.endpoint, tmp_path, "ozen-test/opus-mt-en-he-ct2", "--dir", str(tmp_path))
    assert r.returncode == fetch.EXIT_NOT_WHISPER
    assert "its config.json is not a CTranslate2 Whisper config" in r.stderr
    assert "it has add_source_bos, add_source_eos, unk_token" in r.stderr
    # refused on its config: the model.bin never moved, and nothing is left behind
    assert [q for q in hub.requests if q.path.startswith("cdn:")] == []
    assert not (tmp_path / "ozen-test--opus-mt-en-he-ct2").exists()


def test_a_dropped_connection_resumes_by_range_in_the_same_run(
    hub: StandInHub, tmp_path: Path, tiny: Path
) -> None:
    from huggingface_hub import constants

    hub.faults.drop_after_bytes = 30_000_000
    r = run_fetch(hub.endpoint, tmp_path, REPO, "--dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    # the client writes whole chunks of DOWNLOAD_CHUNK_SIZE: it resumes after the last one it kept
    kept = 30_000_000 // constants.DOWNLOAD_CHUNK_SIZE * constants.DOWNLOAD_CHUNK_SIZE
    assert kept > 0
    assert model_bin_gets(hub) == [None, f"bytes={kept}-"]
    assert same_files(tmp_path / "ozen-test--whisper-tiny.en-ct2", tiny)


def test_a_network_failure_midway_is_exit_5_and_a_second_run_completes(
    hub: StandInHub, tmp_path: Path, tiny: Path
) -> None:
    target = tmp_path / "ozen-test--whisper-tiny.en-ct2"
    hub.faults.drop_after_bytes = 10_000_000
    hub.faults.then_down = True
    r = run_fetch(hub.endpoint, tmp_path, REPO, "--dir", str(tmp_path))
    assert r.returncode == fetch.EXIT_NETWORK == 5
    assert "the connection to http://127.0.0.1:" in r.stderr
    assert "run the same command again" in r.stderr
    assert not (target / "model.bin").exists()
    small = ("config.json", "tokenizer.json", "vocabulary.txt", "README.md")
    finished = {n for n in small if (target / n).exists()}
    assert "config.json" in finished  # read and kept before the model itself

    hub.faults.down = False
    hub.requests.clear()
    r = run_fetch(hub.endpoint, tmp_path, REPO, "--dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert same_files(target, tiny)
    assert "verified 5 files" in r.stderr
    # what the first run finished, the second does not ask for again
    again = {n for n in finished if hub.gets(f"/resolve/{COMMIT}/{n}")}
    assert again == set()
    assert model_bin_gets(hub) == [None]


def test_an_unreachable_hub_is_exit_5(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = run_fetch(f"http://127.0.0.1:{port}", tmp_path, REPO, "--dir", str(tmp_path))
    assert r.returncode == fetch.EXIT_NETWORK
    assert "ConnectError" in r.stderr


def test_a_corrupted_download_is_exit_7_and_is_fetched_again(
    hub: StandInHub, tmp_path: Path, tiny: Path
) -> None:
    target = tmp_path / "ozen-test--whisper-tiny.en-ct2"
    hub.faults.corrupt = {"model.bin"}
    r = run_fetch(hub.endpoint, tmp_path, REPO, "--dir", str(tmp_path))
    assert r.returncode == fetch.EXIT_CHECKSUM == 7
    assert "model.bin: sha256" in r.stderr and "did not verify" in r.stderr
    assert not (target / "model.bin").exists()
    assert models.local_models(tmp_path) == []  # a half model is not listed

    hub.faults.corrupt = set()
    r = run_fetch(hub.endpoint, tmp_path, REPO, "--dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert same_files(target, tiny)


def test_not_enough_space_is_exit_6_before_anything_downloads(
    hub: StandInHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(fetch, "free_bytes", lambda path: 10_000_000)
    with pytest.raises(fetch.FetchError) as e:
        fetch.fetch_model(REPO, root=tmp_path, endpoint=hub.endpoint)
    assert e.value.exit_code == fetch.EXIT_NO_SPACE == 6
    assert "needs 78.1 MB more" in e.value.message
    assert "10.0 MB free" in e.value.message
    assert [q for q in hub.requests if "/resolve/" in q.path or q.path.startswith("cdn:")] == []


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of 32 MiB, mounted for the test (needs root and mount rights; skipped without):
    more than the model's small files and the margin, less than its model.bin."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_a_small_disk_is_exit_6_before_anything_downloads(hub: StandInHub, tiny_disk: Path) -> None:
    r = run_fetch(hub.endpoint, tiny_disk.parent, REPO, "--dir", str(tiny_disk))
    assert r.returncode == fetch.EXIT_NO_SPACE
    assert re.search(r"needs 78\.1 MB more at .* and that disk has 3\d\.\d MB free", r.stderr)
    assert model_bin_gets(hub) == []


def test_a_disk_that_fills_midway_is_exit_6(hub: StandInHub, tiny_disk: Path) -> None:
    # the listing understates model.bin, so the space check passes and the disk fills for real
    hub.faults.understate_lfs_sizes = True
    r = run_fetch(hub.endpoint, tiny_disk.parent, REPO, "--dir", str(tiny_disk))
    assert r.returncode == fetch.EXIT_NO_SPACE
    assert "the disk filled up" in r.stderr
    assert not (tiny_disk / "ozen-test--whisper-tiny.en-ct2" / "model.bin").exists()


def test_hf_hub_offline_refuses(tmp_path: Path) -> None:
    r = run_fetch("http://127.0.0.1:9", tmp_path, REPO, HF_HUB_OFFLINE="1")
    assert r.returncode == fetch.EXIT_USAGE == 2
    assert "HF_HUB_OFFLINE=1 forbids downloads" in r.stderr


def test_a_repo_id_without_an_owner_is_exit_2(tmp_path: Path) -> None:
    r = run_fetch("http://127.0.0.1:9", tmp_path, "whisper")
    assert r.returncode == fetch.EXIT_USAGE
    assert "not a repository id like org/name" in r.stderr
