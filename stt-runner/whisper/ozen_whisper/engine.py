"""faster-whisper behind one call: a DecodeRequest in, filtered-ready Segments out.

The one thing changed in faster-whisper: the encoder window. faster-whisper pads every window to
30 s of features (3000 frames), so a 2 s streaming pass pays for a 30 s encoder pass. CTranslate2's
Whisper encoder accepts shorter inputs, so ``TrimmedWhisperModel.encode`` cuts the padded features
to the audio plus a margin, but never below ``min_window_ms`` (whisper.cpp's ``audio_ctx`` is the
same idea). Measured on en/asterisk-8k with tiny.en, beam 5: a window of audio + 1 s loops and
truncates (WER 72 %), 5 s is still bad (46 %), 8-10 s matches the full window (6.7 % vs 6.1 %) at
about a third of the encoder cost. A decode that still looks like a loop (compression ratio over
the threshold) is redone once with the full window. ``min_window_ms`` < 0 keeps the full 30 s.
Hebrew with base on he/saspeech (8 kHz mu-law, beam 5) is more sensitive: 10 s 31.0 %, 15 s
29.7 %, 20 s 24.9 %, full 26.2 % (17 utterances), so finals of a multilingual model default to a
20 s window (English-only: 10 s).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from faster_whisper import WhisperModel

from .streaming import DecodeRequest, Segment

FRAMES_PER_SECOND = 100  # Whisper log-mel frames
FULL_WINDOW_FRAMES = 3000
_WINDOW_STEP_FRAMES = 50  # round windows up to 0.5 s so CTranslate2 sees few distinct shapes


class TrimmedWhisperModel(WhisperModel):  # type: ignore[misc]
    """WhisperModel whose encoder sees only the audio of the current decode plus a margin."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._window = threading.local()

    def set_window_frames(self, frames: int | None) -> None:
        """Encoder window for decodes on this thread (None: faster-whisper's full 30 s)."""
        self._window.frames = frames

    def encode(self, features: npt.NDArray[np.float32]) -> Any:
        frames: int | None = getattr(self._window, "frames", None)
        if frames is not None and frames < features.shape[-1]:
            features = np.ascontiguousarray(features[..., :frames])
        return super().encode(features)


@dataclass(frozen=True)
class DecodeOutcome:
    segments: list[Segment]
    decode_ms: int


class Engine:
    """One model shared by the decode threads (CTranslate2 runs ``pool`` decodes in parallel)."""

    def __init__(
        self,
        model_path: str,
        *,
        device: str = "cpu",
        compute_type: str = "int8",
        cpu_threads: int = 0,
        pool: int = 1,
        window_margin_ms: int = 1000,
        min_window_ms: int = 10_000,
        final_min_window_ms: int | None = None,
        loop_compression_ratio: float = 2.4,
    ) -> None:
        self.model = TrimmedWhisperModel(
            model_path,
            device=device,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            num_workers=pool,
            local_files_only=True,
        )
        self.multilingual: bool = bool(self.model.model.is_multilingual)
        self.window_margin_ms = window_margin_ms
        self.min_window_ms = min_window_ms
        if final_min_window_ms is None:
            final_min_window_ms = 20_000 if self.multilingual else 10_000
        self.final_min_window_ms = final_min_window_ms
        self.loop_compression_ratio = loop_compression_ratio
        self.full_window_retries = 0

    def window_frames(self, audio_samples_16k: int, final: bool = False) -> int | None:
        """Encoder frames for this much audio (None: the full 30 s window)."""
        min_ms = self.final_min_window_ms if final else self.min_window_ms
        if min_ms < 0:
            return None
        content = audio_samples_16k * FRAMES_PER_SECOND // 16000
        frames = content + self.window_margin_ms * FRAMES_PER_SECOND // 1000
        frames = max(frames, min_ms * FRAMES_PER_SECOND // 1000)
        frames = -(-frames // _WINDOW_STEP_FRAMES) * _WINDOW_STEP_FRAMES
        return None if frames >= FULL_WINDOW_FRAMES else frames

    def decode(self, req: DecodeRequest) -> DecodeOutcome:
        t0 = time.perf_counter()
        audio = req.audio_16k()
        window = self.window_frames(len(audio), final=req.kind == "final")
        segments = self._transcribe(req, audio, window)
        if window is not None and any(
            s.compression_ratio > self.loop_compression_ratio for s in segments
        ):
            self.full_window_retries += 1
            segments = self._transcribe(req, audio, None)
        return DecodeOutcome(segments, int((time.perf_counter() - t0) * 1000))

    def _transcribe(
        self, req: DecodeRequest, audio: npt.NDArray[np.float32], window: int | None
    ) -> list[Segment]:
        self.model.set_window_frames(window)
        segments, _info = self.model.transcribe(
            audio,
            language=req.language if self.multilingual else "en",
            task="transcribe",
            beam_size=req.beam,
            best_of=1,
            temperature=0.0,
            condition_on_previous_text=False,
            initial_prompt=req.prompt,
            hotwords=req.hotwords,
            without_timestamps=False,
            word_timestamps=False,
            vad_filter=False,
            # The policy filters segments itself (streaming.keep_segment); with one temperature
            # there is no fallback for these thresholds to trigger.
            no_speech_threshold=None,
            log_prob_threshold=None,
            compression_ratio_threshold=None,
        )
        return [
            Segment(
                text=s.text,
                start_s=float(s.start),
                end_s=float(s.end),
                no_speech_prob=float(s.no_speech_prob),
                avg_logprob=float(s.avg_logprob),
                compression_ratio=float(s.compression_ratio),
            )
            for s in segments
        ]

    def warm_up(self) -> None:
        """One short decode, so the first call's pass does not pay for lazy initialisation."""
        silence = np.zeros(8000, dtype=np.float32)
        req = DecodeRequest(
            kind="partial",
            utt=0,
            audio_8k=silence,
            start_sample=0,
            beam=1,
            language="en",
            prompt=None,
            hotwords=None,
        )
        self.decode(req)
