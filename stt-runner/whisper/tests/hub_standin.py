"""A stand-in Hugging Face hub on loopback, speaking the hub's HTTP API as huggingface_hub calls it.

Two servers, like the real thing: the hub (`HF_ENDPOINT`) answers
- `GET /api/models/{repo}/revision/{rev}[?blobs=True]`: the model info, with `sha` (the commit)
  and `siblings` (`rfilename`; with blobs: `size`, `blobId`, and `lfs` {sha256, size, pointerSize});
- `GET /api/models/{repo}/tree/{rev}?recursive=...`: the file list (`type`, `oid`, `size`, `path`,
  `lfs` {oid, size, pointerSize}; no `xetHash`, so the client takes the plain HTTP road);
- `HEAD|GET /{repo}/resolve/{rev}/{path}`: a regular file directly (`ETag` = its git blob sha1,
  `X-Repo-Commit`, `Content-Length`); an LFS file as a 302 to the CDN server with `X-Repo-Commit`,
  `X-Linked-Etag` (its sha256) and `X-Linked-Size`, which is where the client reads them;
- errors as the hub sends them: 404 with `X-Error-Code: RepoNotFound` / `RevisionNotFound` /
  `EntryNotFound`, 401 for a private repository without its token;
and the CDN serves LFS content by sha256 with `Range: bytes=N-` (206 + `Content-Range`).

Faults a test can arm: drop the connection after N bytes of an LFS file (once: the client resumes
by Range in the same run; `then_down`: the network stays down, every later request is closed
unanswered), serve an LFS file corrupted, or understate LFS sizes in the listings.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

LFS_POINTER_SIZE = 134
CHUNK = 64 * 1024


@dataclass
class StandInFile:
    path: str
    source: Path | bytes
    lfs: bool

    def read(self) -> bytes:
        return self.source if isinstance(self.source, bytes) else self.source.read_bytes()

    @property
    def size(self) -> int:
        return len(self.source) if isinstance(self.source, bytes) else self.source.stat().st_size


@dataclass
class StandInRepo:
    repo_id: str
    commit: str
    files: dict[str, StandInFile]
    branches: tuple[str, ...] = ("main",)
    token: str | None = None  # private: only this bearer token reads it
    # digests computed once per file (model.bin is tens of MB)
    _sha256: dict[str, str] = field(default_factory=dict)
    _git_sha1: dict[str, str] = field(default_factory=dict)

    def sha256(self, path: str) -> str:
        if path not in self._sha256:
            h = hashlib.sha256()
            f = self.files[path]
            if isinstance(f.source, bytes):
                h.update(f.source)
            else:
                with f.source.open("rb") as src:
                    for block in iter(lambda: src.read(1 << 20), b""):
                        h.update(block)
            self._sha256[path] = h.hexdigest()
        return self._sha256[path]

    def git_sha1(self, path: str) -> str:
        if path not in self._git_sha1:
            data = self.files[path].read()
            self._git_sha1[path] = hashlib.sha1(
                b"blob %d\0" % len(data) + data, usedforsecurity=False
            ).hexdigest()
        return self._git_sha1[path]


@dataclass
class Faults:
    """What goes wrong next; a test arms these between runs."""

    drop_after_bytes: int | None = None  # close an LFS body after this many bytes (once)
    then_down: bool = False  # after that drop, close every request unanswered
    down: bool = False
    corrupt: set[str] = field(default_factory=set)  # LFS paths served with one byte flipped
    understate_lfs_sizes: bool = False  # listings say 1 kB for LFS files


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    authorization: str | None


class StandInHub:
    def __init__(self) -> None:
        self.repos: dict[str, StandInRepo] = {}
        self.faults = Faults()
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self.hub = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, "hub"))
        self.cdn = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, "cdn"))
        for server in (self.hub, self.cdn):
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.hub.server_address[1]}"

    @property
    def cdn_base(self) -> str:
        return f"http://127.0.0.1:{self.cdn.server_address[1]}"

    def add(self, repo: StandInRepo) -> StandInRepo:
        self.repos[repo.repo_id] = repo
        return repo

    def record(self, r: Request) -> None:
        with self._lock:
            self.requests.append(r)

    def gets(self, path_suffix: str) -> list[Request]:
        """GET requests whose path ends with `path_suffix` (CDN ones are by sha256)."""
        return [r for r in self.requests if r.method == "GET" and r.path.endswith(path_suffix)]

    def lfs_by_sha(self, sha: str) -> tuple[StandInRepo, StandInFile] | None:
        for repo in self.repos.values():
            for f in repo.files.values():
                if f.lfs and repo.sha256(f.path) == sha:
                    return repo, f
        return None

    def close(self) -> None:
        for server in (self.hub, self.cdn):
            server.shutdown()
            server.server_close()


_API_INFO = re.compile(r"^/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?$")
_API_TREE = re.compile(r"^/api/models/([^/]+/[^/]+)/tree/([^/]+)$")
_RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_CDN = re.compile(r"^/lfs/([0-9a-f]{64})$")


def _handler(state: StandInHub, role: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_HEAD(self) -> None:
            self._serve(head=True)

        def do_GET(self) -> None:
            self._serve(head=False)

        def _serve(self, head: bool) -> None:
            url = urlparse(self.path)
            path = unquote(url.path)
            state.record(
                Request(
                    self.command,
                    f"{role}:{path}",
                    self.headers.get("Range"),
                    self.headers.get("Authorization"),
                )
            )
            if state.faults.down:
                self._hang_up()
                return
            if role == "cdn":
                self._cdn(path, head)
                return
            query = parse_qs(url.query)
            if m := _API_TREE.match(path):
                self._tree(m.group(1), m.group(2))
            elif m := _API_INFO.match(path):
                self._info(m.group(1), m.group(2) or "main", "blobs" in query)
            elif m := _RESOLVE.match(path):
                self._resolve(m.group(1), m.group(2), m.group(3), head)
            else:
                self._error(404, "EntryNotFound", f"no route {path}")

        # the hub's API

        def _repo(self, repo_id: str, rev: str) -> StandInRepo | None:
            repo = state.repos.get(repo_id)
            if repo is None:
                self._error(404, "RepoNotFound", "Repository not found")
                return None
            if repo.token is not None and self.headers.get("Authorization") != (
                f"Bearer {repo.token}"
            ):
                # what the hub answers a private repository without its token
                self._error(401, "RepoNotFound", "Invalid username or password.")
                return None
            if rev != repo.commit and rev not in repo.branches:
                self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
                return None
            return repo

        def _size(self, repo: StandInRepo, f: StandInFile) -> int:
            return 1000 if f.lfs and state.faults.understate_lfs_sizes else f.size

        def _lfs(self, repo: StandInRepo, f: StandInFile, digest_key: str) -> dict[str, Any]:
            """An LFS file's pointer info; the hub names its sha256 `sha256` in the model info's
            siblings and `oid` in the tree listing."""
            return {
                digest_key: repo.sha256(f.path),
                "size": self._size(repo, f),
                "pointerSize": LFS_POINTER_SIZE,
            }

        def _info(self, repo_id: str, rev: str, blobs: bool) -> None:
            repo = self._repo(repo_id, rev)
            if repo is None:
                return
            siblings: list[dict[str, Any]] = []
            for f in repo.files.values():
                s: dict[str, Any] = {"rfilename": f.path}
                if blobs:
                    s["size"] = self._size(repo, f)
                    s["blobId"] = repo.git_sha1(f.path)
                    if f.lfs:
                        s["lfs"] = self._lfs(repo, f, digest_key="sha256")
                siblings.append(s)
            self._json(
                {
                    "_id": "0" * 24,
                    "id": repo.repo_id,
                    "modelId": repo.repo_id,
                    "sha": repo.commit,
                    "private": repo.token is not None,
                    "disabled": False,
                    "gated": False,
                    "library_name": "ctranslate2",
                    "tags": ["ctranslate2", "audio", "automatic-speech-recognition"],
                    "siblings": siblings,
                    "lastModified": "2026-11-01T00:00:00.000Z",
                }
            )

        def _tree(self, repo_id: str, rev: str) -> None:
            repo = self._repo(repo_id, rev)
            if repo is None:
                return
            entries: list[dict[str, Any]] = []
            for f in repo.files.values():
                e: dict[str, Any] = {
                    "type": "file",
                    "oid": repo.git_sha1(f.path),
                    "size": self._size(repo, f),
                    "path": f.path,
                }
                if f.lfs:
                    e["lfs"] = self._lfs(repo, f, digest_key="oid")
                entries.append(e)
            self._json(entries)

        def _resolve(self, repo_id: str, rev: str, file_path: str, head: bool) -> None:
            repo = self._repo(repo_id, rev)
            if repo is None:
                return
            f = repo.files.get(file_path)
            if f is None:
                self._error(404, "EntryNotFound", f"{file_path} does not exist on {rev}")
                return
            if f.lfs:
                sha = repo.sha256(f.path)
                self.send_response(302)
                self.send_header("Location", f"{state.cdn_base}/lfs/{sha}")
                self.send_header("X-Repo-Commit", repo.commit)
                self.send_header("X-Linked-Etag", f'"{sha}"')
                self.send_header("X-Linked-Size", str(f.size))
                self.send_header("ETag", f'"{repo.git_sha1(f.path)}"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = f.read()
            self.send_response(200)
            self.send_header("X-Repo-Commit", repo.commit)
            self.send_header("ETag", f'"{repo.git_sha1(f.path)}"')
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            if not head:
                self.wfile.write(data)

        # the CDN

        def _cdn(self, path: str, head: bool) -> None:
            m = _CDN.match(path)
            found = state.lfs_by_sha(m.group(1)) if m else None
            if found is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            repo, f = found
            size = f.size
            start = 0
            rng = self.headers.get("Range")
            if rng:
                rm = re.fullmatch(r"bytes=(\d+)-", rng)
                if rm is None or int(rm.group(1)) >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = int(rm.group(1))
            self.send_response(206 if rng else 200)
            if rng:
                self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size - start))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", f'"{repo.sha256(f.path)}"')
            self.end_headers()
            if head:
                return
            faults = state.faults
            drop_at = faults.drop_after_bytes
            sent = 0
            flip_at = size // 2 if f.path in faults.corrupt else -1
            source = f.source
            with source.open("rb") if isinstance(source, Path) else io.BytesIO(source) as src:
                src.seek(start)
                offset = start
                while block := src.read(CHUNK):
                    if flip_at >= offset and flip_at < offset + len(block):
                        b = bytearray(block)
                        b[flip_at - offset] ^= 0xFF
                        block = bytes(b)
                    if drop_at is not None and sent + len(block) > drop_at:
                        self.wfile.write(block[: drop_at - sent])
                        self.wfile.flush()
                        faults.drop_after_bytes = None
                        faults.down = faults.then_down
                        self._hang_up()
                        return
                    self.wfile.write(block)
                    sent += len(block)
                    offset += len(block)

        # helpers

        def _json(self, value: object) -> None:
            body = json.dumps(value).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, code: str, message: str) -> None:
            body = json.dumps({"error": message}).encode()
            self.send_response(status)
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _hang_up(self) -> None:
            """The network goes away: the socket closes with no (further) bytes."""
            self.close_connection = True
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    return Handler


def main() -> None:
    """`python tests/hub_standin.py`: serves the tiny.en installed here as
    `ozen-test/whisper-tiny.en-ct2` until stdin closes; prints the hub's endpoint on its first
    line. For the tests of `ozen models fetch`, which run the CLI from outside Python."""
    import sys

    from ozen_whisper import models

    tiny = Path(models.resolve_model("tiny.en").path)
    hub = StandInHub()
    names = ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt")
    files = {n: StandInFile(n, tiny / n, lfs=n == "model.bin") for n in names}
    commit = hashlib.sha1(b"ozen stand-in commit", usedforsecurity=False).hexdigest()
    hub.add(StandInRepo("ozen-test/whisper-tiny.en-ct2", commit, files))
    print(hub.endpoint, flush=True)
    sys.stdin.read()
    hub.close()


if __name__ == "__main__":
    main()
