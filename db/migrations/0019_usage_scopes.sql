-- The new key columns (method, scope set) have no value for the rows counted before: emptied here, recounted at the end.
DELETE FROM "decision_usage";--> statement-breakpoint
ALTER TABLE "decision_usage" DROP CONSTRAINT "decision_usage_day_tenant_id_server_id_tool_user_id_client_id_pk";--> statement-breakpoint
ALTER TABLE "decision_usage" ADD COLUMN "method" text NOT NULL;--> statement-breakpoint
ALTER TABLE "decision_usage" ADD COLUMN "scopes" jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "decision_usage" ADD COLUMN "last_id" text NOT NULL;--> statement-breakpoint
ALTER TABLE "decision_usage" ADD COLUMN "last_allow_id" text;--> statement-breakpoint
ALTER TABLE "decision_usage" ADD CONSTRAINT "decision_usage_day_tenant_id_server_id_tool_user_id_client_id_method_scopes_pk" PRIMARY KEY("day","tenant_id","server_id","tool","user_id","client_id","method","scopes");--> statement-breakpoint
CREATE INDEX "decision_usage_server_day_idx" ON "decision_usage" USING btree ("server_id","day");--> statement-breakpoint
-- Hand-written below (drizzle cannot express these).
-- The rollup trigger, one statement instead of three: the transition table (the rows the INSERT stored; a
-- duplicate skipped by ON CONFLICT DO NOTHING is not in it) is aggregated ONCE per hour at the finest key,
-- and the three tables are written from that aggregate (data-modifying CTEs, each ordered by its key so
-- concurrent inserters lock rollup rows in one order). decision_usage now keeps method, the scope set and
-- the newest decision ids (findings read it instead of the raw log).
CREATE OR REPLACE FUNCTION decisions_rollup() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  WITH f AS MATERIALIZED (
    SELECT date_trunc('hour', n.at, 'UTC') AS hour, coalesce(n.tenant_id, '') AS tenant_id, coalesce(n.server_id, '') AS server_id, coalesce(n.tool, '') AS tool,
           n.user_id, n.client_id, n.method, n.scopes,
           count(*) FILTER (WHERE n.outcome = 'allow') AS allow, count(*) FILTER (WHERE n.outcome = 'deny') AS deny, count(*) FILTER (WHERE n.outcome = 'error') AS error,
           max(n.at) AS last_at, max(n.at) FILTER (WHERE n.outcome = 'allow') AS last_allow_at, max(n.id) AS last_id, max(n.id) FILTER (WHERE n.outcome = 'allow') AS last_allow_id
    FROM new_rows n
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
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
-- decision_usage was emptied above (its new key columns have no value for old rows): count every stored decision once, now.
INSERT INTO decision_usage (day, tenant_id, server_id, tool, user_id, client_id, method, scopes, allow, deny, error, last_at, last_allow_at, last_id, last_allow_id)
  SELECT date_trunc('day', n.at, 'UTC'), coalesce(n.tenant_id, ''), coalesce(n.server_id, ''), coalesce(n.tool, ''), coalesce(n.user_id, ''), coalesce(n.client_id, ''), n.method, n.scopes,
         count(*) FILTER (WHERE n.outcome = 'allow'), count(*) FILTER (WHERE n.outcome = 'deny'), count(*) FILTER (WHERE n.outcome = 'error'),
         max(n.at), max(n.at) FILTER (WHERE n.outcome = 'allow'), max(n.id), max(n.id) FILTER (WHERE n.outcome = 'allow')
  FROM decisions n
  GROUP BY 1, 2, 3, 4, 5, 6, 7, 8;
