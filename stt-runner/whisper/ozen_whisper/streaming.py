"""The per-utterance streaming policy: pure (no threads, no clock), fed audio, VAD events, decodes.

One ``StreamPolicy`` per stream session. The caller (the server) feeds it 8 kHz audio with the VAD
events found in that audio, asks it for decode requests, runs them on the model, and hands the
results back. The policy decides:

- **when** a partial pass is due: the utterance has at least ``first_partial_min_ms`` of audio,
  ``partial_min_new_ms`` of new audio arrived since the last pass started, and that pass is done.
  So the pass cadence adapts to the hardware: a slow decode means fewer, larger steps.
- **what** is stable: LocalAgreement-2. The longest common word prefix of two consecutive
  hypotheses is committed (it never shrinks within an utterance); the rest is the tail.
- **the final**: at VAD end of speech, one re-decode of the whole utterance with ``beam_final``.
- **bounded memory**: past ``max_utterance_ms`` the finished segments of the last pass are
  committed and their audio cut, so a long monologue keeps a bounded buffer; with no segment
  boundary at all the utterance is finalised where it stands and a new one continues.

Resampling 8 -> 16 kHz (soxr) happens here only, lazily, when a decode actually runs.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
import soxr

from .config import StreamConfig
from .vad import SAMPLE_RATE_HZ, VadEvent

Float32Array = npt.NDArray[np.float32]
WHISPER_RATE_HZ = 16000
_PREROLL_SAMPLES = SAMPLE_RATE_HZ  # audio kept outside speech, so a padded VAD start finds it
# The VAD marks speech as ended at the first window under its silence threshold, a window or two
# after the voice stops: a pass that ended this much before that mark heard the whole utterance.
_SPEECH_END_SLACK_SAMPLES = SAMPLE_RATE_HZ // 10
_LONG_PHRASE_WORDS = 4  # a phrase this long said twice in a row is a loop
_TRAILING_ELLIPSIS = re.compile(r"\s*(\.\.\.|…)$")


def resample_8k_to_16k(audio: Float32Array) -> Float32Array:
    """8 kHz -> 16 kHz for Whisper with soxr's high-quality filter."""
    out = soxr.resample(audio, SAMPLE_RATE_HZ, WHISPER_RATE_HZ, quality="HQ")
    return np.asarray(out, dtype=np.float32)


# ---------------------------------------------------------------------------- decode values


@dataclass(frozen=True)
class Segment:
    """One Whisper segment; times in seconds from the start of the decoded audio."""

    text: str
    start_s: float
    end_s: float
    no_speech_prob: float = 0.0
    avg_logprob: float = 0.0
    compression_ratio: float = 1.0


@dataclass(frozen=True)
class DecodeRequest:
    kind: Literal["partial", "final"]
    utt: int
    audio_8k: Float32Array
    start_sample: int
    """Call sample (8 kHz) of audio_8k[0]."""
    beam: int
    language: str
    prompt: str | None
    hotwords: str | None
    pass_id: int = 0
    speculative: bool = False
    """A final started at a pause, before the VAD end confirmed it."""
    prefix: str | None = None
    """Words already committed for this audio: forced on the decoder, only the rest is decoded."""
    expect_words: bool = False
    """A final of an utterance whose last partial pass read words: a decode whose every segment
    the guards drop (``keep_segment``), or whose words Whisper is unsure of, is redone once with
    the full window (``engine.weak_final``)."""

    @property
    def end_sample(self) -> int:
        return self.start_sample + len(self.audio_8k)

    def audio_16k(self) -> Float32Array:
        return resample_8k_to_16k(self.audio_8k)


@dataclass(frozen=True)
class VadOut:
    event: Literal["start", "end"]
    ms: int


@dataclass(frozen=True)
class PartialOut:
    utt: int
    text: str
    stable: str
    audio_start_ms: int
    audio_end_ms: int
    decode_ms: int


@dataclass(frozen=True)
class FinalOut:
    utt: int
    text: str
    audio_start_ms: int
    audio_end_ms: int
    decode_ms: int
    beam: int
    from_partials: bool = False
    """Taken from two agreeing partial passes that covered the speech: no decode of its own."""


Output = VadOut | PartialOut | FinalOut


# ---------------------------------------------------------------------------- pure helpers


