-- Edited after generation: the table is range-partitioned by day on "at".
-- Partitions are created ahead by lib/decisions/partitions.ts; retention drops whole partitions.
CREATE TABLE "decisions" (
	"id" text NOT NULL,
	"at" timestamp (3) with time zone NOT NULL,
	"agent_id" text NOT NULL,
	"fleet_id" text NOT NULL,
	"bundle_revision" integer,
	"tenant_id" text,
	"server_id" text NOT NULL,
	"method" text NOT NULL,
	"tool" text,
	"user_id" text,
	"client_id" text,
	"scopes" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"outcome" text NOT NULL,
	"reason" text DEFAULT '' NOT NULL,
	"determining" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"args" jsonb,
	"latency_us" integer,
	"received_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "decisions_id_at_pk" PRIMARY KEY("id","at")
) PARTITION BY RANGE ("at");
--> statement-breakpoint
CREATE INDEX "decisions_tenant_at_idx" ON "decisions" USING btree ("tenant_id","at" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "decisions_server_tool_at_idx" ON "decisions" USING btree ("server_id","tool","at" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "decisions_outcome_at_idx" ON "decisions" USING btree ("outcome","at" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "decisions_user_at_idx" ON "decisions" USING btree ("user_id","at" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "decisions_client_at_idx" ON "decisions" USING btree ("client_id","at" DESC NULLS LAST);