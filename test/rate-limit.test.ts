import { describe, expect, it } from "vitest";
import { FailureLimiter } from "@/lib/auth/rate-limit";

function limiter(max = 3, windowMs = 60_000) {
  const clock = { t: 1_000_000 };
  return { l: new FailureLimiter(max, windowMs, () => clock.t), clock };
}

describe("FailureLimiter", () => {
  it("allows attempts until max failures, then blocks for the rest of the window", () => {
    const { l, clock } = limiter(3, 60_000);
    expect(l.retryAfter("a")).toBe(0);
    l.fail("a");
    l.fail("a");
    expect(l.retryAfter("a")).toBe(0);
    l.fail("a");
    expect(l.retryAfter("a")).toBe(60);
    clock.t += 30_000;
    expect(l.retryAfter("a")).toBe(30);
    clock.t += 29_500;
    expect(l.retryAfter("a")).toBe(1);
  });

  it("frees the key once the window has passed, and starts a new window", () => {
    const { l, clock } = limiter(2, 10_000);
    l.fail("a");
    l.fail("a");
    expect(l.retryAfter("a")).toBe(10);
    clock.t += 10_000;
    expect(l.retryAfter("a")).toBe(0);
    l.fail("a");
    expect(l.retryAfter("a")).toBe(0);
    l.fail("a");
    expect(l.retryAfter("a")).toBe(10);
  });

  it("counts failures inside one window only", () => {
    const { l, clock } = limiter(2, 10_000);
    l.fail("a");
    clock.t += 10_001;
    l.fail("a");
    expect(l.retryAfter("a")).toBe(0);
  });

  it("keeps keys apart", () => {
    const { l } = limiter(1, 10_000);
    l.fail("alice|1.2.3.4");
    expect(l.retryAfter("alice|1.2.3.4")).toBe(10);
    expect(l.retryAfter("bob|1.2.3.4")).toBe(0);
  });

  it("reset clears the key", () => {
    const { l } = limiter(2, 60_000);
    l.fail("a");
    l.fail("a");
    expect(l.retryAfter("a")).toBeGreaterThan(0);
    l.reset("a");
    expect(l.retryAfter("a")).toBe(0);
    l.fail("a");
    expect(l.retryAfter("a")).toBe(0);
  });
});
