CREATE TABLE "decision_actor_rollups" (
	"grain" text NOT NULL,
	"bucket" timestamp with time zone NOT NULL,
	"tenant_id" text NOT NULL,
	"kind" text NOT NULL,
	"actor" text NOT NULL,
	"allow" bigint DEFAULT 0 NOT NULL,
	"deny" bigint DEFAULT 0 NOT NULL,
	"error" bigint DEFAULT 0 NOT NULL,
	"last_at" timestamp (3) with time zone NOT NULL,
	CONSTRAINT "decision_actor_rollups_grain_bucket_tenant_id_kind_actor_pk" PRIMARY KEY("grain","bucket","tenant_id","kind","actor")
);
--> statement-breakpoint
CREATE TABLE "decision_rollups" (
	"grain" text NOT NULL,
	"bucket" timestamp with time zone NOT NULL,
	"tenant_id" text NOT NULL,
	"server_id" text NOT NULL,
	"tool" text NOT NULL,
	"allow" bigint DEFAULT 0 NOT NULL,
	"deny" bigint DEFAULT 0 NOT NULL,
	"error" bigint DEFAULT 0 NOT NULL,
	"last_at" timestamp (3) with time zone NOT NULL,
	CONSTRAINT "decision_rollups_grain_bucket_tenant_id_server_id_tool_pk" PRIMARY KEY("grain","bucket","tenant_id","server_id","tool")
);
--> statement-breakpoint
CREATE TABLE "decision_usage" (
	"day" timestamp with time zone NOT NULL,
	"tenant_id" text NOT NULL,
	"server_id" text NOT NULL,
	"tool" text NOT NULL,
	"user_id" text NOT NULL,
	"client_id" text NOT NULL,
	"allow" bigint DEFAULT 0 NOT NULL,
	"deny" bigint DEFAULT 0 NOT NULL,
	"error" bigint DEFAULT 0 NOT NULL,
	"last_at" timestamp (3) with time zone NOT NULL,
	"last_allow_at" timestamp (3) with time zone,
	CONSTRAINT "decision_usage_day_tenant_id_server_id_tool_user_id_client_id_pk" PRIMARY KEY("day","tenant_id","server_id","tool","user_id","client_id")
);
--> statement-breakpoint
CREATE TABLE "scheduled_jobs" (
	"name" text PRIMARY KEY NOT NULL,
	"last_started_at" timestamp with time zone,
	"last_finished_at" timestamp with time zone,
	"last_error" text,
	"runs" bigint DEFAULT 0 NOT NULL,
	"last_holder" text
);
--> statement-breakpoint
CREATE INDEX "decision_actor_rollups_tenant_idx" ON "decision_actor_rollups" USING btree ("tenant_id","grain","bucket");--> statement-breakpoint
CREATE INDEX "decision_rollups_tenant_idx" ON "decision_rollups" USING btree ("tenant_id","grain","bucket");--> statement-breakpoint
CREATE INDEX "decision_usage_tenant_day_idx" ON "decision_usage" USING btree ("tenant_id","day");--> statement-breakpoint
CREATE INDEX "decisions_tool_at_idx" ON "decisions" USING btree ("tool","at" DESC NULLS LAST);--> statement-breakpoint
-- Hand-written below (drizzle cannot express these).
-- Free text: a trigram index on the masked arguments' text, when pg_trgm can be installed. Without it
-- (a PostgreSQL without contrib, a PGlite opened without the extension) free text still works: it scans.
DO $$ BEGIN
  CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN OTHERS THEN
  RAISE NOTICE 'pg_trgm is not available (%): free text in decisions is not indexed', SQLERRM;
END $$;
--> statement-breakpoint
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
    EXECUTE 'CREATE INDEX IF NOT EXISTS decisions_args_trgm_idx ON decisions USING gin ((args::text) gin_trgm_ops)';
  END IF;
