/**
 * The vault forms' errors read as sentences (issue 14): a field issue names
 * its field, zod's generic wording becomes what to do, other errors get one
 * sentence (never an empty box), RFC 9457 problem details are read as well,
 * and nothing typed is repeated.
 */
import { describe, expect, it } from "vitest";
import { describeError, fieldError, localIssue } from "@/components/vault/errors";
import { labelsFor } from "@/components/vault/create-entry";
import { ApiError, errorOf } from "@/lib/client/api";

const labels = labelsFor("api_key");

describe("vault form errors", () => {
  it("names the field and says what to do", () => {
    const blank = localIssue("secret", "must not be empty: paste the API key the upstream issued");
    expect(fieldError(blank, "secret", labels)).toBe("API key must not be empty: paste the API key the upstream issued.");
    expect(describeError(blank, labels)).toBe("Fix this and try again: API key must not be empty: paste the API key the upstream issued.");
    // The API's answer for the same problem (lib/vault/service.ts checkSecret) reads the same way.
    const api = errorOf(422, { error: { code: "validation_failed", message: "secret: must not be empty", issues: [{ path: "secret", message: "must not be empty" }] } });
    expect(fieldError(api, "secret", labels)).toBe("API key must not be empty.");
  });

  it("maps zod's generic wording, for several fields at once", () => {
    const e = new ApiError(422, "validation_failed", "The request is not valid", [
      { path: "name", message: "Too small: expected string to have >=1 characters" },
      { path: "graceSeconds", message: "Too big: expected number to be <=2592000" },
      { path: "serverId", message: "Invalid input: expected string, received undefined" },
    ]);
    expect(describeError(e, labels)).toBe("Fix these 3 things and try again: Name must not be empty; Grace period must be at most 2592000; Server is required.");
    expect(fieldError(e, "name", labels)).toBe("Name must not be empty.");
  });

  it("never answers with an empty text", () => {
    for (const e of [new ApiError(409, "conflict", ""), new ApiError(500, "internal", ""), errorOf(502, null), new TypeError("Failed to fetch"), new Error("")])
      expect(describeError(e).length).toBeGreaterThan(10);
    expect(describeError(new ApiError(429, "rate_limited", "You can test connections 5 times a minute: wait a minute, then try again"))).toBe(
      "You can test connections 5 times a minute: wait a minute, then try again.",
    );
    expect(describeError(new TypeError("Failed to fetch"))).toBe("Mandate could not be reached: check your connection and try again.");
  });

  it("reads RFC 9457 problem details, field errors included", () => {
    const e = errorOf(422, {
      type: "https://mandate.example/problems/validation_failed",
      title: "Invalid request",
      detail: "The request is not valid",
      errors: [{ pointer: "/secret", detail: "must not be empty" }],
    });
    expect(e).toMatchObject({ status: 422, code: "validation_failed", message: "The request is not valid" });
    expect(fieldError(e, "secret", labels)).toBe("API key must not be empty.");
    expect(describeError(errorOf(409, { title: "Conflict", detail: "Version 2 is current now, not version 1" }))).toBe("Version 2 is current now, not version 1.");
  });
});
