/**
 * The agent's voice, pure: formats and conversion, the pacing against Twilio's buffer model,
 * what the caller hears, clear and the refusals. A virtual clock drives the player and the
 * Twilio model together; nothing sleeps.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeMulaw, encodeMulaw } from "../src/audio/mulaw.js";
import { MulawConverter, WavReader, formatProblem, parsePlayContentType, wavBytes } from "../src/playback/format.js";
import { PlayoutPacer } from "../src/playback/pacing.js";
import { CallPlayer, FRAME_BYTES, MAX_CHUNK_BYTES } from "../src/playback/player.js";
import type { PlaybackNote } from "../src/playback/player.js";
import { TwilioPlayoutBuffer } from "../src/playback/twilio-buffer.js";

const MULAW_8K = { encoding: "mulaw", sampleRateHz: 8000 } as const;

function ramp(bytes: number, seed = 3): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) out[i] = (i * seed + (i >> 7)) & 0x7f; // never 0xff (silence)
  return out;
}

function pcmBytes(pcm: Int16Array): Uint8Array {
  const out = new Uint8Array(pcm.length * 2);
  const v = new DataView(out.buffer);
  for (let i = 0; i < pcm.length; i++) v.setInt16(i * 2, pcm[i]!, true);
  return out;
}

/**
 * The player and Twilio's buffer on one virtual clock: every `tickMs` the player pumps, what it
 * sends reaches Twilio after `oneWayMs`, Twilio's echoes reach the player after `oneWayMs`.
 */
class Line {
  nowMs = 1000;
  readonly notes: { atMs: number; note: PlaybackNote }[] = [];
  readonly heard: Uint8Array[] = [];
  /** Media frames sent after the last clear, by the payload's first byte. */
  sent: Uint8Array[] = [];
  private inFlight: { atMs: number; run: () => void }[] = [];

  constructor(
    readonly player: CallPlayer,
    readonly twilio = new TwilioPlayoutBuffer(),
    readonly oneWayMs = 30,
  ) {}

  /** Runs the clock for `ms`. */
  run(ms: number, tickMs = 5): void {
    const end = this.nowMs + ms;
    while (this.nowMs < end) {
      this.nowMs += tickMs;
      this.deliver();
      this.send(this.player.pump(this.nowMs));
      this.collect(this.twilio.advance(this.nowMs));
    }
  }

  clear(): void {
    const { actions, notes } = this.player.clear("clear", this.nowMs);
    for (const n of notes) this.notes.push({ atMs: this.nowMs, note: n });
    this.sent = [];
    this.send(actions);
  }

  private send(actions: ReturnType<CallPlayer["pump"]>): void {
    for (const a of actions) {
      const at = this.nowMs + this.oneWayMs;
      if (a.kind === "media") {
        const bytes = a.payload.slice();
        this.sent.push(bytes);
        this.inFlight.push({ atMs: at, run: () => this.collect(this.twilio.media(bytes, at)) });
      } else if (a.kind === "mark")
        this.inFlight.push({ atMs: at, run: () => this.collect(this.twilio.mark(a.name, at)) });
      else this.inFlight.push({ atMs: at, run: () => this.collect(this.twilio.clear(at)) });
    }
  }

  private collect(step: { echoes: string[]; heard: Uint8Array }): void {
    this.heard.push(step.heard);
    for (const name of step.echoes) {
      const at = this.nowMs + this.oneWayMs;
      this.inFlight.push({
        atMs: at,
        run: () => {
          for (const n of this.player.onMarkEcho(name, at) ?? []) this.notes.push({ atMs: at, note: n });
        },
      });
    }
  }

  private deliver(): void {
    const due = this.inFlight.filter((f) => f.atMs <= this.nowMs);
    this.inFlight = this.inFlight.filter((f) => f.atMs > this.nowMs);
    for (const f of due) f.run();
  }

  heardAudio(): Uint8Array {
    return Uint8Array.from(this.heard.flatMap((h) => [...h]).filter((b) => b !== 0xff));
  }

