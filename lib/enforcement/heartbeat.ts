import { z } from "zod";

/*
 * The heartbeat wire (POST /api/v1/agent/heartbeat): one zod schema that the
 * agent builds its body with and the control plane parses, so no limit is
 * copied by hand. Pure: zod only, no control-plane import.
 */

export const MAX_COUNTERS = 100;
export const MAX_ERRORS = 20;
export const MAX_ERROR_LENGTH = 1000;
/** At most this many vault entries reported per heartbeat (an agent holds one per entry its bundle names). */
export const MAX_REPORTED_CREDENTIALS = 1000;

const agentVersion = z.string().trim().min(1, "must not be empty").max(64, "must be at most 64 characters");

/** One vault entry and the version of it the agent holds (and injects) now. Never the secret. */
export const credentialInUse = z
  .object({
    entryId: z
      .string()
      .min(1)
      .max(100)
      .regex(/^[A-Za-z0-9_-]+$/, "letters, digits, _ and - only"),
    version: z.number().int("must be an integer").min(1).max(2_147_483_647),
  })
  .strict();
export type CredentialInUse = z.infer<typeof credentialInUse>;

export const heartbeatInput = z.object({
  version: agentVersion,
  bundleRevision: z.number().int().min(0).nullable().default(null).describe("Revision the agent enforces now; null before the first bundle"),
  counters: z
    .record(
      z
        .string()
        .min(1)
        .max(64)
        .regex(/^[A-Za-z0-9_.:-]+$/, "letters, digits and _ . : - only"),
      z.number().int("must be an integer").min(0).max(Number.MAX_SAFE_INTEGER),
    )
    .refine((c) => Object.keys(c).length <= MAX_COUNTERS, `at most ${MAX_COUNTERS} counters`)
    .default({})
    .describe("Cumulative counters since the agent started, e.g. { allowed: 12, denied: 3 }"),
  errors: z
    .array(z.string().max(MAX_ERROR_LENGTH, `each at most ${MAX_ERROR_LENGTH} characters`))
    .max(MAX_ERRORS, `at most ${MAX_ERRORS} errors`)
    .optional()
    .describe("Current errors, newest last; [] clears the last error, omitted leaves it"),
  credentials: z
    .array(credentialInUse)
    .max(MAX_REPORTED_CREDENTIALS, `at most ${MAX_REPORTED_CREDENTIALS} credentials`)
    .refine((l) => new Set(l.map((c) => c.entryId)).size === l.length, "each entry at most once")
    .optional()
    .describe(
      "The vault entries whose secret the agent holds now and the version of each (the one it injects). Optional: agents older than this field omit it, and the vault page then shows their version as unknown. [] means it holds none.",
    ),
});
export type HeartbeatInput = z.input<typeof heartbeatInput>;