END $$;
--> statement-breakpoint
-- Rollups, maintained in the inserting transaction from the rows the INSERT stored (a duplicate skipped by
-- ON CONFLICT DO NOTHING is not in new_rows). Keys are sorted so concurrent inserters lock rows in one order.
CREATE OR REPLACE FUNCTION decisions_rollup() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  INSERT INTO decision_rollups AS r (grain, bucket, tenant_id, server_id, tool, allow, deny, error, last_at)
  SELECT g.grain, date_trunc(g.grain, n.at, 'UTC'), coalesce(n.tenant_id, ''), n.server_id, coalesce(n.tool, ''),
         count(*) FILTER (WHERE n.outcome = 'allow'), count(*) FILTER (WHERE n.outcome = 'deny'), count(*) FILTER (WHERE n.outcome = 'error'), max(n.at)
  FROM new_rows n CROSS JOIN (VALUES ('hour'), ('day')) g(grain)
  GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
  ON CONFLICT (grain, bucket, tenant_id, server_id, tool) DO UPDATE
    SET allow = r.allow + excluded.allow, deny = r.deny + excluded.deny, error = r.error + excluded.error, last_at = greatest(r.last_at, excluded.last_at);
  INSERT INTO decision_actor_rollups AS r (grain, bucket, tenant_id, kind, actor, allow, deny, error, last_at)
  SELECT g.grain, date_trunc(g.grain, n.at, 'UTC'), coalesce(n.tenant_id, ''), k.kind, k.actor,
         count(*) FILTER (WHERE n.outcome = 'allow'), count(*) FILTER (WHERE n.outcome = 'deny'), count(*) FILTER (WHERE n.outcome = 'error'), max(n.at)
  FROM new_rows n CROSS JOIN (VALUES ('hour'), ('day')) g(grain) CROSS JOIN LATERAL (VALUES ('user', n.user_id), ('client', n.client_id)) k(kind, actor)
  WHERE k.actor IS NOT NULL
  GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
  ON CONFLICT (grain, bucket, tenant_id, kind, actor) DO UPDATE
    SET allow = r.allow + excluded.allow, deny = r.deny + excluded.deny, error = r.error + excluded.error, last_at = greatest(r.last_at, excluded.last_at);
  INSERT INTO decision_usage AS r (day, tenant_id, server_id, tool, user_id, client_id, allow, deny, error, last_at, last_allow_at)
  SELECT date_trunc('day', n.at, 'UTC'), coalesce(n.tenant_id, ''), n.server_id, coalesce(n.tool, ''), coalesce(n.user_id, ''), coalesce(n.client_id, ''),
         count(*) FILTER (WHERE n.outcome = 'allow'), count(*) FILTER (WHERE n.outcome = 'deny'), count(*) FILTER (WHERE n.outcome = 'error'), max(n.at),
         max(n.at) FILTER (WHERE n.outcome = 'allow')
  FROM new_rows n
  GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
  ON CONFLICT (day, tenant_id, server_id, tool, user_id, client_id) DO UPDATE
    SET allow = r.allow + excluded.allow, deny = r.deny + excluded.deny, error = r.error + excluded.error, last_at = greatest(r.last_at, excluded.last_at),
        last_allow_at = greatest(r.last_allow_at, excluded.last_allow_at);
  RETURN NULL;
END $fn$;
--> statement-breakpoint
-- Decisions stored before this migration: counted once, now, before the trigger exists.
INSERT INTO decision_rollups AS r (grain, bucket, tenant_id, server_id, tool, allow, deny, error, last_at)
  SELECT g.grain, date_trunc(g.grain, n.at, 'UTC'), coalesce(n.tenant_id, ''), n.server_id, coalesce(n.tool, ''),
         count(*) FILTER (WHERE n.outcome = 'allow'), count(*) FILTER (WHERE n.outcome = 'deny'), count(*) FILTER (WHERE n.outcome = 'error'), max(n.at)
  FROM decisions n CROSS JOIN (VALUES ('hour'), ('day')) g(grain)
  GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
  ON CONFLICT (grain, bucket, tenant_id, server_id, tool) DO UPDATE
    SET allow = r.allow + excluded.allow, deny = r.deny + excluded.deny, error = r.error + excluded.error, last_at = greatest(r.last_at, excluded.last_at);
--> statement-breakpoint
INSERT INTO decision_actor_rollups AS r (grain, bucket, tenant_id, kind, actor, allow, deny, error, last_at)
  SELECT g.grain, date_trunc(g.grain, n.at, 'UTC'), coalesce(n.tenant_id, ''), k.kind, k.actor,
         count(*) FILTER (WHERE n.outcome = 'allow'), count(*) FILTER (WHERE n.outcome = 'deny'), count(*) FILTER (WHERE n.outcome = 'error'), max(n.at)
  FROM decisions n CROSS JOIN (VALUES ('hour'), ('day')) g(grain) CROSS JOIN LATERAL (VALUES ('user', n.user_id), ('client', n.client_id)) k(kind, actor)
  WHERE k.actor IS NOT NULL
  GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
  ON CONFLICT (grain, bucket, tenant_id, kind, actor) DO UPDATE
    SET allow = r.allow + excluded.allow, deny = r.deny + excluded.deny, error = r.error + excluded.error, last_at = greatest(r.last_at, excluded.last_at);
--> statement-breakpoint
INSERT INTO decision_usage AS r (day, tenant_id, server_id, tool, user_id, client_id, allow, deny, error, last_at, last_allow_at)
  SELECT date_trunc('day', n.at, 'UTC'), coalesce(n.tenant_id, ''), n.server_id, coalesce(n.tool, ''), coalesce(n.user_id, ''), coalesce(n.client_id, ''),
         count(*) FILTER (WHERE n.outcome = 'allow'), count(*) FILTER (WHERE n.outcome = 'deny'), count(*) FILTER (WHERE n.outcome = 'error'), max(n.at),
         max(n.at) FILTER (WHERE n.outcome = 'allow')
  FROM decisions n
  GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
  ON CONFLICT (day, tenant_id, server_id, tool, user_id, client_id) DO UPDATE
    SET allow = r.allow + excluded.allow, deny = r.deny + excluded.deny, error = r.error + excluded.error, last_at = greatest(r.last_at, excluded.last_at),
        last_allow_at = greatest(r.last_allow_at, excluded.last_allow_at);
--> statement-breakpoint
CREATE TRIGGER decisions_rollup AFTER INSERT ON decisions REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION decisions_rollup();