  types(): string[] {
    return this.notes.map((n) => `${n.note.type}:${"playId" in n.note ? n.note.playId : n.note.name}`);
  }
}

const player = (o: Partial<{ leadMs: number; queueMs: number }> = {}) =>
  new CallPlayer({ leadMs: o.leadMs ?? 1000, queueMs: o.queueMs ?? 60_000 });

describe("formats", () => {
  it("names the supported formats when refusing one", () => {
    expect(formatProblem("pcm16", 22050)).toBe(
      "pcm16 at sampleRate 22050 is not supported; pcm16 at 8000, 16000, 24000 or 48000 Hz, or mulaw at 8000 Hz",
    );
    expect(formatProblem("opus", 48000)).toMatch(/^encoding "opus" is not supported; pcm16 at 8000/);
    expect(formatProblem("mulaw", 16000)).toMatch(/not supported/);
    expect(formatProblem("pcm16", 24000)).toBeNull();
  });

  it("reads the play route's Content-Type", () => {
    expect(parsePlayContentType("audio/wav")).toEqual({ kind: "wav" });
    expect(parsePlayContentType("audio/pcm; rate=24000")).toEqual({
      kind: "raw",
      format: { encoding: "pcm16", sampleRateHz: 24000 },
    });
    expect(parsePlayContentType("audio/x-mulaw")).toEqual({ kind: "raw", format: MULAW_8K });
    expect(parsePlayContentType("audio/pcm;rate=11025")).toHaveProperty(
      "error",
      expect.stringMatching(/11025 is not supported/),
    );
    expect(parsePlayContentType("audio/mpeg")).toHaveProperty(
      "error",
      expect.stringMatching(/audio\/wav .*audio\/pcm;rate=/),
    );
    expect(parsePlayContentType(null)).toHaveProperty("error");
  });

  it("reads a WAV header and its audio however the bytes are split", () => {
    const pcm = Int16Array.from({ length: 500 }, (_, i) => (i * 97) % 3000);
    const wav = wavBytes(pcm, 16000);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 10 }), (cuts) => {
        const r = new WavReader();
        const audio: number[] = [];
        let at = 0;
        let format;
        for (const c of [...cuts, wav.length]) {
          const step = r.push(wav.subarray(at, Math.min(wav.length, at + c)));
          at = Math.min(wav.length, at + c);
          expect(step.state).not.toBe("error");
          if (step.state === "data") {
            format = step.format;
            audio.push(...step.audio);
          }
          if (at >= wav.length) break;
        }
        expect(format).toEqual({ encoding: "pcm16", sampleRateHz: 16000 });
        expect(audio).toEqual([...pcmBytes(pcm)]);
      }),
    );
  });

  it("refuses stereo, 8-bit PCM, an unsupported rate and a non-WAV body, naming the problem", () => {
    const stereo = wavBytes(new Int16Array(10), 8000);
    new DataView(stereo.buffer).setUint16(22, 2, true);
    expect(new WavReader().push(stereo)).toEqual({
      state: "error",
      message: expect.stringMatching(/2 channels, expected mono/),
    });
    const odd = wavBytes(new Int16Array(10), 44100);
    expect(new WavReader().push(odd)).toEqual({
      state: "error",
      message: expect.stringMatching(/44100 is not supported/),
    });
    expect(new WavReader().push(new TextEncoder().encode("ID3 not a wave file"))).toEqual({
      state: "error",
      message: "not a RIFF/WAVE file",
    });
  });

  it("converts pcm16 the same however the chunks split its bytes (odd splits carried)", () => {
    const pcm = Int16Array.from({ length: 2400 }, (_, i) => Math.round(8000 * Math.sin(i / 7)));
    const bytes = pcmBytes(pcm);
    const whole = new MulawConverter({ encoding: "pcm16", sampleRateHz: 24000 });
    const expected = [...whole.convert(bytes), ...whole.finish()];
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 999 }), { maxLength: 8 }), (cuts) => {
        const c = new MulawConverter({ encoding: "pcm16", sampleRateHz: 24000 });
        const got: number[] = [];
        let at = 0;
        for (const n of cuts) {
          got.push(...c.convert(bytes.subarray(at, Math.min(bytes.length, at + n))));
          at = Math.min(bytes.length, at + n);
        }
        got.push(...c.convert(bytes.subarray(at)), ...c.finish());
        expect(got).toEqual(expected);
      }),
      { numRuns: 40 },
    );
  });

  it("encodes pcm16 at 8 kHz by the mu-law table, sample for sample", () => {
    const pcm = Int16Array.from({ length: 320 }, (_, i) => (i * 211) % 30000);
    const c = new MulawConverter({ encoding: "pcm16", sampleRateHz: 8000 });
    expect([...c.convert(pcmBytes(pcm))]).toEqual([...encodeMulaw(pcm)]);
  });
});

