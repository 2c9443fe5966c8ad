"""faster-whisper's model behind one call: a DecodeRequest in, Segments out, one encoder window.

A streaming pass is never longer than one Whisper window (the policy bounds an utterance well
under 30 s), so the worker runs the model itself rather than through ``WhisperModel.transcribe``:
one log-mel, one encoder pass, one ``generate``. That buys four things the loop in ``transcribe``
does not give: exactly one window per pass (``transcribe`` seeks and encodes again whenever a
pass ends on an unfinished segment, about 4 % of passes here), the unfinished last segment kept
(a partial wants it), a committed prefix forced on the decoder (only the unstable tail is
generated), and a cap on new tokens from the audio's length (a loop cannot run to 448 tokens).
faster-whisper still provides the model, the feature extractor and the tokenizer.

The encoder window: faster-whisper pads every window to 30 s of features (3000 frames), so a 2 s
pass would pay for a 30 s encoder pass. CTranslate2's Whisper encoder takes shorter inputs, so the
features are cut to the audio plus a margin, but never below ``min_window_ms`` (whisper.cpp's
``audio_ctx`` is the same idea). Measured on en/asterisk-8k with tiny.en, beam 5: a window of
audio + 1 s loops and truncates (WER 72 %), 5 s is still bad (46 %), 8-10 s matches the full
window (6.7 % vs 6.1 %) at about a third of the encoder cost. A final that still looks like a loop
(compression ratio over the threshold once repeats are cut) is redone once with the full window.
``min_window_ms`` < 0 keeps the full 30 s. Finals get at least ``final_min_window_ms`` (10 s).
Hebrew with base is more sensitive to short windows on short utterances: one decode per
he/saspeech file (8 kHz mu-law, beam 5, 17 files of 2-13 s) gives 29.8 % at both 10 s and 20 s
(467 against 630 ms per decode on two cores), but the 2 s ``sas_02`` cut a few ms apart reads as
nothing or "ע ע" at 10 s and four words at 20 s. A final that weak, after the partials read
words, is redone with the full window (``weak_final``); with that, the whole path at 10 s against
20 s (stop 19, one run each): he/saspeech TTFS p50 1,140 against 1,307 ms, every turn finalised,
WER 32.9 against 36.4 %; he/dialog 824 against 1,310 ms, 50.7 against 52.2 %.

Passes of one window and the same encoder shape can run as one batch (``decode_many``): one
``encode`` and one ``generate`` for several calls' passes.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import ctranslate2
import numpy as np
import numpy.typing as npt
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer

from .streaming import (
    DecodeRequest,
    Segment,
    collapse_repeats,
    compression_ratio,
    stuck_word,
    words,
)

FRAMES_PER_SECOND = 100  # Whisper log-mel frames
FULL_WINDOW_FRAMES = 3000
_WINDOW_STEP_FRAMES = 50  # round windows up to 0.5 s so CTranslate2 sees few distinct shapes
_TIME_PRECISION_S = 0.02  # one timestamp token
_MAX_LENGTH = 448  # Whisper's decoder positions (prompt + generated)
_ONE_WINDOW_SAMPLES_8K = 29 * 8000  # audio decoded in one window (the rest of 30 s: margin)
_MAX_INITIAL_TIMESTAMP_INDEX = 50  # the first timestamp is at most 1.0 s (faster-whisper's default)
# New tokens a pass may generate: a floor plus this many per second of audio. Speech here runs at
# 3-7 tokens/s (English, Hebrew; up to 10 with timestamps and punctuation), so a pass that goes
# past the cap is looping, and the cap ends it instead of the 448-token limit.
_NEW_TOKENS_FLOOR = 12
_NEW_TOKENS_PER_S = 15.0


def max_new_tokens(audio_s: float) -> int:
    """The most tokens a pass over ``audio_s`` seconds may generate."""
    return _NEW_TOKENS_FLOOR + math.ceil(_NEW_TOKENS_PER_S * audio_s)


@dataclass(frozen=True)
class DecodeOutcome:
    segments: list[Segment]
    decode_ms: int
    new_tokens: int = 0
    """Tokens generated (the forced prefix not counted)."""
    capped: bool = False
    """The pass hit its token cap (``max_new_tokens``): it was looping."""


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
        min_window_ms: int = 5_000,
        final_min_window_ms: int = 10_000,
        loop_compression_ratio: float = 2.4,
        keep_segment: Callable[[Segment], bool] | None = None,
        log_prob_threshold: float = -1.0,
    ) -> None:
        self.model = WhisperModel(
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
        self.final_min_window_ms = final_min_window_ms
        self.loop_compression_ratio = loop_compression_ratio
        self.keep_segment = keep_segment
        """The policy's rule for a segment worth keeping: a final of an utterance whose partials
        read words (``DecodeRequest.expect_words``) that keeps none gets the full window."""
        self.log_prob_threshold = log_prob_threshold
        """... and so does one whose mean token log-probability is under this (Whisper's own
        trigger for decoding again, with a higher temperature in ``transcribe``)."""
        self.full_window_retries = 0
        self.capped_passes = 0
        self._tokenizers: dict[str, Tokenizer] = {}
        self._tokenizer_lock = threading.Lock()

    # -- shapes and prompts

    def window_frames(self, audio_samples_16k: int, final: bool = False) -> int:
        """Encoder frames for this much audio (FULL_WINDOW_FRAMES: Whisper's 30 s window)."""
        min_ms = self.final_min_window_ms if final else self.min_window_ms
        if min_ms < 0:
            return FULL_WINDOW_FRAMES
        content = audio_samples_16k * FRAMES_PER_SECOND // 16000
        frames = content + self.window_margin_ms * FRAMES_PER_SECOND // 1000
        frames = max(frames, min_ms * FRAMES_PER_SECOND // 1000)
        frames = -(-frames // _WINDOW_STEP_FRAMES) * _WINDOW_STEP_FRAMES
        return min(frames, FULL_WINDOW_FRAMES)

    def tokenizer(self, language: str) -> Tokenizer:
        lang = language if self.multilingual else "en"
        with self._tokenizer_lock:
            tok = self._tokenizers.get(lang)
            if tok is None:
                tok = Tokenizer(
                    self.model.hf_tokenizer, self.multilingual, task="transcribe", language=lang
                )
                self._tokenizers[lang] = tok
            return tok

    def prompt_tokens(self, req: DecodeRequest, tok: Tokenizer) -> tuple[list[int], list[int]]:
        """Whisper's decoder prompt for the request, and the forced prefix's tokens at its end:
        [<|startofprev|> hotwords previous-text] <|startoftranscript|> <|lang|> <|transcribe|>
        [<|0.00|> prefix]."""
        context: list[int] = []
        if req.hotwords:
            context += tok.encode(" " + req.hotwords.strip())[: _MAX_LENGTH // 4]
        if req.prompt:
            context += tok.encode(" " + req.prompt.strip())
        context = context[-(_MAX_LENGTH // 2 - 1) :]
        prompt = [tok.sot_prev, *context] if context else []
        prompt += list(tok.sot_sequence)
        prefix: list[int] = []
        if req.prefix:
            prefix = tok.encode(" " + req.prefix.strip())[: _MAX_LENGTH // 4]
            prompt += [tok.timestamp_begin, *prefix]
        return prompt, prefix

    # -- decoding

    def decode(self, req: DecodeRequest) -> DecodeOutcome:
        return self.decode_many([req])[0]

    def decode_offline(self, req: DecodeRequest) -> DecodeOutcome:
        """A whole buffer (an offline session: up to 10 min): one window when it fits, else
        faster-whisper's own loop over 30 s windows."""
        if len(req.audio_8k) <= _ONE_WINDOW_SAMPLES_8K:
            return self.decode(req)
        t0 = time.perf_counter()
        segments, _info = self.model.transcribe(
            req.audio_16k(),
            language=req.language if self.multilingual else "en",
            beam_size=req.beam,
            temperature=0.0,
            condition_on_previous_text=False,
            initial_prompt=req.prompt,
            hotwords=req.hotwords,
            vad_filter=False,
            no_speech_threshold=None,
            log_prob_threshold=None,
            compression_ratio_threshold=None,
        )
        out = [
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
        return DecodeOutcome(out, int((time.perf_counter() - t0) * 1000))

    def batch_key(self, req: DecodeRequest) -> tuple[int, int, str, bool]:
        """Requests with equal keys share one ``encode`` and one ``generate`` in ``decode_many``:
        the same window, one beam width (CTranslate2's), one language, and previous text or
        none (aligning prompts with and without it would drop every prompt's context)."""
        frames = self.window_frames(len(req.audio_8k) * 2, final=req.kind == "final")
        return frames, req.beam, req.language, bool(req.prompt or req.hotwords)

    def decode_many(self, reqs: Sequence[DecodeRequest]) -> list[DecodeOutcome]:
        """Decodes the requests; those with the same window, beam and language share one
        ``encode`` and one ``generate`` call (prompts padded to one length, as CTranslate2 asks)."""
        t0 = time.perf_counter()
        prepared = [self._features(r) for r in reqs]
        results: list[tuple[list[Segment], int, bool, bool] | None] = [None] * len(reqs)
        groups: dict[tuple[int, int, str, bool], list[int]] = {}
        for i, r in enumerate(reqs):
            groups.setdefault(self.batch_key(r), []).append(i)
        for idx in groups.values():
            outs = self._run([reqs[i] for i in idx], [prepared[i] for i in idx])
            for i, out in zip(idx, outs, strict=True):
                results[i] = out
        outcomes: list[DecodeOutcome] = []
        for r, p, res in zip(reqs, prepared, results, strict=True):
            assert res is not None
            segments, new_tokens, capped, looped = res
            if (
                r.kind == "final"
                and p[1] < FULL_WINDOW_FRAMES
                and (looped or self._weak(r, segments))
            ):
                # A final whose decode looped, once more with all 30 s: a short window makes
                # Whisper loop more, and the guards would keep only the loop's first words.
                # Measured: base on he/saspeech, 8 of 17 finals; without the retry 34.7 % WER.
                # The same for a weak final after the partials read words: base reads a 2 s
                # Hebrew utterance (sas_02) cut a few ms apart at a 10 s window as nothing, or
                # as "ע ע" (log-probability -1.17), and its four words at 20 or 30 s.
                self.full_window_retries += 1
                full = (p[0], FULL_WINDOW_FRAMES, p[2])
                segments, new_tokens, capped, _ = self._run([r], [full])[0]
            if capped:
                self.capped_passes += 1
            outcomes.append(DecodeOutcome(segments, 0, new_tokens, capped))
        elapsed_ms = int((time.perf_counter() - t0) * 1000)  # a batch's passes share its time
        return [replace(o, decode_ms=elapsed_ms) for o in outcomes]

    def _weak(self, req: DecodeRequest, segments: Sequence[Segment]) -> bool:
        if self.keep_segment is None:
            return False
        return weak_final(req, segments, self.keep_segment, self.log_prob_threshold)

    def _features(self, req: DecodeRequest) -> tuple[npt.NDArray[np.float32], int, float]:
        """The request's log-mel (80 x content frames), its window in frames, its length in s."""
        audio = req.audio_16k()
        mel = self.model.feature_extractor(audio)[:, :-1]
        content_s = len(audio) / 16000
        return mel, self.batch_key(req)[0], content_s

    def _run(
        self,
        reqs: Sequence[DecodeRequest],
        prepared: Sequence[tuple[npt.NDArray[np.float32], int, float]],
    ) -> list[tuple[list[Segment], int, bool, bool]]:
        """Per request: its segments, new tokens, whether it hit its token cap, and whether it
        looped (capped, Whisper's ratio over the threshold before any cut, or a word stuck on
        one token)."""
        frames = prepared[0][1]
        batch = np.zeros((len(reqs), 80, frames), dtype=np.float32)
        for b, (mel, _, _) in enumerate(prepared):
            n = min(mel.shape[-1], frames)
            batch[b, :, :n] = mel[:, :n]
        encoded = self.model.model.encode(ctranslate2.StorageView.from_array(batch))
        tok = self.tokenizer(reqs[0].language)
        prompts: list[list[int]] = []
        prefixes: list[list[int]] = []
        for r in reqs:
            p, prefix = self.prompt_tokens(r, tok)
            prompts.append(p)
            prefixes.append(prefix)
        prompts = _align_prompts(prompts, tok)
        caps = [max_new_tokens(p[2]) for p in prepared]
        max_length = min(_MAX_LENGTH, max(len(p) + c for p, c in zip(prompts, caps, strict=True)))
        generated = self.model.model.generate(
            encoded,
            prompts,
            beam_size=reqs[0].beam,
            patience=1,
            length_penalty=1,
            max_length=max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=_suppressed(tok),
            max_initial_timestamp_index=_MAX_INITIAL_TIMESTAMP_INDEX,
        )
        out: list[tuple[list[Segment], int, bool, bool]] = []
        for (_, _, content_s), res, prefix, cap in zip(
            prepared, generated, prefixes, caps, strict=True
        ):
            # the result holds the forced <|0.00|> prefix too
            tokens = list(res.sequences_ids[0])
            forced = 1 + len(prefix) if prefix else 0
            new_tokens = len(tokens) - forced
            capped = new_tokens >= cap
            if new_tokens > cap:
                tokens = tokens[: forced + cap]  # a batch mate allowed more: the cap is per pass
            avg_logprob = float(res.scores[0]) * len(tokens) / (len(tokens) + 1) if tokens else 0.0
            segs = split_segments(tokens, tok, content_s)
            # the ratio of what the policy would keep: a loop of one phrase is cut to one
            # (collapse_repeats), a pass still repetitive after that is dropped
            text = "".join(tok.decode(s[0]) for s in segs)
            text_words = words(text)
            ratio = compression_ratio(" ".join(collapse_repeats(text_words)))
            looped = (
                capped
                or compression_ratio(text.strip()) > self.loop_compression_ratio
                or any(stuck_word(w) for w in text_words)
            )
            segments = [
                Segment(
                    text=tok.decode(s_tokens),
                    start_s=start,
                    end_s=end,
                    no_speech_prob=float(res.no_speech_prob),
                    avg_logprob=avg_logprob,
                    compression_ratio=ratio,
                )
                for s_tokens, start, end in segs
            ]
            kept = [s for s in segments if s.text.strip()]
            out.append((kept, min(new_tokens, cap), capped, looped))
        return out

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


def weak_final(
    req: DecodeRequest,
    segments: Sequence[Segment],
    keep: Callable[[Segment], bool],
    log_prob_threshold: float,
) -> bool:
    """A final worth a second decode with the full window: the utterance's partials read words
    (``req.expect_words``), and the guards (``keep``) keep none of this decode's, or Whisper is
    unsure of them (mean token log-probability under ``log_prob_threshold``)."""
    if not req.expect_words:
        return False
    kept = [s for s in segments if keep(s)]
    return not kept or kept[0].avg_logprob < log_prob_threshold


def _suppressed(tok: Tokenizer) -> list[int]:
    """faster-whisper's default suppression (suppress_tokens=[-1]): non-speech symbols and the
    task tokens."""
    ids = set(tok.non_speech_tokens)
    ids.update([tok.transcribe, tok.translate, tok.sot, tok.sot_prev, tok.sot_lm, tok.no_speech])
    return sorted(ids)


def _align_prompts(prompts: list[list[int]], tok: Tokenizer) -> list[list[int]]:
    """CTranslate2 wants <|startoftranscript|> at one position across a batch: the previous-text
    part of each prompt is cut from the front to the shortest one (none if one has none)."""
    if len(prompts) < 2:
        return prompts
    sot_at = [p.index(tok.sot) for p in prompts]
    keep = min(sot_at)
    if keep == max(sot_at):
        return prompts
    out = []
    for p, at in zip(prompts, sot_at, strict=True):
        context = p[1:at] if at else []
        kept = context[len(context) - (keep - 1) :] if keep > 1 else []
        out.append(([tok.sot_prev, *kept] if keep else []) + p[at:])
    return out


def split_segments(
    tokens: Sequence[int], tok: Tokenizer, content_s: float
) -> list[tuple[list[int], float, float]]:
    """Whisper's output split at its timestamp tokens into (text tokens, start s, end s); text
    after the last timestamp is a last segment that ends with the audio (a partial wants it)."""
    segs: list[tuple[list[int], float, float]] = []
    current: list[int] = []
    start = 0.0
    for t in tokens:
        if t >= tok.timestamp_begin:
            at = (t - tok.timestamp_begin) * _TIME_PRECISION_S
            if current:
                segs.append((current, start, max(at, start)))
                current = []
            start = at
        elif t < tok.eot:
            current.append(t)
    if current:
        segs.append((current, start, max(content_s, start)))
    return segs
