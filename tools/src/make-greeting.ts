/**
 * Writes edge/assets/greeting.ulaw: the default greeting, a soft two-note chime (0.6 s, 8 kHz
 * mu-law). A deployment replaces the file with its own recorded greeting in the same format
 * (e.g. `ffmpeg -i hello.wav -ar 8000 -ac 1 -f mulaw greeting.ulaw`).
 */
import { writeFileSync } from "node:fs";
import { encodeMulaw } from "@ozen/shared";

const RATE = 8000;
const notes = [
  { hz: 659.25, ms: 280 },
  { hz: 880, ms: 320 },
];
const total = notes.reduce((n, x) => n + (x.ms * RATE) / 1000, 0);
const pcm = new Int16Array(total);
let at = 0;
for (const { hz, ms } of notes) {
  const n = (ms * RATE) / 1000;
  for (let i = 0; i < n; i++) {
    const env = Math.min(1, i / 80) * Math.exp((-3 * i) / n);
    pcm[at + i] = Math.round(8000 * env * Math.sin((2 * Math.PI * hz * i) / RATE));
  }
  at += n;
}
const out = process.argv[2] ?? "edge/assets/greeting.ulaw";
writeFileSync(out, encodeMulaw(pcm));
console.log(`wrote ${out}: ${pcm.length} samples`);
