"""The worker's settings, in one place: command-line flags with their defaults (see README)."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, replace

from .device import DEVICES


@dataclass(frozen=True)
class VadConfig:
    threshold: float = 0.5
    """Speech probability at or above which a window is speech."""
    neg_threshold: float | None = None
    """Probability below which a window counts as silence (default threshold - 0.15)."""
    min_silence_ms: int = 200
    """Silence that ends an utterance (see the README for the measurements behind 200)."""
    speech_pad_ms: int = 100
    """Audio kept before the detected start and after the detected end."""
    pause_ms: int = 100
    """Silence after which a ``pause`` event starts the final early (speculative final)."""
    model_rate_hz: int = 8000
    """Rate Silero runs at: 8000 (the call's own rate) or 16000 (the call's audio upsampled; ends
    speech sooner, see vad.py). The server sets it from ``--vad-rate`` (``resolve_vad_rate``)."""


@dataclass(frozen=True)
class StreamConfig:
    language: str = "he"
    partial_min_new_ms: int = 200
    """New audio since the last pass needed before another partial pass runs."""
    first_partial_min_ms: int = 300
    """Utterance audio needed before the first partial pass."""
    beam_partial: int = 1
    beam_final: int = 5
    max_utterance_ms: int = 20_000
    """Past this, finished segments are committed and cut from the buffer (bounded memory)."""
    prompt_chars: int = 200
    speculative_finals: bool = True
    """Start the final decode at a pause (VAD silence >= padding) instead of at the end."""
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4
    greedy_finals: bool = True
    """Finals may be greedy: taken from the last two partial passes when they agree and heard the
    speech to its end (no decode), or decoded with beam 1 while other calls' work waits. The
    server sets it from ``--greedy-finals`` (auto: English-only models only; see the README)."""
    partial_prefix: bool = False
    """Force the committed words on the decoder of a partial pass (only the tail is generated)."""
    commit_stable_segments: bool = False
    """Cut committed segments off the utterance's audio, so passes decode only the rest."""


@dataclass(frozen=True)
class ServeConfig:
    model: str
    pool: int = 0
    """Decode threads sharing the model; 0 = auto (``resolve_pool``: 2 for an English-only model,
    1 for a multilingual one)."""
    batch: int = 4
    """Most partial passes of different calls decoded as one batch (1: no batching)."""
    device: str = "auto"
    """auto | cpu | cuda (device.choose_device resolves auto)."""
    compute_type: str = "auto"
    """auto (float16 on a GPU, int8 on the CPU) or a CTranslate2 compute type."""
    cpu_threads: int = 0
    """CTranslate2 threads per decode (0 = cores / pool)."""
    window_margin_ms: int = 1000
    """Encoder window = audio + this margin, at least min_window_ms. See engine.py."""
    min_window_ms: int = 5_000
    """Smallest encoder window of a partial pass (< 0: always Whisper's full 30 s window)."""
    final_min_window_ms: int = 10_000
    """Smallest encoder window of a final (< 0: always the full 30 s window; see engine.py for
    the measurements)."""
    vad: VadConfig = VadConfig()
    stream: StreamConfig = StreamConfig()
    greedy_finals: str = "auto"
    """auto | on | off; auto is on for an English-only model (``resolve_greedy_finals``)."""
    vad_rate: int = 0
    """Rate the VAD model runs at: 8000 | 16000, or 0 = auto (``resolve_vad_rate``: 16000 for an
    English-only model, 8000 for a multilingual one)."""
    log_text: bool = False
    """Log transcript text on stderr (personal data: off unless debugging)."""


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    d = StreamConfig()
    v = VadConfig()
    p.add_argument("--model", required=True, help="model name (`models` lists them) or CT2 dir")
    p.add_argument(
        "--pool",
        type=int,
        default=0,
        help="decode threads sharing the model; 0 = auto (2 English-only, 1 multilingual)",
    )
    p.add_argument(
        "--batch", type=int, default=4, help="most partial passes of different calls per batch"
    )
    p.add_argument(
        "--device",
        default="auto",
        choices=DEVICES,
        help="auto (CUDA when CTranslate2 sees a GPU) | cpu | cuda",
    )
    p.add_argument(
        "--compute-type",
        default="auto",
        help="auto (float16 on a GPU, int8 on the CPU) | int8 | int8_float16 | float16 | ...",
    )
    p.add_argument("--cpu-threads", type=int, default=0, help="threads per decode, 0 = auto")
    p.add_argument(
        "--window-margin-ms",
        type=int,
        default=1000,
        help="encoder window = audio + this margin (at least --min-window-ms)",
    )
    p.add_argument(
        "--min-window-ms",
        type=int,
        default=5_000,
        help="smallest encoder window of a partial pass; -1 = always the full 30 s window",
    )
    p.add_argument(
        "--final-min-window-ms",
        type=int,
        default=10_000,
        help="smallest encoder window of a final; -1 = always the full 30 s window",
    )
    p.add_argument("--language", default=d.language, help="default language when open omits it")
    p.add_argument("--partial-min-new-ms", type=int, default=d.partial_min_new_ms)
    p.add_argument("--first-partial-min-ms", type=int, default=d.first_partial_min_ms)
    p.add_argument("--beam-final", type=int, default=d.beam_final)
    p.add_argument("--max-utterance-ms", type=int, default=d.max_utterance_ms)
    p.add_argument("--no-speech-threshold", type=float, default=d.no_speech_threshold)
    p.add_argument("--vad-threshold", type=float, default=v.threshold)
    p.add_argument("--vad-min-silence-ms", type=int, default=v.min_silence_ms)
    p.add_argument("--vad-speech-pad-ms", type=int, default=v.speech_pad_ms)
    p.add_argument("--vad-pause-ms", type=int, default=v.pause_ms)
    p.add_argument(
        "--vad-rate",
        type=int,
        choices=[0, 8000, 16000],
        default=0,
        help="rate Silero runs at: 16000 (the call's audio upsampled) or 8000; "
        "0 = auto (16000 English-only, 8000 multilingual)",
    )
    p.add_argument(
        "--greedy-finals",
        choices=["auto", "on", "off"],
        default="auto",
        help="finals from agreeing partials, and beam 1 under load; auto: English-only models",
    )
    p.add_argument(
        "--partial-prefix",
        action="store_true",
        help="force the committed words on a partial pass's decoder (measured: little gain)",
    )
    p.add_argument(
        "--commit-stable-segments",
        action="store_true",
        help="cut committed segments off the utterance, so passes decode only the rest",
    )
    p.add_argument(
        "--no-speculative-finals",
        action="store_true",
        help="start the final only at the VAD end, not at the pause before it",
    )
    p.add_argument(
        "--log-text",
        action="store_true",
        default=os.environ.get("OZEN_WHISPER_LOG_TEXT") == "1",
        help="log transcript text (personal data)",
    )


