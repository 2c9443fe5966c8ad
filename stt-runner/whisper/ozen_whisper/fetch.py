"""`python -m ozen_whisper fetch REPO_ID [--revision R]`: a CTranslate2 Whisper model from the
Hugging Face hub into the models folder, where `models` lists it and `serve --model` loads it.

The download is huggingface_hub's own (the official client), so it behaves as the hub expects:
`HF_ENDPOINT` picks the hub (a mirror, or a stand-in in tests), `HF_TOKEN` authenticates (gated
and private repos), an LFS file comes through the hub's redirect to its CDN, and a connection
that drops mid-file is resumed with a Range request within the run. A run that still fails keeps
every file it finished (the folder's `.cache/huggingface` records their commit), so running the
same command again downloads only what is missing. huggingface_hub (since its "process-unique
temporary file" change) does not keep a half-downloaded file across runs: that one file starts over.

What this module adds around the client, in order:
1. the repository's file list at one commit (`model_info` with blob metadata), so a branch or tag
   that moves during the download cannot mix two commits; every request names that commit;
2. a shape check before any byte moves: faster-whisper needs `model.bin`, `config.json`,
   `tokenizer.json` (the worker runs offline, and faster-whisper would otherwise fetch a tokenizer
   at load time) and a vocabulary;
3. free space against the sizes the hub reports, before downloading anything;
4. `config.json` (a few kB) first, which must be a CTranslate2 Whisper config (`lang_ids`,
   `suppress_ids`, ...), so a CTranslate2 translation model is refused before its model.bin moves
   (and the folder of a refused repository is removed);
5. after the download, every file checked against the hub's checksums (sha256 for LFS files,
   the git blob sha1 for the others) with `HfApi.verify_repo_checksums`; a file that does not
   match is deleted, so the next run fetches it again.

Each failure is a `FetchError` with a message a person can act on and its own exit code.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import models

if TYPE_CHECKING:
    from huggingface_hub import HfApi

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_NOT_WHISPER = 4
EXIT_NETWORK = 5
EXIT_NO_SPACE = 6
EXIT_CHECKSUM = 7

REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")
VOCABULARY_FILES = ("vocabulary.json", "vocabulary.txt")
# Read by faster-whisper when present (large-v3's 128 mel bins are in it); the rest is provenance.
OPTIONAL_FILES = ("preprocessor_config.json", "README.md", "LICENSE", "LICENSE.md", "LICENSE.txt")
# Keys CTranslate2's Whisper converter writes into config.json (and no other model type has).
WHISPER_CONFIG_KEYS = ("lang_ids", "suppress_ids", "suppress_ids_begin", "alignment_heads")
# Room left beyond the files themselves: the download metadata, the tree cache, a margin.
SPACE_MARGIN_BYTES = 16 * 1024 * 1024


class FetchError(Exception):
    """A fetch that cannot complete: `message` says why and what to do, `exit_code` which kind."""

    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.message = message


@dataclass(frozen=True)
class RemoteFile:
    """One file of the repository at the fetched commit, as the hub describes it."""

    path: str
    size_bytes: int
    sha256: str | None


@dataclass(frozen=True)
class FetchPlan:
    repo_id: str
    commit: str
    files: tuple[RemoteFile, ...]
    target: Path

    @property
    def total_bytes(self) -> int:
        return sum(f.size_bytes for f in self.files)

    def missing_bytes(self) -> int:
        """Bytes still to download: files not yet in the target at their full size."""
        missing = 0
        for f in self.files:
            local = self.target / f.path
            if not (local.is_file() and local.stat().st_size == f.size_bytes):
                missing += f.size_bytes
        return missing


def model_folder_name(repo_id: str) -> str:
    """The folder a repository lands in under the models root: `ivrit-ai--whisper-...-ct2`."""
    return repo_id.replace("/", "--")


def free_bytes(path: Path) -> int:
    """Free bytes on the filesystem that holds `path` (or would: its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _hub_error(e: Exception, repo_id: str, revision: str | None, where: str) -> FetchError | None:
    """A huggingface_hub or transport error as the FetchError a person can act on; None when it
    is neither (a bug, to surface as it is)."""
    import httpx2
    from huggingface_hub import errors

    again = "run the same command again: files already finished are kept"
    if isinstance(e, errors.RevisionNotFoundError):
        return FetchError(EXIT_NOT_FOUND, f"{repo_id} has no revision {revision!r} on {where}")
    if isinstance(e, errors.GatedRepoError):
        return FetchError(
            EXIT_NOT_FOUND,
            f"{repo_id} is gated on {where}: accept its terms on the hub, then set HF_TOKEN "
            "to a token of that account",
        )
    if isinstance(e, errors.RepositoryNotFoundError):
        token = "HF_TOKEN is set" if os.environ.get("HF_TOKEN") else "HF_TOKEN is not set"
        return FetchError(
            EXIT_NOT_FOUND,
            f"no model repository {repo_id} on {where} (or it is private and this token cannot "
            f"read it; {token})",
        )
    if isinstance(e, errors.HfHubHTTPError):
        status = e.response.status_code if e.response is not None else "?"
        if status in (401, 403):
            return FetchError(
                EXIT_NOT_FOUND, f"{where} refused {repo_id} (HTTP {status}): check HF_TOKEN"
            )
        return FetchError(EXIT_NETWORK, f"{where} answered HTTP {status} for {repo_id}; {again}")
    if isinstance(e, errors.FileMetadataError):
        return FetchError(EXIT_NETWORK, f"{where} does not answer like the hub: {e}")
    if isinstance(e, (httpx2.TransportError, errors.LocalEntryNotFoundError)):
        return FetchError(
            EXIT_NETWORK,
            f"the connection to {where} failed while fetching {repo_id} "
            f"({type(e).__name__}: {e}); {again}",
        )
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        return FetchError(EXIT_NO_SPACE, f"the disk filled up while fetching {repo_id}: {e}")
    return None


def _plan(api: HfApi, repo_id: str, revision: str | None, root: Path) -> FetchPlan:
    """The files to fetch at one commit; refuses a repository that is not a Whisper CT2 model."""
    info = api.model_info(repo_id, revision=revision, files_metadata=True)
    if not info.sha:
        raise FetchError(EXIT_NETWORK, f"the hub gave no commit for {repo_id}@{revision or 'main'}")
    siblings = {s.rfilename: s for s in info.siblings or []}
    names = sorted(siblings)
    missing = [f for f in REQUIRED_FILES if f not in siblings]
    if not any(v in siblings for v in VOCABULARY_FILES):
        missing.append(" or ".join(VOCABULARY_FILES))
    if missing:
        raise FetchError(
            EXIT_NOT_WHISPER,
            f"{repo_id} is not a CTranslate2 Whisper model faster-whisper can load offline: it has "
            f"no {', '.join(missing)} (it has {', '.join(names) or 'no files'}). Look for a "
            "'-ct2' / faster-whisper conversion of the model.",
        )
    wanted = [*REQUIRED_FILES, *VOCABULARY_FILES, *OPTIONAL_FILES]
    files: list[RemoteFile] = []
    for name in wanted:
        s = siblings.get(name)
        if s is None:
            continue
        size = s.lfs.size if s.lfs is not None else s.size
        if size is None:
            raise FetchError(EXIT_NETWORK, f"the hub gave no size for {repo_id}/{name}")
        files.append(RemoteFile(name, size, s.lfs.sha256 if s.lfs is not None else None))
    return FetchPlan(repo_id, info.sha, tuple(files), root / model_folder_name(repo_id))


def _check_whisper_config(api: HfApi, plan: FetchPlan) -> None:
    """Fetches config.json (a few kB) before the model itself: a CT2 Whisper config, or refused.
    It lands in the target like the rest, so the download that follows does not fetch it again."""
    path = api.hf_hub_download(
        plan.repo_id, "config.json", revision=plan.commit, local_dir=plan.target
    )
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FetchError(EXIT_NOT_WHISPER, f"{plan.repo_id}'s config.json is not JSON ({e})") from e
    if not isinstance(config, dict) or not any(k in config for k in WHISPER_CONFIG_KEYS):
        keys = ", ".join(sorted(config)[:8]) if isinstance(config, dict) else type(config).__name__
        raise FetchError(
            EXIT_NOT_WHISPER,
            f"{plan.repo_id} has a model.bin but its config.json is not a CTranslate2 Whisper "
            f"config (none of {', '.join(WHISPER_CONFIG_KEYS)}; it has {keys})",
        )


def _check_space(plan: FetchPlan) -> None:
    need = plan.missing_bytes()
    if need == 0:
        return
    free = free_bytes(plan.target)
    if free < need + SPACE_MARGIN_BYTES:
        raise FetchError(
            EXIT_NO_SPACE,
            f"{plan.repo_id} needs {_mb(need)} more at {plan.target} and that disk has "
            f"{_mb(free)} free: free some space or pass --dir on a larger disk",
        )


def _verify(api: HfApi, plan: FetchPlan) -> int:
    """Checks every fetched file against the hub's checksums; returns how many were checked."""
    result = api.verify_repo_checksums(plan.repo_id, revision=plan.commit, local_dir=plan.target)
    ours = {f.path for f in plan.files}
    bad = [m for m in result.mismatches if m["path"] in ours]
    missing = sorted(ours & set(result.missing_paths))
    for m in bad:
        # the next run must download it again, not trust the download metadata beside it
        (plan.target / m["path"]).unlink(missing_ok=True)
        meta = plan.target / ".cache" / "huggingface" / "download" / f"{m['path']}.metadata"
        meta.unlink(missing_ok=True)
    if bad or missing:
        details = [
            f"{m['path']}: {m['algorithm']} {m['actual'][:12]}... where the hub says "
            f"{m['expected'][:12]}..."
            for m in bad
        ] + [f"{p}: missing after the download" for p in missing]
        raise FetchError(
            EXIT_CHECKSUM,
            f"{plan.repo_id}@{plan.commit[:12]} did not verify ({'; '.join(details)}); the bad "
            "files were removed: run the same command again",
        )
    return len(ours)


def fetch_model(
    repo_id: str,
    revision: str | None = None,
    root: Path | None = None,
    *,
    endpoint: str | None = None,
    log: list[str] | None = None,
) -> models.ModelInfo:
    """Downloads `repo_id` at `revision` (default: the default branch) into `root/<org>--<name>`,
    verified; returns the model as `models` lists it. Raises FetchError."""
    from huggingface_hub import HfApi, constants

    messages = log if log is not None else []
    if "/" not in repo_id.strip("/"):
        raise FetchError(EXIT_USAGE, f"{repo_id!r} is not a repository id like org/name")
    if constants.is_offline_mode():
        raise FetchError(EXIT_USAGE, "HF_HUB_OFFLINE=1 forbids downloads: unset it to fetch")
    root = root or models.models_dir()
    api = HfApi(endpoint=endpoint, library_name="ozen-whisper")
    target = root / model_folder_name(repo_id)
    existed = target.exists()
    try:
        plan = _plan(api, repo_id, revision, root)
        _check_space(plan)
        _check_whisper_config(api, plan)
        messages.append(
            f"fetching {repo_id}@{plan.commit[:12]}: {len(plan.files)} files, "
            f"{_mb(plan.total_bytes)} ({_mb(plan.missing_bytes())} to download) into {plan.target}"
        )
        api.snapshot_download(
            repo_id,
            revision=plan.commit,
            local_dir=plan.target,
            allow_patterns=[f.path for f in plan.files],
        )
        checked = _verify(api, plan)
    except FetchError as e:
        if e.exit_code == EXIT_NOT_WHISPER and not existed:
            shutil.rmtree(target, ignore_errors=True)  # nothing of a model we refuse stays
        raise
    except Exception as e:
        error = _hub_error(e, repo_id, revision, api.endpoint)
        if error is None:
            raise
        raise error from e
    (plan.target / models.SOURCE_FILE).write_text(f"hf:{repo_id}@{plan.commit}\n")
    messages.append(f"verified {checked} files against the hub's checksums")
    return models.resolve_model(str(plan.target))


def add_fetch_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("repo_id", help="a CTranslate2 Whisper model on the hub: org/name")
    p.add_argument("--revision", default=None, help="branch, tag or commit (default: main)")
    p.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="models root (default: $OZEN_WHISPER_MODELS_DIR or stt-runner/whisper/.models)",
    )
    p.add_argument("--json", action="store_true", help="print the fetched model as JSON")


def fetch_main(args: argparse.Namespace) -> int:
    """The `fetch` command: exit 0, or one of the EXIT_* codes with a one-line message."""
    log: list[str] = []
    try:
        info = fetch_model(args.repo_id, args.revision, args.dir, log=log)
    except FetchError as e:
        for line in log:
            print(f"whisper fetch: {line}", file=sys.stderr)
        print(f"whisper fetch: {e.message}", file=sys.stderr)
        return e.exit_code
    for line in log:
        print(f"whisper fetch: {line}", file=sys.stderr)
    if args.json:
        print(json.dumps(info.to_json()))
    else:
        print(
            f"{info.name}  {info.size_mb:.1f} MB  {info.source}\n{info.path}\n"
            f"use it: --model {info.path} (or WHISPER_MODEL={info.path})"
        )
    return EXIT_OK
