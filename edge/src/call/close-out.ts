/**
 * Closing a call out after the edge restarted under it (adapter). While a call streams, its
 * object keeps a "streaming" marker in storage (the relay `start` and the next block seq) and an
 * alarm due every few seconds (`WATCH_EVERY_MS`, the `watch` purpose of the object's one alarm,
 * `records/alarms.ts`). A live object just sets it again. After a restart (workerd killed, the
 * isolate gone) the alarm wakes a fresh object whose memory holds no call while its storage says
 * streaming: the Twilio socket is gone with the old process, so the call is over, and the runner
 * may hold finals it produced after the edge vanished.
 *
 * The close-out collects them: it opens the call's relay once more (a normal `start` with a fresh
 * credential and `resumeFromSeq` = the persisted next seq, then `stop` at once). A runner that
 * still holds the call hands over the events it kept first, then ends the engine session (its
 * last finals, then `call.ended`); one that gave up on it says how many events were lost
 * (`error` code `events_lost`). The object records what comes (utterance ids after those the
 * record holds), then ends the call with reason `edge_restarted` and flushes the record. The
 * record's counters say what happened: `closeOutEventsRecovered`, `runnerEventsLost` and
 * `runnerFinalsLost`, or `closeOutUnknown` when no runner could say (it did not hold the call).
 */
import type { RunnerToEdge } from "@ozen/shared";
import type { EdgeConfig } from "../config.js";
import type { CallEventStream } from "../events/call-events.js";
import { AlarmMux } from "../records/alarms.js";
import type { CallLedger } from "../records/ledger.js";
import { runnerLink } from "./runner-link.js";
import type { RelayStartBody } from "./runner-link.js";
import type { CallStatsRecorder } from "./stats-recorder.js";

/** The reason a call closed out after a restart ends with. */
export const EDGE_RESTARTED = "edge_restarted";

/** A streaming call's alarm is due this often, ms: the bound on noticing a restart. */
export const WATCH_EVERY_MS = 5_000;
/**
 * The marker is rewritten with the next seq at most this often while blocks flow, ms (the seq
 * only starts a runner session that does not hold the call: a little stale does no harm).
 */
const PROGRESS_EVERY_MS = 5_000;
/** How long the close-out waits for the runner's `call.ended`, ms (a dial that fails retries within it). */
export const CLOSE_OUT_WAIT_MS = 30_000;

const MARKER_KEY = "relay:streaming";
const WATCH = "watch";

/** What a streaming call keeps in storage to be closed out after a restart. */
export interface StreamingMarker {
  /** The relay `start` the call's link opens with (its custom parameters less the call token). */
  readonly start: RelayStartBody;
  /** The next block seq the edge would have sent (persisted at most `PROGRESS_EVERY_MS` late). */
  readonly nextSeq: number;
  readonly startedAtMs: number;
}

/** The marker and the `watch` alarm of one call's object. */
export class StreamingWatch {
  private readonly alarms: AlarmMux;
  private marker: StreamingMarker | undefined;
  private lastProgressMs = 0;

  constructor(private readonly storage: DurableObjectStorage) {
    this.alarms = new AlarmMux(storage);
  }

  /** The call streams from `nowMs` (wall ms): marker written, alarm due in `WATCH_EVERY_MS`. */
  begin(start: RelayStartBody, nowMs: number): void {
    this.marker = { start, nextSeq: 0, startedAtMs: nowMs };
    this.lastProgressMs = nowMs;
    void this.storage.put(MARKER_KEY, this.marker);
    this.alarms.schedule(WATCH, nowMs + WATCH_EVERY_MS);
  }

  /** Block `nextSeq - 1` went to the link at `nowMs`: the marker follows, at most every `PROGRESS_EVERY_MS`. */
  progress(nextSeq: number, nowMs: number): void {
    if (!this.marker || nowMs - this.lastProgressMs < PROGRESS_EVERY_MS) return;
    this.lastProgressMs = nowMs;
    this.marker = { ...this.marker, nextSeq };
    void this.storage.put(MARKER_KEY, this.marker, { allowUnconfirmed: true });
  }

  /** The call is over and recorded: no marker, no watch. */
  end(): void {
    this.marker = undefined;
    void this.storage.delete(MARKER_KEY);
    this.alarms.cancel(WATCH);
  }