def serve_config(args: argparse.Namespace) -> ServeConfig:
    """Validated settings from parsed flags; raises ValueError with a message a user can act on."""
    if args.pool < 0:
        raise ValueError(f"--pool is {args.pool}, expected >= 1 (or 0: auto)")
    if args.batch < 1:
        raise ValueError(f"--batch is {args.batch}, expected >= 1")
    if not 0.0 < args.vad_threshold < 1.0:
        raise ValueError(f"--vad-threshold is {args.vad_threshold}, expected between 0 and 1")
    if args.partial_min_new_ms < 0 or args.max_utterance_ms < 5000:
        raise ValueError("--partial-min-new-ms must be >= 0 and --max-utterance-ms >= 5000")
    return ServeConfig(
        model=args.model,
        pool=args.pool,
        batch=args.batch,
        device=args.device,
        compute_type=args.compute_type,
        cpu_threads=args.cpu_threads,
        window_margin_ms=args.window_margin_ms,
        min_window_ms=args.min_window_ms,
        final_min_window_ms=args.final_min_window_ms,
        vad=VadConfig(
            threshold=args.vad_threshold,
            min_silence_ms=args.vad_min_silence_ms,
            speech_pad_ms=args.vad_speech_pad_ms,
            pause_ms=args.vad_pause_ms,
        ),
        stream=StreamConfig(
            language=args.language,
            partial_min_new_ms=args.partial_min_new_ms,
            first_partial_min_ms=args.first_partial_min_ms,
            beam_final=args.beam_final,
            max_utterance_ms=args.max_utterance_ms,
            no_speech_threshold=args.no_speech_threshold,
            speculative_finals=not args.no_speculative_finals,
            greedy_finals=args.greedy_finals != "off",
            partial_prefix=args.partial_prefix,
            commit_stable_segments=args.commit_stable_segments,
        ),
        log_text=args.log_text,
        greedy_finals=args.greedy_finals,
        vad_rate=args.vad_rate,
    )


def resolve_greedy_finals(cfg: ServeConfig, multilingual: bool) -> ServeConfig:
    """The settings with ``greedy_finals`` decided for the loaded model. Measured (one window per
    utterance, 8 kHz mu-law): tiny.en on en/asterisk-8k, beam 1 5.6 % WER against beam 5 6.3 %;
    base on he/saspeech, beam 1 36.0 % against beam 5 30.7 %. So auto is on for an English-only
    model and off for a multilingual one."""
    on = {"on": True, "off": False}.get(cfg.greedy_finals, not multilingual)
    return replace(cfg, stream=replace(cfg.stream, greedy_finals=on))


def resolve_pool(cfg: ServeConfig, multilingual: bool) -> ServeConfig:
    """The settings with ``pool`` decided for the model (an explicit ``--pool`` is kept). Measured
    with ``ozen bench stt``, one call at a time on 2 cores (each decode thread gets cores / pool):
    tiny.en on en/asterisk-8k, whose finals mostly come from the partials, TTFS p50/p95 426-468 /
    821-903 ms with 2 against 489-490 / 1,031-1,179 with 1, and 4 calls within 1 s instead of 3;
    base on he/saspeech, every final a beam-5 decode that then runs on one thread instead of two,
    1,253 / 2,870 ms with 2 against 1,126 / 1,752 with 1. So auto is 2 for an English-only model
    and 1 for a multilingual one."""
    if cfg.pool > 0:
        return cfg
    return replace(cfg, pool=1 if multilingual else 2)


def resolve_vad_rate(cfg: ServeConfig, multilingual: bool) -> ServeConfig:
    """The settings with the VAD's model rate decided for the model (an explicit ``--vad-rate``
    is kept). Measured with ``ozen bench stt``, one call at a time, each rate in its own run of
    the same session (stop 19): tiny.en on en/asterisk-8k, TTFS p50/p95 420 / 827 ms and WER
    3.10 % at 16 kHz against 458 / 1,193 ms and 3.29 % at 8 kHz (the end of speech 40 ms sooner
    at the median); base on he/saspeech, WER 38.2 % at 16 kHz against 32.9 % at 8 kHz (he/dialog
    52.9 against 50.7 %: the 16 kHz model cuts Hebrew utterances elsewhere, noises at their edges
    become words). So auto is 16000 for an English-only model and 8000 for a multilingual one."""
    rate = cfg.vad_rate or (8000 if multilingual else 16_000)
    return replace(cfg, vad=replace(cfg.vad, model_rate_hz=rate))
