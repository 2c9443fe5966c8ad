/**
 * MediaIngest: the rules for one Twilio Media Streams socket, as a pure object (no I/O, no clock
 * of its own). The adapter hands it each WebSocket message and acts on the event it returns;
 * bad input becomes a counter and a notice with a message a person can act on, never an
 * exception.
 *
 * Two steps per media frame, so the adapter can time the decode alone: `receive` frames, parses
 * and applies the stream rules (media before start, another stream's messages, other tracks, a
 * second start, sequence gaps) and returns an inbound media frame to take; `takeAudio` fills
 * holes in Twilio's media timestamps with silence (never more call audio than the wall time the
 * stream has run), decodes base64 and mu-law straight into the `BlockAssembler`'s block (no
 * per-frame allocation), conceals what cannot be decoded, and measures how far ahead of real time
 * the client is.
 */
import { decodeBase64Into } from "../audio/base64.js";
import { BlockAssembler } from "../audio/blocks.js";
import type { BlockSink } from "../audio/blocks.js";
import type { MediaMessage, ParseErrorKind, TwilioInbound } from "./messages.js";
import { MAX_MESSAGE_BYTES, parseTwilioMessage } from "./parse.js";
import { SequenceTracker } from "./sequence.js";

/** Twilio's media: mu-law at 8 kHz, one byte per sample. */
const SAMPLE_RATE_HZ = 8000;
const SAMPLES_PER_MS = SAMPLE_RATE_HZ / 1000;
/** Twilio's frame: 20 ms, 160 bytes. */
const FRAME_MS = 20;
const FRAME_SAMPLES = 160;
/** The longest hole in Twilio's media timestamps filled with silence; a longer jump is a clock reset. */
export const MAX_GAP_FILL_MS = 5000;
/**
 * Gap filling stops where the call's audio would run ahead of the wall time since its first
 * frame by more than this, ms: silence is audio the edge invents, so a client's timestamps alone
 * never make more of it than time that passed (Twilio's jitter and a late first frame fit well
 * inside a second).
 */
export const GAP_FILL_SLACK_MS = 1000;
/** How far ahead of real time a client may run before it is worth a warning, ms. */
const AHEAD_WARN_MS = 1000;

/** Bad input, each kind the name of its counter in the call's `bad` counters. */
export type BadInputKind =
  | ParseErrorKind
  | "binary_frame"
  | "media_before_start"
  | "payload_not_base64"
  | "payload_not_160_bytes"
  | "payload_empty"
  | "second_start"
  | "other_stream_sid"
  | "bad_token"
  | "bad_phrases";

/** Something worth telling the operator: bad input (counted under `kind`) or a stream warning. */
export interface IngestNotice {
  readonly kind: BadInputKind | "media_gap_filled" | "gap_fill_refused" | "ahead_of_realtime";
  /** What happened and what was done about it, e.g. `media payload is 161 bytes, expected 160; used as is`. */
  readonly message: string;
  readonly fields?: Readonly<Record<string, number>>;
}

/** The socket must close: `code` and `reason` for the close frame. */
export interface IngestClose {
  readonly event: "close";
  readonly code: 1008 | 1009;
  readonly reason: string;
}

/** Nothing for the adapter to do (a `connected`, bad input the call survives, audio not taken). */
export interface IngestIgnored {
  readonly event: "ignored";
}

/**
 * What `receive` tells the adapter: a Twilio message to act on (a `media` returned here is
 * inbound audio to take with `takeAudio`; a `start` is the stream's first), the socket to
 * close, or nothing to do.
 */
export type IngestEvent = TwilioInbound | IngestClose | IngestIgnored;

/** The ingest's counters, as the call's stats report them. */
export interface IngestCounters {
  /** Inbound media frames taken after `start`. */
  readonly framesIn: number;
  /** Frames replaced by silence because their payload could not be decoded. */
  readonly framesConcealed: number;
  /** Silence put in where Twilio's media timestamps jumped (frames lost before us), ms. */
  readonly gapFilledMs: number;
  /**
   * Holes in the media timestamps left unfilled because filling them would have put more audio
   * in the call than wall time passed since its first frame (plus GAP_FILL_SLACK_MS), ms.
   */
  readonly gapFillRefusedMs: number;
  /** Audio put into blocks (decoded, concealed and gap-filled), ms. */
  readonly audioMs: number;
  /** Bad input by kind. */
  readonly bad: Readonly<Record<string, number>>;
  readonly sequenceGaps: number;
  readonly sequenceMissing: number;
  readonly sequenceOutOfOrder: number;
  /** Media frames of a track other than `inbound` (ignored). */
  readonly otherTrackFrames: number;
  /** Most audio received beyond the wall time since the first frame (minus one frame), ms. */
  readonly aheadOfRealtimeMsMax: number;
  readonly dtmf: number;
}

export interface MediaIngestOptions {
  /** Samples per block (e.g. 800 = 100 ms at 8 kHz). */
  readonly blockSamples: number;
  /** Where blocks are decoded into; owns their memory. */
  readonly sink: BlockSink;
}

