"""Silero VAD over the call's 8 kHz audio through onnxruntime, streaming, without torch.

Which ONNX: the streaming Silero model ``silero_vad.onnx`` (v6.2.3) as shipped in the
``silero-vad`` package's data (installed with --no-deps: we read the file, never import its
torch code). Its inputs are ``input`` (context + window), ``state`` [2, 1, 128] and ``sr``; at
8 kHz it takes 256-sample windows with 32 samples of context, at 16 kHz 512 with 64, both 32 ms,
and the state it returns is carried into the next window. The ONNX inside the faster-whisper wheel
(``silero_vad_v6.onnx``) does not fit: it is a 16 kHz-only variant with a fixed 576-sample input
(512 + 64 context), no ``sr`` input and separate h/c states, built for whole-file batches.

Which rate (``VadConfig.model_rate_hz``; the server's auto is 16 kHz for an English-only model and
8 kHz for a multilingual one, ``config.resolve_vad_rate``): at 16 kHz the model hears the call's
audio upsampled as it comes (soxr's cubic "QQ" stream: 4 samples of delay, where its high-quality
filter holds back 85 ms). Measured on en/asterisk-8k (30 files, 8 kHz mu-law, 200 ms of silence),
against the end of speech that ``ozen bench stt`` takes as the truth (the 16 kHz Silero of
faster-whisper over the whole file): the 8 kHz model ends speech 112 ms after it at the median,
224 ms at p90; at 16 kHz 80 and 160 ms. Every final waits for that end. The 16 kHz windows cost
about 15 % more CPU (2.5 against 2.2 s for those 209 s of audio, one thread). On Hebrew with base
the 16 kHz model cut utterances elsewhere and cost WER, hence 8 kHz for multilingual models.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import onnxruntime
import soxr

from .config import VadConfig

SAMPLE_RATE_HZ = 8000  # the call's audio: every event's sample is at this rate
MODEL_RATES_HZ = (8000, 16000)
WINDOW_MS = 32  # the window the model was trained on: 256 samples at 8 kHz, 512 at 16 kHz
CONTEXT_MS = 4  # audio of the previous window prepended to each window: 32 / 64 samples

Float32Array = npt.NDArray[np.float32]


def silero_onnx_path() -> Path:
    """The streaming Silero ONNX inside the installed silero-vad package (found, not imported)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("silero-vad is not installed (run `make install`)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the silero-vad package")
    return path


class SileroModel:
    """One ONNX session, shared by every stream (onnxruntime's run is thread-safe)."""

    def __init__(self, path: Path | None = None) -> None:
        opts = onnxruntime.SessionOptions()
        # One thread: a window is ~0.1 ms of work, parallelism would cost more than it saves.
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(
            str(path or silero_onnx_path()),
            providers=["CPUExecutionProvider"],
            sess_options=opts,
        )
        self._sr = {rate: np.array(rate, dtype=np.int64) for rate in MODEL_RATES_HZ}

    def window(
        self, x: Float32Array, state: Float32Array, rate_hz: int = SAMPLE_RATE_HZ
    ) -> tuple[float, Float32Array]:
        """Speech probability of one [1, CONTEXT + WINDOW] input at ``rate_hz``, and the next
        state."""
        out, new_state = self._session.run(
            None, {"input": x, "state": state, "sr": self._sr[rate_hz]}
        )
        return float(out[0, 0]), new_state


@dataclass(frozen=True)
class VadEvent:
    """``start``/``end`` of speech; in between, ``pause`` when silence has lasted ``pause_ms`` (the
    end, should the silence last ``min_silence_ms``, will be at the same sample) and ``resume``
    when speech returns after a pause."""

    kind: Literal["start", "end", "pause", "resume"]
    sample: int
    """Stream sample (8 kHz) where speech starts (padded earlier) or ends (padded later)."""
    speech_end: int | None = None
    """``pause`` and ``end``: the stream sample where the speech itself stopped (no padding)."""