describe("PlayoutPacer", () => {
  it("allows a lead's worth at once, then a frame per frame of real time", () => {
    const p = new PlayoutPacer({ leadMs: 1000, frameMs: 20 });
    expect(p.framesAllowed(0)).toBe(50);
    p.sent(1000, 0);
    expect(p.framesAllowed(0)).toBe(0);
    expect(p.nextWakeMs(0)).toBe(20);
    expect(p.framesAllowed(20)).toBe(1);
    expect(p.bufferedMs(500)).toBe(500);
  });

  it("re-anchors on a mark echo: a late Twilio means more buffered", () => {
    const p = new PlayoutPacer({ leadMs: 1000, frameMs: 20 });
    p.sent(1000, 0);
    p.echoed(200, 400); // Twilio had played only 200 ms by 400 ms
    expect(p.bufferedMs(400)).toBe(800);
    p.cleared(500);
    expect(p.bufferedMs(500)).toBe(0);
  });

  it("believes no echo that says Twilio played faster than real time", () => {
    const p = new PlayoutPacer({ leadMs: 1000, frameMs: 20 });
    p.sent(1000, 0);
    p.echoed(1000, 5); // a Twilio that echoes on receipt
    expect(p.bufferedMs(5)).toBe(995);
  });

  it("starts the clock again when audio goes into an empty buffer", () => {
    const p = new PlayoutPacer({ leadMs: 1000, frameMs: 20 });
    p.sent(100, 0);
    expect(p.bufferedMs(5000)).toBe(0);
    p.sent(100, 5000);
    expect(p.bufferedMs(5050)).toBe(50);
  });
});

describe("TwilioPlayoutBuffer", () => {
  it("plays in real time, echoing a mark when the audio before it has played", () => {
    const t = new TwilioPlayoutBuffer();
    t.advance(0);
    t.media(ramp(160), 0);
    expect(t.mark("a", 0).echoes).toEqual([]);
    expect(t.advance(19).echoes).toEqual([]);
    const step = t.advance(20);
    expect(step.echoes).toEqual(["a"]);
    expect(t.playedBytes).toBe(160);
    // nothing buffered: a mark comes straight back
    expect(t.mark("b", 30).echoes).toEqual(["b"]);
  });

  it("empties on clear and echoes every pending mark", () => {
    const t = new TwilioPlayoutBuffer();
    t.advance(0);
    t.media(ramp(1600), 0);
    t.mark("x", 0);
    t.media(ramp(160), 0);
    t.mark("y", 0);
    const step = t.clear(50);
    expect(step.echoes).toEqual(["x", "y"]);
    expect(t.playedBytes).toBe(400);
    expect(t.clearedBytes).toBe(1360);
    expect(t.bufferedMs).toBe(0);
  });
});

