import assert from "node:assert/strict";
import { test } from "node:test";
import { parseRetryAfter } from "./retry-after.js";

const now = Date.parse("2019-08-06T23:21:15Z");

// RFC 9110 §10.2.3: delay-seconds or an HTTP-date (IMF-fixdate; the obsolete RFC 850 and asctime forms too).
const cases: Array<[string, string | string[] | undefined | null, number | undefined]> = [
  ["seconds", "120", 120_000],
  ["zero seconds", "0", 0],
  ["seconds with surrounding space", " 5 ", 5_000],
  ["first of several header values", ["3", "9"], 3_000],
  ["HTTP-date 90 s ahead", "Tue, 06 Aug 2019 23:22:45 GMT", 90_000],
  ["HTTP-date in the past is now", "Tue, 06 Aug 2019 23:00:00 GMT", 0],
  ["RFC 850 date", "Tuesday, 06-Aug-19 23:21:25 GMT", 10_000],
  ["asctime date", "Tue Aug  6 23:21:35 2019", 20_000],
  ["absent", undefined, undefined],
  ["null", null, undefined],
  ["empty", "", undefined],
  ["negative seconds", "-5", undefined],
  ["fractional seconds", "1.5", undefined],
  ["garbage", "soon", undefined],
];

for (const [name, value, want] of cases) {
  test(name, () => {
    assert.equal(parseRetryAfter(value, now), want);
  });
}