class VadStream:
    """Speech start/end over a stream of 8 kHz audio; state carried across windows and feeds.

    Follows Silero's VADIterator: start at the first window >= threshold (minus padding); end once
    the probability has stayed below ``threshold - 0.15`` for ``min_silence_ms`` (plus padding).
    The model runs at ``config.model_rate_hz`` (the audio upsampled for 16 kHz); every position
    below is counted at that rate and reported in 8 kHz stream samples.
    """

    def __init__(self, model: SileroModel, config: VadConfig | None = None) -> None:
        config = config or VadConfig()
        if config.model_rate_hz not in MODEL_RATES_HZ:
            raise ValueError(f"VAD model rate {config.model_rate_hz} Hz, expected 8000 or 16000")
        self._model = model
        self._rate = config.model_rate_hz
        self._up = self._rate // SAMPLE_RATE_HZ  # model samples per stream sample
        self._resampler = (
            soxr.ResampleStream(SAMPLE_RATE_HZ, self._rate, 1, dtype="float32", quality="QQ")
            if self._up > 1
            else None
        )
        rate = self._rate
        window = WINDOW_MS * rate // 1000
        context = CONTEXT_MS * rate // 1000
        self._window_samples = window
        self._threshold = config.threshold
        self._neg_threshold = (
            config.neg_threshold
            if config.neg_threshold is not None
            else max(config.threshold - 0.15, 0.01)
        )
        self._min_silence_samples = config.min_silence_ms * rate // 1000
        self._pad_samples = config.speech_pad_ms * rate // 1000
        self._pause_samples = max(config.pause_ms * rate // 1000, self._pad_samples)
        self._state: Float32Array = np.zeros((2, 1, 128), dtype=np.float32)
        self._input: Float32Array = np.zeros((1, context + window), np.float32)
        self._pending: Float32Array = np.zeros(window, dtype=np.float32)
        self._pending_len = 0
        self._samples_done = 0  # samples through the end of the last full window
        self._triggered = False
        self._temp_end = 0
        self._paused = False
        self.last_prob = 0.0

    @property
    def in_speech(self) -> bool:
        return self._triggered

    def feed(self, pcm: Float32Array) -> list[VadEvent]:
        """Feed 8 kHz float32 samples in [-1, 1]; returns the events they complete, in order."""
        if self._resampler is not None:
            pcm = self._resampler.resample_chunk(pcm)
        events: list[VadEvent] = []
        i = 0
        n = len(pcm)
        window = self._window_samples
        while i < n:
            take = min(window - self._pending_len, n - i)
            self._pending[self._pending_len : self._pending_len + take] = pcm[i : i + take]
            self._pending_len += take
            i += take
            if self._pending_len == window:
                event = self._window()
                if event is not None:
                    events.append(event)
                self._pending_len = 0
        return events

    def _event(
        self,
        kind: Literal["start", "end", "pause", "resume"],
        at: int,
        speech_end: int | None = None,
    ) -> VadEvent:
        """An event at model sample ``at`` (and ``speech_end``), in stream samples."""
        return VadEvent(
            kind, at // self._up, speech_end=None if speech_end is None else speech_end // self._up
        )

    def _window(self) -> VadEvent | None:
        # input = the previous window's last context samples + this window (reused buffer)
        window = self._window_samples
        context = self._input.shape[1] - window
        self._input[0, :context] = self._input[0, window:]
        self._input[0, context:] = self._pending
        prob, self._state = self._model.window(self._input, self._state, self._rate)
        self.last_prob = prob
        window_start = self._samples_done
        self._samples_done += window

        if prob >= self._threshold:
            self._temp_end = 0
            if not self._triggered:
                self._triggered = True
                return self._event("start", max(0, window_start - self._pad_samples))
            if self._paused:
                self._paused = False
                return self._event("resume", window_start)
            return None
        if prob < self._neg_threshold and self._triggered:
            if not self._temp_end:
                self._temp_end = window_start
            silent = self._samples_done - self._temp_end
            if silent >= self._min_silence_samples:
                end = min(self._temp_end + self._pad_samples, self._samples_done)
                speech_end, self._temp_end = self._temp_end, 0
                self._triggered = False
                self._paused = False
                return self._event("end", end, speech_end)
            if not self._paused and silent >= self._pause_samples:
                self._paused = True
                return self._event("pause", self._temp_end + self._pad_samples, self._temp_end)
        return None

    def flush(self) -> list[VadEvent]:
        """End of stream: close an open speech run at the last sample fed."""
        if self._triggered:
            self._triggered = False
            self._paused = False
            return [self._event("end", self._samples_done + self._pending_len)]
        return []