type State = "awaiting_start" | "streaming" | "ended";

const IGNORED: IngestIgnored = Object.freeze({ event: "ignored" });
const TOO_LARGE: IngestClose = Object.freeze({ event: "close", code: 1009, reason: "message too big" });
const BAD_TOKEN: IngestClose = Object.freeze({ event: "close", code: 1008, reason: "bad call token" });
const NO_NOTICES: readonly IngestNotice[] = Object.freeze([]);

export class MediaIngest {
  private state: State = "awaiting_start";
  private readonly assembler: BlockAssembler;
  private readonly sequence = new SequenceTracker();
  /** Where a payload is base64-decoded before the table decode into the block. */
  private readonly scratch = new Uint8Array((MAX_MESSAGE_BYTES * 3) / 4);
  private notices: IngestNotice[] = [];
  private readonly badCounts: Record<string, number> = {};
  private framesIn = 0;
  private framesConcealed = 0;
  private gapFilledMs = 0;
  private gapFillRefusedMs = 0;
  /** The stream's `streamSid` (from its `start`); "" before it. */
  private streamSid = "";
  private otherTrackFrames = 0;
  private dtmf = 0;
  private aheadMsMax = 0;
  /** Twilio's timestamp (ms) the next frame should carry; -1 before the first. */
  private expectedTimestampMs = -1;
  /** The caller's clock at the first frame taken; -1 before it. */
  private firstMediaAtMs = -1;
  /** The `sequenceNumber` of the last media frame taken (the one a block's ack names). */
  lastMediaSequence = 0;

  constructor(o: MediaIngestOptions) {
    this.assembler = new BlockAssembler(o.blockSamples, o.sink);
  }

  /** True from the first `start` until `finish` or `rejectStart`: media is taken. */
  get streaming(): boolean {
    return this.state === "streaming";
  }

  get blockSamples(): number {
    return this.assembler.blockSamples;
  }

  /**
   * One WebSocket message from Twilio (text, or a binary frame Twilio never sends). Returns
   * what the adapter must do; problems are counted and queued as notices (`takeNotices`).
   */
  receive(data: string | ArrayBuffer | ArrayBufferView): IngestEvent {
    if (typeof data !== "string") {
      this.bad("binary_frame", "Twilio sends JSON text frames only; a binary frame was ignored");
      return IGNORED;
    }
    if (data.length > MAX_MESSAGE_BYTES) {
      this.bad("too_large", `message of ${data.length} bytes is over the ${MAX_MESSAGE_BYTES}-byte limit; closing`);
      return TOO_LARGE;
    }
    const r = parseTwilioMessage(data);
    if (!r.ok) {
      this.bad(r.kind, r.message);
      return IGNORED;
    }
    const m = r.message;
    if (m.event !== "connected" && m.event !== "start" && this.streamSid !== "" && m.streamSid !== this.streamSid) {
      // one socket carries one stream: another stream's audio must never join this call's
      this.bad("other_stream_sid", `${m.event} of another stream (streamSid is not this call's); dropped`);
      return IGNORED;
    }
    if (m.event !== "connected") this.sequence.observe(m.sequenceNumber);
    switch (m.event) {
      case "media":
        if (this.state !== "streaming") {
          this.bad("media_before_start", "media arrived before start (or before its token was checked); dropped");
          return IGNORED;
        }
        if (m.media.track !== "inbound") {
          this.otherTrackFrames++;
          return IGNORED;
        }
        this.framesIn++;
        this.lastMediaSequence = m.sequenceNumber;
        return m;
      case "start":
        if (this.state !== "awaiting_start") {
          this.bad("second_start", "a second start on the same stream was ignored");
          return IGNORED;
        }
        this.state = "streaming";
        this.streamSid = m.streamSid;
        return m;
      case "dtmf":
        this.dtmf++;
        return m;
      default:
        return m;
    }
  }

  /**
   * Puts the audio of a media frame `receive` returned into blocks. `nowMs` is the caller's
   * clock (ms) when the frame arrived: it bounds the gap filling and measures how far ahead of
   * real time the client runs.
   */
  takeAudio(m: MediaMessage, nowMs: number): void {
    if (this.state !== "streaming") return;
    if (this.firstMediaAtMs < 0) this.firstMediaAtMs = nowMs;
    const asm = this.assembler;
    const timestampMs = m.media.timestamp;
    this.fillTimestampGap(timestampMs, nowMs);
    const n = decodeBase64Into(m.media.payload, this.scratch);
    if (n < 0) {
      this.bad("payload_not_base64", "media payload is not valid base64; 20 ms of silence put in its place");
      this.framesConcealed++;
      asm.pushSilence(FRAME_SAMPLES);
      this.expectedTimestampMs = timestampMs + FRAME_MS;
    } else if (n === 0) {
      this.bad("payload_empty", "media payload is empty; ignored");
    } else {
      if (n !== FRAME_SAMPLES)
        this.bad("payload_not_160_bytes", `media payload is ${n} bytes, expected 160; used as is`);
      asm.pushMulaw(this.scratch, n);
      this.expectedTimestampMs = timestampMs + n / SAMPLES_PER_MS;
    }
    this.measureAhead(nowMs);
  }

