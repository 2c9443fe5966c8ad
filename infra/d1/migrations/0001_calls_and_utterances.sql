-- Calls and their final utterances, written by each call's Durable Object (edge/src/records/records.ts).
-- Rows carry the version the object gave them: an upsert only replaces a row with a higher
-- version, so a write that is retried (or arrives late) never duplicates or rolls back a row.

CREATE TABLE calls (
  call_sid TEXT PRIMARY KEY,
  account_sid TEXT NOT NULL,
  stream_sid TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('in-progress', 'ended')),
  started_at_ms INTEGER NOT NULL,
  ended_at_ms INTEGER,
  end_reason TEXT,
  -- JSON array of engine names in the order they transcribed the call
  engines TEXT NOT NULL,
  -- JSON array of {wallMs, from, to, reason, resumeFromMs?}
  engine_switches TEXT NOT NULL,
  language TEXT,
  finals INTEGER NOT NULL,
  partials INTEGER NOT NULL,
  first_partial_p50_ms REAL,
  first_partial_p95_ms REAL,
  final_p50_ms REAL,
  final_p95_ms REAL,
  -- JSON object: transcript events by type and delivery counters
  counters TEXT NOT NULL,
  version INTEGER NOT NULL,
  written_at_ms INTEGER NOT NULL
);

CREATE INDEX calls_by_start ON calls (started_at_ms DESC, call_sid DESC);
CREATE INDEX calls_by_status_start ON calls (status, started_at_ms DESC, call_sid DESC);
CREATE INDEX calls_by_account_start ON calls (account_sid, started_at_ms DESC, call_sid DESC);

CREATE TABLE utterances (
  call_sid TEXT NOT NULL,
  -- `${call_sid}:u${n}`
  utterance_id TEXT NOT NULL,
  n INTEGER NOT NULL,
  text TEXT NOT NULL,
  raw_text TEXT NOT NULL,
  first_pass_text TEXT,
  -- other engines' texts for the same audio, JSON [{"engine","text"}] (the whisper final pass); NULL when none
  alternatives TEXT,
  engine TEXT NOT NULL,
  confidence REAL,
  audio_start_ms INTEGER NOT NULL,
  audio_end_ms INTEGER NOT NULL,
  latency_ms REAL,
  first_partial_latency_ms REAL,
  final_wall_ms INTEGER NOT NULL,
  version INTEGER NOT NULL,
  PRIMARY KEY (call_sid, utterance_id)
);

CREATE INDEX utterances_by_call ON utterances (call_sid, n);