def keep_segment(seg: Segment, cfg: StreamConfig) -> bool:
    """Whisper's own rule (no speech and low confidence), plus the usual hallucination guards."""
    if not seg.text.strip():
        return False
    if seg.no_speech_prob > cfg.no_speech_threshold and seg.avg_logprob < cfg.log_prob_threshold:
        return False
    if seg.no_speech_prob > 0.9:  # as whisper_streaming: near-certain silence, whatever it says
        return False
    return seg.compression_ratio <= cfg.compression_ratio_threshold


def compression_ratio(text: str) -> float:
    """zlib's ratio of the text's UTF-8 bytes, Whisper's loop detector (> 2.4: repetitive)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


@dataclass(frozen=True)
class PassWords:
    words: list[str]
    looped: bool
    """The guards cut something: repeated phrases, or the whole pass."""


def pass_words(segments: Sequence[Segment], cfg: StreamConfig) -> PassWords:
    """The words of one pass after the guards: segments Whisper marks as no speech (or as a loop
    even once repeats are cut) dropped, words stuck on one token dropped (``stuck_word``),
    repeated phrases cut (``collapse_repeats``), and nothing at all when what is left still
    compresses like a loop (ratio over the threshold)."""
    raw = words(join_text([s.text for s in segments if keep_segment(s, cfg)]))
    kept = collapse_repeats([w for w in raw if not stuck_word(w)])
    looped = len(kept) < len(raw) or any(
        s.compression_ratio > cfg.compression_ratio_threshold for s in segments
    )
    if compression_ratio(" ".join(kept)) > cfg.compression_ratio_threshold:
        return PassWords([], True)
    return PassWords(kept, looped)


# A unit of one to three letters said four times or more in a row inside one word ("טנננננננ",
# "lalalalala"): the decoder stuck on one token. Letters only: "1000000" is a number.
_STUCK_RUN = re.compile(r"([^\W\d_]{1,3})\1{3,}")


def stuck_word(word: str) -> bool:
    """A word with a loop inside it (``_STUCK_RUN``), which ``collapse_repeats`` cannot see: it
    compares whole words. Such a word is garbage, not a spelling, and is dropped."""
    return _STUCK_RUN.search(unicodedata.normalize("NFKC", word)) is not None


def _norm_word(word: str) -> str:
    """A word as compared for agreement: case-folded, punctuation and marks dropped."""
    kept = [c for c in unicodedata.normalize("NFKC", word) if unicodedata.category(c)[0] in "LN"]
    return "".join(kept).casefold()


def words(text: str) -> list[str]:
    return text.split()


def common_prefix_len(a: Sequence[str], b: Sequence[str]) -> int:
    """Words at the start of a and b that agree (compared normalised)."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if _norm_word(x) != _norm_word(y):
            break
        n += 1
    return n


def collapse_repeats(words: Sequence[str], max_phrase: int = 10) -> list[str]:
    """The words with Whisper's loops cut: a phrase said three or more times in a row (a single
    word: four or more; a phrase of four words or more: twice) is kept once. Compared
    normalised, so "I think, I think, I think" is one phrase three times. Real speech repeats a
    word or a short phrase ("no, no", "I don't know, I don't know"), rarely a long one back to
    back; a decoder stuck in a loop repeats it until the token cap. Cut until nothing is left to
    cut ("a b b b b a b" is "a b a b" once, then "a b")."""
    out = _collapse_once(words, max_phrase)
    while len(out) < len(words):
        words, out = out, _collapse_once(out, max_phrase)
    return out


def _collapse_once(words: Sequence[str], max_phrase: int = 10) -> list[str]:
    norm = [_norm_word(w) for w in words]
    out: list[str] = []
    i = 0
    while i < len(words):
        run = _repeat_at(norm, i, max_phrase)
        if run is None:
            out.append(words[i])
            i += 1
        else:
            n, times = run
            out.extend(words[i : i + n])
            i += n * times
    return out


def _repeat_at(norm: Sequence[str], i: int, max_phrase: int) -> tuple[int, int] | None:
    """(phrase length, times) of a loop starting at word i, or None."""
    for n in range(1, max_phrase + 1):
        need = 4 if n == 1 else 3 if n < _LONG_PHRASE_WORDS else 2
        if i + n * need > len(norm):
            continue
        phrase = norm[i : i + n]
        if not any(phrase):
            continue
        times = 1
        while norm[i + times * n : i + (times + 1) * n] == phrase:
            times += 1
        if times >= need:
            return n, times
    return None


