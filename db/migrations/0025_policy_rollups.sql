CREATE TABLE "decision_policy_rollups" (
	"grain" text NOT NULL,
	"bucket" timestamp with time zone NOT NULL,
	"tenant_id" text NOT NULL,
	"server_id" text NOT NULL,
	"policy_id" text,
	"allow" bigint DEFAULT 0 NOT NULL,
	"deny" bigint DEFAULT 0 NOT NULL,
	"error" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "decision_policy_rollups_key" UNIQUE NULLS NOT DISTINCT("grain","bucket","tenant_id","server_id","policy_id")
);
--> statement-breakpoint
-- Hand-written below (drizzle cannot express these).
-- The rollup trigger (0019's one statement) now also writes decision_policy_rollups: the aggregate of the stored
-- rows keeps the determining policy set in its key, and each group counts once per distinct policy id in it
-- (once under a null policy_id when it has none), per hour and per day. lib/decisions/rollups.ts
-- (rollupStatement) is the same statement.
CREATE OR REPLACE FUNCTION decisions_rollup() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  WITH f AS MATERIALIZED (
    SELECT date_trunc('hour', n.at, 'UTC') AS hour, coalesce(n.tenant_id, '') AS tenant_id, coalesce(n.server_id, '') AS server_id, coalesce(n.tool, '') AS tool,
           n.user_id, n.client_id, n.method, n.scopes, n.determining,
           count(*) FILTER (WHERE n.outcome = 'allow') AS allow, count(*) FILTER (WHERE n.outcome = 'deny') AS deny, count(*) FILTER (WHERE n.outcome = 'error') AS error,
           max(n.at) AS last_at, max(n.at) FILTER (WHERE n.outcome = 'allow') AS last_allow_at, max(n.id) AS last_id, max(n.id) FILTER (WHERE n.outcome = 'allow') AS last_allow_id
    FROM new_rows n
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
  ), p AS (
    INSERT INTO decision_policy_rollups AS r (grain, bucket, tenant_id, server_id, policy_id, allow, deny, error)
    SELECT g.grain, CASE WHEN g.grain = 'hour' THEN f.hour ELSE date_trunc('day', f.hour, 'UTC') END, f.tenant_id, f.server_id, k.policy_id,
           sum(f.allow), sum(f.deny), sum(f.error)
    FROM f CROSS JOIN (VALUES ('hour'), ('day')) g(grain)
      CROSS JOIN LATERAL (SELECT DISTINCT e FROM jsonb_array_elements_text(CASE WHEN jsonb_typeof(f.determining) = 'array' THEN f.determining ELSE '[]' END) e
                          UNION ALL SELECT NULL WHERE jsonb_typeof(f.determining) <> 'array' OR f.determining = '[]') k(policy_id)
    GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (grain, bucket, tenant_id, server_id, policy_id) DO UPDATE
      SET allow = r.allow + excluded.allow, deny = r.deny + excluded.deny, error = r.error + excluded.error
  ), u AS (
    INSERT INTO decision_usage AS r (day, tenant_id, server_id, tool, user_id, client_id, method, scopes, allow, deny, error, last_at, last_allow_at, last_id, last_allow_id)
    SELECT date_trunc('day', f.hour, 'UTC'), f.tenant_id, f.server_id, f.tool, coalesce(f.user_id, ''), coalesce(f.client_id, ''), f.method, f.scopes,
           sum(f.allow), sum(f.deny), sum(f.error), max(f.last_at), max(f.last_allow_at), max(f.last_id), max(f.last_allow_id)
    FROM f
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8
    ON CONFLICT (day, tenant_id, server_id, tool, user_id, client_id, method, scopes) DO UPDATE
      SET allow = r.allow + excluded.allow, deny = r.deny + excluded.deny, error = r.error + excluded.error, last_at = greatest(r.last_at, excluded.last_at),
          last_allow_at = greatest(r.last_allow_at, excluded.last_allow_at), last_id = greatest(r.last_id, excluded.last_id), last_allow_id = greatest(r.last_allow_id, excluded.last_allow_id)
  ), t AS (
    INSERT INTO decision_rollups AS r (grain, bucket, tenant_id, server_id, tool, allow, deny, error, last_at)
    SELECT g.grain, CASE WHEN g.grain = 'hour' THEN f.hour ELSE date_trunc('day', f.hour, 'UTC') END, f.tenant_id, f.server_id, f.tool,
           sum(f.allow), sum(f.deny), sum(f.error), max(f.last_at)
    FROM f CROSS JOIN (VALUES ('hour'), ('day')) g(grain)
    GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (grain, bucket, tenant_id, server_id, tool) DO UPDATE
      SET allow = r.allow + excluded.allow, deny = r.deny + excluded.deny, error = r.error + excluded.error, last_at = greatest(r.last_at, excluded.last_at)
  )
  INSERT INTO decision_actor_rollups AS r (grain, bucket, tenant_id, kind, actor, allow, deny, error, last_at)
  SELECT g.grain, CASE WHEN g.grain = 'hour' THEN f.hour ELSE date_trunc('day', f.hour, 'UTC') END, f.tenant_id, k.kind, k.actor,
         sum(f.allow), sum(f.deny), sum(f.error), max(f.last_at)
  FROM f CROSS JOIN (VALUES ('hour'), ('day')) g(grain) CROSS JOIN LATERAL (VALUES ('user', f.user_id), ('client', f.client_id)) k(kind, actor)
  WHERE k.actor IS NOT NULL
  GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
  ON CONFLICT (grain, bucket, tenant_id, kind, actor) DO UPDATE
    SET allow = r.allow + excluded.allow, deny = r.deny + excluded.deny, error = r.error + excluded.error, last_at = greatest(r.last_at, excluded.last_at);
  RETURN NULL;
END $fn$;
--> statement-breakpoint
-- Count every stored decision once, now (no insert runs meanwhile: SHARE mode until the migration commits).
LOCK TABLE decisions IN SHARE MODE;--> statement-breakpoint
INSERT INTO decision_policy_rollups (grain, bucket, tenant_id, server_id, policy_id, allow, deny, error)
WITH f AS MATERIALIZED (
  SELECT date_trunc('hour', n.at, 'UTC') AS hour, coalesce(n.tenant_id, '') AS tenant_id, coalesce(n.server_id, '') AS server_id, n.determining,
         count(*) FILTER (WHERE n.outcome = 'allow') AS allow, count(*) FILTER (WHERE n.outcome = 'deny') AS deny, count(*) FILTER (WHERE n.outcome = 'error') AS error
  FROM decisions n
  GROUP BY 1, 2, 3, 4
)
SELECT g.grain, CASE WHEN g.grain = 'hour' THEN f.hour ELSE date_trunc('day', f.hour, 'UTC') END, f.tenant_id, f.server_id, k.policy_id,
       sum(f.allow), sum(f.deny), sum(f.error)
FROM f CROSS JOIN (VALUES ('hour'), ('day')) g(grain)
  CROSS JOIN LATERAL (SELECT DISTINCT e FROM jsonb_array_elements_text(CASE WHEN jsonb_typeof(f.determining) = 'array' THEN f.determining ELSE '[]' END) e
                      UNION ALL SELECT NULL WHERE jsonb_typeof(f.determining) <> 'array' OR f.determining = '[]') k(policy_id)
GROUP BY 1, 2, 3, 4, 5;