describe("CallPlayer", () => {
  it("plays an utterance whole and in order: started, then finished, the caller hears every byte", () => {
    const line = new Line(player());
    const audio = ramp(8000 * 3 + 55); // 3 s and a partial frame
    for (let at = 0; at < audio.length; at += 4000) {
      expect(line.player.play("u1", MULAW_8K, audio.subarray(at, at + 4000), false, line.nowMs)).toEqual({ ok: true });
    }
    line.player.play("u1", undefined, new Uint8Array(0), true, line.nowMs);
    line.run(4000);
    expect(line.types()).toEqual(["playback.started:u1", "playback.finished:u1"]);
    expect([...line.heardAudio()]).toEqual([...audio]);
    const finished = line.notes[1]!.note;
    expect(finished).toEqual({ type: "playback.finished", playId: "u1", durationMs: 3020 });
  });

  it("never lets more than the lead (plus the network's share) wait in Twilio's buffer", () => {
    const line = new Line(player({ leadMs: 1000 }));
    line.player.play("u1", MULAW_8K, ramp(8000 * 5), true, line.nowMs);
    line.run(6000);
    // echoes come a round trip late, so the estimate errs towards more buffered: never over the lead
    expect(line.twilio.maxBufferedMs).toBeLessThanOrEqual(1000);
    expect(line.twilio.maxBufferedMs).toBeGreaterThanOrEqual(900);
    expect(line.twilio.playedBytes).toBe(8000 * 5);
  });

  it("clear: Twilio empties, nothing of the utterance is sent after it, and heardMs is what played", () => {
    const line = new Line(player());
    line.player.play("u1", MULAW_8K, ramp(8000 * 4), false, line.nowMs);
    line.run(1500);
    line.clear();
    line.run(50);
    // the agent goes on streaming the same utterance: dropped, counted, no error
    expect(line.player.play("u1", undefined, ramp(8000), false, line.nowMs)).toEqual({
      ok: true,
      dropped: "after_clear",
    });
    line.run(2000);
    expect(line.sent).toEqual([]);
    const cleared = line.notes.find((n) => n.note.type === "playback.cleared")!.note as { heardMs: number };
    const playedMs = line.twilio.playedBytes / 8;
    // heard is estimated from echoes a round trip old and real time since: within 100 ms here
    expect(Math.abs(cleared.heardMs - playedMs)).toBeLessThan(100);
    expect(line.player.counters.chunksAfterClear).toBe(1);
    expect(line.types()).toEqual(["playback.started:u1", "playback.cleared:u1"]);
    // a new utterance plays after the clear
    line.player.play("u2", MULAW_8K, ramp(800), true, line.nowMs);
    line.run(500);
    expect(line.types().slice(2)).toEqual(["playback.started:u2", "playback.finished:u2"]);
  });

  it("echoes agent marks in order with the audio, and as cleared when a clear comes first", () => {
    const line = new Line(player());
    line.player.play("u1", MULAW_8K, ramp(1600), true, line.nowMs);
    expect(line.player.mark("after-u1")).toEqual({ ok: true });
    line.player.play("u2", MULAW_8K, ramp(8000 * 3), false, line.nowMs);
    line.player.mark("mid-u2");
    line.run(600);
    line.clear();
    line.run(200);
    expect(line.types()).toEqual([
      "playback.started:u1",
      "playback.finished:u1",
      "playback.mark:after-u1",
      "playback.started:u2",
      "playback.cleared:u2",
      "playback.mark:mid-u2",
    ]);
    expect(line.notes.at(-1)!.note).toEqual({ type: "playback.mark", name: "mid-u2", cleared: true });
  });

  it("converts 24 kHz PCM to 8 kHz frames as it arrives (a third of the samples)", () => {
    const line = new Line(player());
    const pcm = Int16Array.from({ length: 24000 }, (_, i) =>
      Math.round(6000 * Math.sin((2 * Math.PI * 440 * i) / 24000)),
    );
    line.player.play("t", { encoding: "pcm16", sampleRateHz: 24000 }, pcmBytes(pcm), true, line.nowMs);
    line.run(1500);
    expect(line.types()).toEqual(["playback.started:t", "playback.finished:t"]);
    const heard = decodeMulaw(line.heardAudio());
    expect(Math.abs(heard.length - 8000)).toBeLessThanOrEqual(FRAME_BYTES);
  });

  it("refuses bad requests with a code and a message, and counts them", () => {
    const p = player({ queueMs: 2000 });
    const now = 0;
    expect(p.play("bad id!", MULAW_8K, ramp(10), false, now)).toMatchObject({ ok: false, code: "bad_message" });
    expect(p.play("u1", undefined, ramp(10), false, now)).toMatchObject({ ok: false, code: "bad_message" });
    expect(p.play("u1", { encoding: "pcm16", sampleRateHz: 44100 }, ramp(10), false, now)).toMatchObject({
      ok: false,
      code: "unsupported_format",
      message: expect.stringMatching(/44100 is not supported; pcm16 at 8000, 16000, 24000 or 48000 Hz/),
    });
    expect(p.play("u1", MULAW_8K, new Uint8Array(MAX_CHUNK_BYTES + 1), false, now)).toMatchObject({
      ok: false,
      code: "chunk_too_large",
    });
    expect(p.play("u1", MULAW_8K, ramp(8000), false, now)).toEqual({ ok: true });
    expect(p.play("u2", MULAW_8K, ramp(10), false, now)).toMatchObject({ ok: false, code: "play_open" });
    expect(p.play("u1", { encoding: "pcm16", sampleRateHz: 8000 }, ramp(10), false, now)).toMatchObject({
      ok: false,
      code: "bad_message",
    });
    // the queue holds 2 s: one more second fits, a third does not
    expect(p.play("u1", undefined, ramp(8000), false, now)).toEqual({ ok: true });
    expect(p.play("u1", undefined, ramp(800), false, now)).toMatchObject({ ok: false, code: "queue_full" });
    expect(p.play("u1", undefined, new Uint8Array(0), true, now)).toEqual({ ok: true });
    expect(p.play("u1", undefined, ramp(10), false, now)).toMatchObject({ ok: false, code: "play_ended" });
    expect(p.append(ramp(10), now)).toMatchObject({ ok: false, code: "no_open_play" });
    expect(p.mark("ozen-x")).toMatchObject({ ok: false, code: "bad_message" });
    expect(p.mark("")).toMatchObject({ ok: false, code: "bad_message" });
    expect(p.mark(7)).toMatchObject({ ok: false, code: "bad_message" });
    expect(p.counters.refused).toEqual({
      bad_message: 6,
      unsupported_format: 1,
      chunk_too_large: 1,
      play_open: 1,
      queue_full: 1,
      play_ended: 1,
      no_open_play: 1,
    });
  });

  it("takes binary chunks for the open utterance", () => {
    const line = new Line(player());
    line.player.play("b", MULAW_8K, new Uint8Array(0), false, line.nowMs);
    const audio = ramp(1000);
    expect(line.player.append(audio.subarray(0, 333), line.nowMs)).toEqual({ ok: true });
    expect(line.player.append(audio.subarray(333), line.nowMs)).toEqual({ ok: true });
    line.player.endOpen();
    line.run(500);
    expect([...line.heardAudio()]).toEqual([...audio]);
  });

  it("under any chunking and any clear, never sends a frame of a cleared utterance after the clear", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 3000 }), { minLength: 1, maxLength: 10 }),
        fc.integer({ min: 0, max: 3000 }),
        (chunks, clearAtMs) => {
          const line = new Line(player({ leadMs: 500 }));
          for (const n of chunks) line.player.play("u", MULAW_8K, ramp(n), false, line.nowMs);
          line.run(clearAtMs);
          line.clear();
          for (const n of chunks) line.player.play("u", MULAW_8K, ramp(n), false, line.nowMs);
          line.run(1000);
          expect(line.sent).toEqual([]);
          expect(line.twilio.maxBufferedMs).toBeLessThanOrEqual(500);
        },
      ),
      { numRuns: 30 },
    );
  });
});