@dataclass
class LocalAgreement:
    """LocalAgreement-2 over whole-utterance hypotheses: committed words never shrink."""

    stable: list[str] = field(default_factory=list)
    previous: list[str] | None = None

    def update(self, hypothesis: list[str]) -> tuple[list[str], list[str]]:
        """Feed one hypothesis; returns (stable words, tail words) for display."""
        if self.previous is not None:
            agreed = common_prefix_len(self.previous, hypothesis)
            if agreed > len(self.stable) and common_prefix_len(self.stable, hypothesis) == len(
                self.stable
            ):
                self.stable = hypothesis[:agreed]
        self.previous = hypothesis
        # Should a pass disagree with committed words, they stay; the tail is what follows them.
        return list(self.stable), hypothesis[len(self.stable) :]

    def reset(self) -> None:
        self.stable = []
        self.previous = None


def join_text(parts: Sequence[str]) -> str:
    return re.sub(r"\s+", " ", " ".join(p.strip() for p in parts if p.strip())).strip()


def _ms(sample: int) -> int:
    return sample * 1000 // SAMPLE_RATE_HZ


# ---------------------------------------------------------------------------- audio buffer


class AudioBuffer:
    """Contiguous float32 audio addressed by stream sample, growable, cut at the front."""

    def __init__(self, capacity: int = SAMPLE_RATE_HZ * 8) -> None:
        self._data: Float32Array = np.zeros(capacity, dtype=np.float32)
        self._head = 0  # index of origin in _data
        self._len = 0
        self.origin = 0  # stream sample of the first kept sample

    @property
    def end(self) -> int:
        return self.origin + self._len

    @property
    def capacity(self) -> int:
        return len(self._data)

    def append(self, pcm: Float32Array) -> None:
        n = len(pcm)
        if self._head + self._len + n > len(self._data):
            if self._len + n > len(self._data) // 2:
                new = np.zeros(max(len(self._data) * 2, self._len + n), dtype=np.float32)
            else:
                new = self._data  # compact in place
            new[: self._len] = self._data[self._head : self._head + self._len]
            self._data = new
            self._head = 0
        start = self._head + self._len
        self._data[start : start + n] = pcm
        self._len += n

    def drop_before(self, sample: int) -> None:
        cut = min(max(sample - self.origin, 0), self._len)
        self._head += cut
        self._len -= cut
        self.origin += cut

    def copy(self, start: int, end: int) -> Float32Array:
        a = max(start, self.origin) - self.origin
        b = min(end, self.end) - self.origin
        return self._data[self._head + a : self._head + max(a, b)].copy()


# ---------------------------------------------------------------------------- the policy


@dataclass
class _PendingFinal:
    utt: int
    final_id: int
    end_sample: int  # call sample where the final's audio ends
    committed: list[str]
    first_start: int  # call sample where the utterance began
    speculative: bool
    beam: int
    req: DecodeRequest | None = None  # None: the text came from the partials
    confirmed: bool = False
    text: str | None = None  # set when its decode is done (or at once, from the partials)
    decode_ms: int = 0
    fallback: list[str] = field(default_factory=list)
    """Words of the utterance's last two agreeing partial passes when it was requested: the
    final's words when its decode comes back with none (nothing heard is lost to the guards)."""
    fell_back: bool = False


