import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { startDeadline } from "./deadline.js";

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
const reason = () => new DOMException("provider deadline", "TimeoutError");

describe("startDeadline", () => {
  test("a deadline ended in time never fires, and its signal serves the next call", async () => {
    const a = startDeadline(30, reason);
    const signal = a.signal;
    a.end();
    await wait(60);
    assert.equal(signal.aborted, false);
    const b = startDeadline(1_000, reason);
    assert.equal(b.signal, signal, "the controller was reused");
    b.end();
  });

  test("a deadline that passes aborts with its reason, and that signal is never handed out again", async () => {
    const a = startDeadline(10, reason);
    await wait(40);
    assert.equal(a.signal.aborted, true);
    assert.equal((a.signal.reason as DOMException).name, "TimeoutError");
    a.end();
    const later = Array.from({ length: 5 }, () => startDeadline(1_000, reason));
    for (const d of later) {
      assert.notEqual(d.signal, a.signal);
      assert.equal(d.signal.aborted, false);
    }
    for (const d of later) d.end();
  });

  test("a signal something still listens to is not reused", () => {
    const a = startDeadline(1_000, reason);
    const listener = () => {};
    a.signal.addEventListener("abort", listener);
    a.end();
    const b = startDeadline(1_000, reason);
    assert.notEqual(b.signal, a.signal);
    b.end();
    a.signal.removeEventListener("abort", listener);
  });

  test("end() twice gives the controller back once", () => {
    const a = startDeadline(1_000, reason);
    a.end();
    a.end();
    const b = startDeadline(1_000, reason);
    const c = startDeadline(1_000, reason);
    assert.notEqual(b.signal, c.signal, "two calls in flight never share a signal");
    b.end();
    c.end();
  });

  test("calls in flight at once each have their own signal, and one's deadline aborts only its own", async () => {
    const short = startDeadline(10, reason);
    const long = startDeadline(1_000, reason);
    assert.notEqual(short.signal, long.signal);
    await wait(40);
    assert.equal(short.signal.aborted, true);
    assert.equal(long.signal.aborted, false);
    short.end();
    long.end();
  });
});
