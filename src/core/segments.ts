/**
 * SMS segment arithmetic (3GPP TS 23.038): GSM-7 fits 160 septets in one SMS and 153 per part when
 * concatenated; a single character outside GSM-7 makes the whole message UCS-2: 70 code units, 67 per part.
 * Extension-table characters (€ [ ] { } ~ ^ \ |, form feed) cost two septets and are never split from
 * their escape.
 */

const GSM_BASIC =
  "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\u001bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM_EXTENDED = "\f^{}\\[~]|€";

const basic = new Set(Array.from(GSM_BASIC));
const extended = new Set(Array.from(GSM_EXTENDED));

export type Encoding = "GSM-7" | "UCS-2";

export function encodingOf(text: string): Encoding {
  for (const ch of text) if (!basic.has(ch) && !extended.has(ch)) return "UCS-2";
  return "GSM-7";
}

/** Units a character costs: septets for GSM-7, UTF-16 code units for UCS-2. */
function cost(ch: string, enc: Encoding): number {
  if (enc === "UCS-2") return ch.length;
  return extended.has(ch) ? 2 : 1;
}

export interface SegmentInfo {
  encoding: Encoding;
  /** Septets (GSM-7) or UTF-16 code units (UCS-2). */
  units: number;
  segments: number;
  perSegment: number;
}

export function countSegments(text: string): SegmentInfo {
  const encoding = encodingOf(text);
  let units = 0;
  for (const ch of text) units += cost(ch, encoding);
  const single = encoding === "GSM-7" ? 160 : 70;
  const multi = encoding === "GSM-7" ? 153 : 67;
  if (units <= single) return { encoding, units, segments: 1, perSegment: single };
  return { encoding, units, segments: Math.ceil(units / multi), perSegment: multi };
}

/** The text of each SMS part, as a handset would receive them. Never splits a surrogate pair or an escape. */
export function splitSegments(text: string): string[] {
  const info = countSegments(text);
  if (info.segments === 1) return [text];
  const parts: string[] = [];
  let current = "";
  let used = 0;
  for (const ch of text) {
    const c = cost(ch, info.encoding);
    if (used + c > info.perSegment) {
      parts.push(current);
      current = "";
      used = 0;
    }
    current += ch;
    used += c;
  }
  if (current) parts.push(current);
  return parts;
}

/**
 * Splits a body into requests of at most `maxChars` characters (a provider's per-request limit, e.g.
 * Twilio's 1600), cutting only between SMS segments so each request concatenates cleanly on the handset.
 */
export function splitForProvider(text: string, maxChars: number): string[] {
  if (text.length <= maxChars) return [text];
  const out: string[] = [];
  let current = "";
  for (const seg of splitSegments(text)) {
    if (current && current.length + seg.length > maxChars) {
      out.push(current);
      current = "";
    }
    current += seg;
  }
  if (current) out.push(current);
  return out;
}