  /**
   * The object's alarm at `nowMs`. `holdsCall`: this object's memory has the call (it streams,
   * or ends it now): the watch goes on. Otherwise the marker, when storage says the call was
   * streaming: close it out. Undefined: nothing to do.
   */
  async alarm(nowMs: number, holdsCall: boolean): Promise<StreamingMarker | undefined> {
    if (this.alarms.takeDue(nowMs, [WATCH]).length === 0) return undefined;
    if (holdsCall) {
      this.alarms.schedule(WATCH, nowMs + WATCH_EVERY_MS);
      return undefined;
    }
    return (await this.storage.get<StreamingMarker>(MARKER_KEY)) ?? undefined;
  }
}

export interface CloseOutParts {
  readonly config: EdgeConfig;
  readonly events: CallEventStream;
  readonly ledger: CallLedger;
  readonly stats: CallStatsRecorder;
  readonly watch: StreamingWatch;
  /** The call's stream is over (`StreamAdmission.ended`): the old object could not say so. */
  readonly streamEnded: (nowMs: number) => void;
  readonly log: (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;
}

/** What the runner said during a close-out. */
interface CloseOutOutcome {
  recovered: number;
  lost: { events: number; finals: number } | undefined;
  /** The runner answered with a new session (`call.started`): it did not hold the call. */
  freshSession: boolean;
  ended: boolean;
}

/**
 * Closes out the call `marker` describes on a fresh object (see the module comment). Resolves
 * when the call is ended and recorded; never throws.
 */
export async function closeOutCall(marker: StreamingMarker, p: CloseOutParts): Promise<void> {
  const callSid = marker.start.callSid;
  const { stats, events, ledger } = p;
  if (ledger.view().call?.status === "ended") {
    p.watch.end(); // the restart came after the call was recorded as ended: nothing to close
    return;
  }
  stats.callSid = callSid;
  stats.streamSid = marker.start.streamSid;
  stats.startedAtMs = marker.startedAtMs;
  stats.state = "ended"; // this object holds the call now: no stream may start on it
  p.log("warn", "edge restarted under a streaming call: closing it out", { nextSeq: marker.nextSeq });
  // what the runner says next gets utterance ids after those the record holds (the ledger's
  // nextUtteranceN), and the runner's backlog is only what no edge received: no repeats

  const outcome: CloseOutOutcome = { recovered: 0, lost: undefined, freshSession: false, ended: false };
  let runnerEnded!: () => void;
  const ended = new Promise<void>((resolve) => (runnerEnded = resolve));
  const onControl = (m: RunnerToEdge): void => {
    if (m.type === "error" && m.code === "events_lost" && m.lost) {
      outcome.lost = m.lost;
      return;
    }
    if (m.type !== "event") return;
    const e = m.event;
    if (e.type === "call.ended") {
      // the edge's own call.ended names the restart; the runner's only says it is done
      outcome.ended = true;
      runnerEnded();
      return;
    }
    if (e.type === "call.started") {
      outcome.freshSession = true;
      return;
    }
    outcome.recovered++;
    stats.countEvent(e.type);
    events.fromRunner(callSid, e);
  };
  const link = runnerLink(
    p.config,
    marker.start,
    {
      onControl,
      onBlockDropped: () => {},
      onInvalidEvent: (error) => events.invalidEvent(error),
      log: p.log,
    },
    { firstSeq: marker.nextSeq, closeWhenFinished: false },
  );
  // start (with a fresh credential), then stop at once: nothing to replay, only to collect
  const gaveUp = link.stop(EDGE_RESTARTED, CLOSE_OUT_WAIT_MS);
  await Promise.race([ended, gaveUp]);
  link.close(1000, "close-out done");

  if (outcome.recovered > 0) ledger.count("closeOutEventsRecovered", outcome.recovered);
  if (outcome.lost) {
    ledger.count("runnerEventsLost", outcome.lost.events);
    ledger.count("runnerFinalsLost", outcome.lost.finals);
  } else if (outcome.freshSession || !outcome.ended) {
    // a runner that did not hold the call (another instance, or restarted) or none at all:
    // whatever was produced after the edge went is unknown
    ledger.count("closeOutUnknown");
  }
  const nowMs = Date.now();
  stats.endedAtMs = nowMs;
  stats.endReason = EDGE_RESTARTED;
  p.streamEnded(nowMs);
  events.callEnded(callSid, EDGE_RESTARTED);
  ledger.finish(EDGE_RESTARTED, nowMs);
  stats.persist(nowMs);
  p.watch.end();
  p.log(outcome.lost ? "error" : "info", "call closed out after an edge restart", {
    recovered: outcome.recovered,
    ...(outcome.lost ? { lostEvents: outcome.lost.events, lostFinals: outcome.lost.finals } : {}),
    runnerHeldCall: outcome.ended && !outcome.freshSession,
  });
}