class StreamPolicy:
    """One stream session's utterances (see the module doc)."""

    def __init__(
        self,
        cfg: StreamConfig,
        *,
        language: str,
        hints: Sequence[str] = (),
        prompt: str = "",
        origin_sample: int = 0,
    ) -> None:
        self.cfg = cfg
        self.language = language
        self.hotwords = " ".join(h.strip() for h in hints if h.strip()) or None
        self._context = prompt.strip()  # previous finals (and the opening prompt), for prompts
        self._origin = origin_sample  # call sample of stream sample 0
        self._buf = AudioBuffer()
        self._utt = -1
        self._in_utt = False
        self._utt_start = 0  # stream sample where the current utterance's kept audio starts
        self._utt_first_start = 0  # stream sample where the utterance began (before any trim)
        self._committed: list[str] = []  # text of segments trimmed off this utterance
        self._agreement = LocalAgreement()
        self._pass_in_flight = False
        self._pass_id = 0  # partial passes
        self._final_id = 0  # final requests (their own sequence: a final never voids a partial)
        self._last_pass_end = 0  # stream sample the last partial pass covered up to
        self._hyp: list[str] = []  # words of the last finished pass (over the kept audio)
        self._hyp_end = 0  # stream sample that pass's audio ended at
        self._hyp_agreed = False  # that pass said what the one before it said
        self._partials_out = 0  # partials emitted in this utterance
        self.max_buffer_samples = 0  # high-water mark of the kept audio (tests: bounded memory)
        self.finals_requested = 0
        self.finals_from_partials = 0
        self.finals_fell_back = 0  # decoded finals with no words that took the partials' words
        self.segments_committed = 0  # stable segments cut off before the utterance ended
        self.loops_cut = 0  # passes whose repeats (or whole text) the loop guards cut
        self._paused = False  # VAD saw a pause: no partial passes until it resumes or ends
        self._pause_speech_end: int | None = None  # stream sample where the paused speech stopped
        self._finals: dict[tuple[int, int], _PendingFinal] = {}  # by (utt, final id)
        self.speculative_voided = 0  # speculative finals that speech resuming made useless
        self._speculative: _PendingFinal | None = None

    # -- feeding

    def set_origin(self, origin_sample: int) -> None:
        """Call sample of the first audio sample (set before the first feed)."""
        self._origin = origin_sample

    def feed(
        self, pcm: Float32Array, events: Sequence[VadEvent]
    ) -> tuple[list[Output], list[DecodeRequest]]:
        """Append audio and apply the VAD events found in it (stream samples, in order)."""
        self._buf.append(pcm)
        outs: list[Output] = []
        finals: list[DecodeRequest] = []
        for ev in events:
            if ev.kind == "start" and not self._in_utt:
                self._begin(ev.sample)
                outs.append(VadOut("start", _ms(self._origin + ev.sample)))
            elif ev.kind == "pause" and self._in_utt:
                self._paused = True
                self._pause_speech_end = ev.speech_end
                spec = self._speculate(ev)
                if spec is not None:
                    finals.append(spec)
            elif ev.kind == "resume" and self._in_utt:
                self._paused = False
                self._pause_speech_end = None
                self._drop_speculative()
            elif ev.kind == "end" and self._in_utt:
                outs.append(VadOut("end", _ms(self._origin + ev.sample)))
                final, held = self._end(ev.sample, ev.speech_end)
                outs.extend(held)
                if final is not None:
                    finals.append(final)
        if self._in_utt:
            finals.extend(self._bound_utterance())
        else:
            self._buf.drop_before(self._buf.end - _PREROLL_SAMPLES)
        self.max_buffer_samples = max(self.max_buffer_samples, self._buf.end - self._buf.origin)
        return outs, finals

    def close(self) -> tuple[list[Output], list[DecodeRequest]]:
        """No more audio: an open utterance ends at the last sample."""
        if not self._in_utt:
            return [], []
        end = self._buf.end
        final, held = self._end(end, None)
        return [VadOut("end", _ms(self._origin + end)), *held], [final] if final else []

    # -- partial passes

    def partial_due(self) -> bool:
        if not self._in_utt or self._pass_in_flight:
            return False
        if self._paused:
            return self._closing_pass_due()
        have = self._buf.end - self._utt_start
        if have * 1000 < self.cfg.first_partial_min_ms * SAMPLE_RATE_HZ:
            return False
        new = self._buf.end - max(self._last_pass_end, self._utt_start)
        return new * 1000 >= self.cfg.partial_min_new_ms * SAMPLE_RATE_HZ

    def _closing_pass_due(self) -> bool:
        """At a pause, with greedy finals: one more pass when the last one did not hear the
        speech to its end, so that its words agreeing with the pass before make the final (no
        decode of its own) even though the pause came before a pass could. It runs beside the
        speculative final, which stays the final when the two do not agree."""
        end = self._pause_speech_end
        return (
            self.cfg.greedy_finals
            and end is not None
            and bool(self._hyp)
            and not self._last_pass_heard(end)
            and self._buf.end > end
        )

    def awaiting_first_partial(self) -> bool:
        """In an utterance that has shown no text yet (its first partial is the most urgent)."""
        return self._in_utt and self._partials_out == 0

    def take_partial(self) -> DecodeRequest | None:
        """The partial pass over the latest audio, if one is due; marks it in flight."""
        if not self.partial_due():
            return None
        self._pass_in_flight = True
        self._pass_id += 1
        self._last_pass_end = self._buf.end
        prefix = " ".join(self._agreement.stable) if self.cfg.partial_prefix else ""
        return DecodeRequest(
            kind="partial",
            utt=self._utt,
            audio_8k=self._buf.copy(self._utt_start, self._buf.end),
            start_sample=self._origin + self._utt_start,
            beam=self.cfg.beam_partial,
            language=self.language,
            prompt=self._prompt(),
            hotwords=self.hotwords,
            pass_id=self._pass_id,
            prefix=prefix or None,
        )

    def pending_new_ms(self) -> int:
        """Audio ms that arrived after the last pass started (for the coalescing counter)."""
        return _ms(self._buf.end - max(self._last_pass_end, self._utt_start))

    def on_partial(
        self, req: DecodeRequest, segments: Sequence[Segment], decode_ms: int
    ) -> list[Output]:
        """A partial pass finished; returns the partial to emit (nothing if stale or empty)."""
        if req.utt != self._utt or req.pass_id != self._pass_id:
            return []
        self._pass_in_flight = False
        if not self._in_utt:
            return []
        kept = self._maybe_trim(req, [s for s in segments if keep_segment(s, self.cfg)])
        hyp = self._words(kept, raw=segments)
        # Whisper marks audio cut mid-word with a trailing ellipsis: not a word to commit.
        if hyp:
            last = _TRAILING_ELLIPSIS.sub("", hyp[-1])
            hyp = [*hyp[:-1], last] if last else hyp[:-1]
        if req.start_sample - self._origin == self._utt_start:
            previous = self._hyp if self._hyp_end > self._utt_start else None
            self._hyp_agreed = previous is not None and _same_words(previous, hyp)
            self._hyp, self._hyp_end = hyp, req.end_sample - self._origin
        stable, tail = self._agreement.update(hyp)
        stable_text = join_text([*self._committed, " ".join(stable)])
        text = join_text([stable_text, " ".join(tail)])
        if self.cfg.commit_stable_segments:
            self._commit_stable(req, kept, hyp)
        if not text:
            return []
        self._partials_out += 1
        return [
            PartialOut(
                utt=req.utt,
                text=text,
                stable=stable_text,
                audio_start_ms=_ms(self._origin + self._utt_first_start),
                audio_end_ms=_ms(req.end_sample),
                decode_ms=decode_ms,
            )
        ]

    def partial_cancelled(self, req: DecodeRequest) -> None:
        """The server dropped a taken pass (decode error, shutdown): allow the next one."""
        if req.utt == self._utt and req.pass_id == self._pass_id:
            self._pass_in_flight = False

    # -- finals

    def on_final(
        self, req: DecodeRequest, segments: Sequence[Segment], decode_ms: int
    ) -> list[Output]:
        """A final pass finished: the final to emit, or nothing (no text, speculative and not yet
        confirmed by the VAD end, or speculative and voided by resumed speech)."""
        pending = self._finals.get((req.utt, req.pass_id))
        if pending is None:
            return []
        decoded = self._words(segments)
        if not decoded and pending.fallback:
            decoded, pending.fell_back = pending.fallback, True
            self.finals_fell_back += 1
        pending.text = join_text([*pending.committed, " ".join(decoded)])
        pending.decode_ms = decode_ms
        pending.beam = req.beam  # the server may have decoded it greedily, under load
        if pending.speculative and not pending.confirmed:
            return []  # held until the VAD end confirms it (or speech resumes and voids it)
        return self._release(pending)

    def final_wanted(self, req: DecodeRequest) -> bool:
        """False for a final whose decode no longer matters (a voided speculative one)."""
        return (req.utt, req.pass_id) in self._finals

    def final_failed(self, req: DecodeRequest) -> None:
        pending = self._finals.pop((req.utt, req.pass_id), None)
        if pending is not None and pending is self._speculative:
            self._speculative = None

    # -- internals

    def _words(self, segments: Sequence[Segment], raw: Sequence[Segment] = ()) -> list[str]:
        """``pass_words``, counting the passes the loop guards cut (``raw``: the pass's segments
        before any were set aside, to see a loop the filter already dropped)."""
        got = pass_words(segments, self.cfg)
        threshold = self.cfg.compression_ratio_threshold
        self.loops_cut += got.looped or any(s.compression_ratio > threshold for s in raw)
        return got.words

    def _prompt(self) -> str | None:
        text = join_text([self._context, *self._committed])
        return text[-self.cfg.prompt_chars :] or None

    def _begin(self, sample: int) -> None:
        self._utt += 1
        self._in_utt = True
        self._paused = False
        self._pause_speech_end = None
        self._utt_start = max(sample, self._buf.origin)
        self._utt_first_start = self._utt_start
        self._buf.drop_before(self._utt_start)
        self._reset_utterance()
        self._pass_in_flight = False
        self._last_pass_end = self._utt_start

    def _reset_utterance(self) -> None:
        self._committed = []
        self._agreement.reset()
        self._hyp, self._hyp_end, self._hyp_agreed = [], 0, False
        self._partials_out = 0

    def _final(
        self, end: int, speech_end: int | None, *, speculative: bool
    ) -> DecodeRequest | None:
        """The final of the utterance's audio up to ``end`` (stream samples): taken from the
        partials when the last two passes agreed and the last one heard the speech to its end,
        else a decode request (None when there is nothing to decode)."""
        committed = list(self._committed)
        self._final_id += 1
        pending = _PendingFinal(
            utt=self._utt,
            final_id=self._final_id,
            end_sample=self._origin + end,
            committed=committed,
            first_start=self._origin + self._utt_first_start,
            speculative=speculative,
            beam=self.cfg.beam_final,
        )
        if self._partials_heard_it(speech_end):
            pending.text = join_text([*committed, " ".join(self._hyp)])
            pending.beam = self.cfg.beam_partial
            self.finals_from_partials += 1
        else:
            audio = self._buf.copy(self._utt_start, end)
            if len(audio) < SAMPLE_RATE_HZ // 10 and not committed:
                return None  # under 100 ms: nothing a decode could read
            if self._hyp_agreed and self._hyp:
                pending.fallback = list(self._hyp)
            pending.req = DecodeRequest(
                kind="final",
                utt=self._utt,
                audio_8k=audio,
                start_sample=self._origin + self._utt_start,
                beam=self.cfg.beam_final,
                language=self.language,
                prompt=self._prompt(),
                hotwords=self.hotwords,
                pass_id=self._final_id,
                speculative=speculative,
                expect_words=bool(self._hyp),
            )
        self._finals[(pending.utt, pending.final_id)] = pending
        if speculative:
            self._speculative = pending
        else:
            self.finals_requested += 1
        return pending.req

    def _partials_heard_it(self, speech_end: int | None) -> bool:
        """Greedy finals, and the last two passes agreed and the last heard the speech (that
        stopped at ``speech_end``) to its end: their words are the final."""
        return (
            self.cfg.greedy_finals
            and self._hyp_agreed
            and bool(self._hyp)
            and speech_end is not None
            and self._last_pass_heard(speech_end)
        )

    def _last_pass_heard(self, speech_end: int) -> bool:
        """The last finished pass heard the speech that stopped at ``speech_end`` to its end."""
        return self._hyp_end >= speech_end - _SPEECH_END_SLACK_SAMPLES

    def _speculate(self, ev: VadEvent) -> DecodeRequest | None:
        """At a pause, start the final early: if the silence lasts, the VAD end falls on the same
        sample and this decode is the final (so TTFS is max(silence, decode), not their sum)."""
        self._drop_speculative()
        if not self.cfg.speculative_finals:
            return None
        return self._final(max(ev.sample, self._utt_start), ev.speech_end, speculative=True)

    def _drop_speculative(self) -> None:
        if self._speculative is not None:
            self.speculative_voided += 1
            spec = self._speculative
            self._finals.pop((spec.utt, spec.final_id), None)
            self._speculative = None

    def _release(self, pending: _PendingFinal) -> list[Output]:
        del self._finals[(pending.utt, pending.final_id)]
        if not pending.text:
            return []
        self._context = join_text([self._context, pending.text])[-self.cfg.prompt_chars * 2 :]
        return [
            FinalOut(
                utt=pending.utt,
                text=pending.text,
                audio_start_ms=_ms(pending.first_start),
                audio_end_ms=_ms(pending.end_sample),
                decode_ms=pending.decode_ms,
                beam=pending.beam,
                from_partials=pending.req is None or pending.fell_back,
            )
        ]

    def _end(
        self, sample: int, speech_end: int | None
    ) -> tuple[DecodeRequest | None, list[Output]]:
        """The utterance ends at ``sample``: a final request, or the speculative one confirmed
        (with its output when its decode is already done)."""
        spec, self._speculative = self._speculative, None
        final: DecodeRequest | None = None
        held: list[Output] = []
        end = max(sample, self._utt_start)
        if (
            spec is not None
            and spec.end_sample == self._origin + end
            and (spec.text is not None or not self._partials_heard_it(speech_end))
        ):
            self.finals_requested += 1
            spec.confirmed = True
            if spec.text is not None:
                held = self._release(spec)
        else:
            if spec is not None:
                self.speculative_voided += 1
                self._finals.pop((spec.utt, spec.final_id), None)
            final = self._final(end, speech_end, speculative=False)
            if final is None:
                pending = self._finals.get((self._utt, self._final_id))
                if pending is not None and pending.text is not None:
                    held = self._release(pending)
        self._in_utt = False
        self._paused = False
        self._pause_speech_end = None
        self._pass_in_flight = False
        self._reset_utterance()
        self._buf.drop_before(sample - _PREROLL_SAMPLES)
        return final, held

    def _commit_stable(self, req: DecodeRequest, kept: list[Segment], hyp: list[str]) -> None:
        """Decode only what is unstable: segments of this pass whose words are all committed
        (LocalAgreement-2) are cut off with their audio; their text moves to the prompt, so
        the next passes decode the rest. The last segment always stays (it may still grow)."""
        if req.start_sample - self._origin != self._utt_start or len(kept) < 2:
            return
        stable = self._agreement.stable
        n_words = 0
        cut_seg = -1
        for i, seg in enumerate(kept[:-1]):
            seg_words = words(seg.text)
            if n_words + len(seg_words) > len(stable):
                break
            if not _same_words(stable[n_words : n_words + len(seg_words)], seg_words):
                break
            n_words += len(seg_words)
            cut_seg = i
        if cut_seg < 0 or not _same_words(hyp[:n_words], stable[:n_words]):
            return
        cut = self._utt_start + int(kept[cut_seg].end_s * SAMPLE_RATE_HZ)
        if cut <= self._utt_start or cut >= req.end_sample - self._origin:
            return
        self._committed.append(" ".join(stable[:n_words]))
        self.segments_committed += cut_seg + 1
        self._utt_start = cut
        self._last_pass_end = max(self._last_pass_end, cut)
        self._agreement.stable = list(stable[n_words:])
        self._agreement.previous = list(hyp[n_words:])
        self._hyp = list(hyp[n_words:])
        self._hyp_end = max(self._hyp_end, cut)
        self._buf.drop_before(cut)

    def _maybe_trim(self, req: DecodeRequest, kept: list[Segment]) -> list[Segment]:
        """Past max_utterance_ms, commit the finished segments of this pass and cut their audio.

        Returns the segments still in the buffer (all of them when nothing was cut)."""
        length = self._buf.end - self._utt_start
        if length * 1000 < self.cfg.max_utterance_ms * SAMPLE_RATE_HZ or len(kept) < 2:
            return kept
        if req.start_sample - self._origin != self._utt_start:
            return kept  # a pass over audio from before an earlier cut
        # Every segment but the last is finished; cut at the end of the last finished one.
        done, rest = kept[:-1], kept[-1:]
        cut = self._utt_start + int(done[-1].end_s * SAMPLE_RATE_HZ)
        if cut <= self._utt_start or cut >= self._buf.end:
            return kept
        self._committed.extend(s.text for s in done)
        self._utt_start = cut
        self._last_pass_end = max(self._last_pass_end, cut)
        self._agreement.reset()
        self._hyp, self._hyp_end, self._hyp_agreed = [], 0, False
        self._buf.drop_before(cut)
        return rest

    def _bound_utterance(self) -> list[DecodeRequest]:
        """Hard cap: with no segment boundary found, finalise the audio so far and go on."""
        hard_cap = (self.cfg.max_utterance_ms + 10_000) * SAMPLE_RATE_HZ // 1000
        if self._buf.end - self._utt_start < hard_cap:
            return []
        end = self._buf.end
        self._drop_speculative()
        final = self._final(end, None, speculative=False)
        # The same speech goes on as a new utterance.
        self._begin(end)
        return [final] if final else []


def _same_words(a: Sequence[str], b: Sequence[str]) -> bool:
    return len(a) == len(b) and common_prefix_len(a, b) == len(a)
