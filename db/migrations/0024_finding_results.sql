CREATE TABLE "finding_results" (
	"scope" text PRIMARY KEY NOT NULL,
	"tenant_id" text,
	"computed_at" timestamp with time zone NOT NULL,
	"unused_days" integer NOT NULL,
	"small_share_percent" integer NOT NULL,
	"findings" jsonb,
	"score" jsonb,
	"finding_count" integer NOT NULL,
	"truncated" boolean DEFAULT false NOT NULL,
	"took_ms" integer DEFAULT 0 NOT NULL,
	"computed_by" text NOT NULL
);
--> statement-breakpoint
ALTER TABLE "finding_results" ADD CONSTRAINT "finding_results_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;