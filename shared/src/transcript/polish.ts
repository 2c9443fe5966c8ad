/**
 * Final polish for engines that gave no punctuation (Google's fast profile): spacing, and a
 * sentence end, Hebrew-aware. Pure.
 */

const BIDI_MARKS = /[\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
// Hebrew question words, also with the prefixes ו (and) / ש (that)
const HEBREW_QUESTION = /^[וש]?(מה|מי|איפה|מתי|למה|איך|האם|כמה|לאן|מאיפה|מדוע|איזה|איזו|אילו|כיצד)(?=\s|$)/;
const ENGLISH_QUESTION = /^(what|who|where|when|why|how|is|are|do|does|did|can|could|will|would|should)\b/i;

export function polishFinal(raw: string, language = "he"): string {
  let t = raw.replace(BIDI_MARKS, "").replace(/\s+/g, " ").trim();
  if (!t) return "";
  t = t.replace(/\s+([,.?!:;])/g, "$1").replace(/([,?!:;])(?=[^\s\d"'׳״)])/g, "$1 ");
  if (!/[.?!…]$/.test(t)) {
    const question =
      language.startsWith("he") || language.startsWith("iw") ? HEBREW_QUESTION.test(t) : ENGLISH_QUESTION.test(t);
    t += question ? "?" : ".";
  }
  // Latin scripts: a capital first letter (Hebrew has no case)
  return t.replace(/^[a-z]/, (c) => c.toUpperCase());
}
