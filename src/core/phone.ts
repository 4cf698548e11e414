import { parsePhoneNumberFromString } from "libphonenumber-js/max";

const E164 = /^\+[1-9]\d{1,14}$/;

export function isE164(value: string): boolean {
  return E164.test(value);
}

/**
 * Normalises what providers send to E.164: "+1 (650) 123-4567", "16501234567" (Vonage, Plivo, no '+'),
 * "tel:+1650…". Digits-only input is read as international (country code first), as those providers mean it.
 * Returns undefined for something that is not a phone number (alphanumeric sender ids, short codes are kept
 * by `normaliseSender`).
 */
export function toE164(raw: string): string | undefined {
  let v = raw.trim().replace(/^tel:/i, "");
  if (v.startsWith("00")) v = `+${v.slice(2)}`;
  const digits = v.replace(/[\s().-]/g, "");
  const candidate = digits.startsWith("+") ? digits : `+${digits}`;
  if (!E164.test(candidate)) return undefined;
  // Already canonical (what providers send almost always): nothing for the parser to add, and it is the
  // costliest step of an inbound webhook.
  if (candidate === v) return candidate;
  const parsed = parsePhoneNumberFromString(candidate);
  // Unknown country plans still pass when they are shaped like E.164: a carrier's new range must not be lost.
  return parsed?.number ?? candidate;
}

/**
 * For sender fields: an E.164 number when it is one, else the value as sent (short code "12345" stays a
 * short code only when too short to be international; alphanumeric ids like "ACME" stay as they are).
 */
export function normaliseSender(raw: string): string {
  const v = raw.trim();
  if (/^\d{3,6}$/.test(v)) return v; // short code
  return toE164(v) ?? v;
}

/** +16501234567 → +1650•••4567, for logs that must not carry whole numbers. */
export function maskPhone(phone: string): string {
  if (phone.length <= 7) return phone.replace(/\d(?=\d{2})/g, "•");
  return `${phone.slice(0, 5)}${"•".repeat(Math.max(0, phone.length - 9))}${phone.slice(-4)}`;
}