  /**
   * The stream's `start` failed the caller's check of its token: counted as `bad_token`, no
   * more audio is taken. Returns the close the socket needs.
   */
  rejectStart(why?: string): IngestClose {
    this.bad(
      "bad_token",
      why ? `start's ozen_token is refused: ${why}; closing` : "start has no valid ozen_token parameter; closing",
    );
    this.state = "ended";
    return BAD_TOKEN;
  }

  /**
   * The stream's `ozen_phrases` parameter is not phrase hints (`relay/phrases.ts` says `why`):
   * counted as `bad_phrases`; the call goes on without them.
   */
  refusePhrases(why: string): void {
    this.bad("bad_phrases", `start's ozen_phrases is refused: ${why}; the call goes on without them`);
  }

  /** The stream is over: seals the partly filled last block; no more audio is taken. */
  finish(): void {
    if (this.state === "streaming") this.assembler.flush();
    this.state = "ended";
  }

  /** Notices since the last call, oldest first (allocates only when there are some). */
  takeNotices(): readonly IngestNotice[] {
    if (this.notices.length === 0) return NO_NOTICES;
    const taken = this.notices;
    this.notices = [];
    return taken;
  }

  /** Audio put into blocks so far, ms. */
  get audioMs(): number {
    return this.assembler.samplesIn / SAMPLES_PER_MS;
  }

  /** A snapshot of the counters. */
  counters(): IngestCounters {
    return {
      framesIn: this.framesIn,
      framesConcealed: this.framesConcealed,
      gapFilledMs: this.gapFilledMs,
      gapFillRefusedMs: this.gapFillRefusedMs,
      audioMs: this.audioMs,
      bad: { ...this.badCounts },
      sequenceGaps: this.sequence.gaps,
      sequenceMissing: this.sequence.missing,
      sequenceOutOfOrder: this.sequence.outOfOrder,
      otherTrackFrames: this.otherTrackFrames,
      aheadOfRealtimeMsMax: this.aheadMsMax,
      dtmf: this.dtmf,
    };
  }

  /**
   * Twilio stamps each frame with its media time. When frames went missing upstream (Twilio's
   * congestion drops, error 31930) the stamp jumps: the hole is filled with silence so the
   * engine's audio time stays the call's time. Jumps over MAX_GAP_FILL_MS are not filled (a
   * clock reset, not lost audio), nor are timestamps that went backwards. Lost frames took their
   * time to go missing: the fill stops where the call's audio would pass the wall time since its
   * first frame (`nowMs`) plus GAP_FILL_SLACK_MS, and the rest is counted in `gapFillRefusedMs`.
   */
  private fillTimestampGap(timestampMs: number, nowMs: number): void {
    if (this.expectedTimestampMs < 0) return;
    const gapMs = timestampMs - this.expectedTimestampMs;
    if (gapMs < FRAME_MS || gapMs > MAX_GAP_FILL_MS) return;
    const roomMs = Math.floor(nowMs - this.firstMediaAtMs + GAP_FILL_SLACK_MS - this.audioMs);
    const fillMs = Math.max(0, Math.min(gapMs, roomMs));
    if (fillMs < gapMs) {
      const refusedMs = gapMs - fillMs;
      this.gapFillRefusedMs += refusedMs;
      this.notice({
        kind: "gap_fill_refused",
        message: "media timestamps jumped further than the time that passed; the hole was not filled past real time",
        fields: { gapMs, refusedMs },
      });
    }
    if (fillMs <= 0) return;
    this.assembler.pushSilence(fillMs * SAMPLES_PER_MS);
    this.gapFilledMs += fillMs;
    this.notice({
      kind: "media_gap_filled",
      message: "media timestamps jumped: frames were lost before the edge; filled with silence",
      fields: { gapMs: fillMs },
    });
  }

  private measureAhead(nowMs: number): void {
    const aheadMs = this.audioMs - (nowMs - this.firstMediaAtMs) - FRAME_MS;
    if (aheadMs <= this.aheadMsMax) return;
    const wasBehindWarning = this.aheadMsMax <= AHEAD_WARN_MS;
    this.aheadMsMax = aheadMs;
    // told once, when the client first runs that far ahead
    if (aheadMs > AHEAD_WARN_MS && wasBehindWarning)
      this.notice({
        kind: "ahead_of_realtime",
        message: "client sends faster than real time",
        fields: { aheadMs: Math.round(aheadMs) },
      });
  }

  private bad(kind: BadInputKind, message: string): void {
    this.badCounts[kind] = (this.badCounts[kind] ?? 0) + 1;
    this.notice({ kind, message });
  }

  private notice(n: IngestNotice): void {
    // bounded: an adapter that never takes them must not grow memory without end
    if (this.notices.length < 64) this.notices.push(n);
  }
}
