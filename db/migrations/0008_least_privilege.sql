CREATE TABLE "finding_marks" (
	"key" text PRIMARY KEY NOT NULL,
	"tenant_id" text,
	"kind" text NOT NULL,
	"first_seen_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_seen_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "finding_settings" (
	"id" text PRIMARY KEY NOT NULL,
	"tenant_id" text,
	"unused_days" integer DEFAULT 30 NOT NULL,
	"small_share_percent" integer DEFAULT 25 NOT NULL,
	"webhook" jsonb,
	"webhook_hint" text,
	"last_digest_at" timestamp with time zone,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "privilege_scores" (
	"tenant_id" text NOT NULL,
	"day" date NOT NULL,
	"window_days" integer NOT NULL,
	"granted" integer NOT NULL,
	"used" integer NOT NULL,
	"detail" jsonb NOT NULL,
	"computed_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "privilege_scores_tenant_id_day_pk" PRIMARY KEY("tenant_id","day")
);
--> statement-breakpoint
ALTER TABLE "finding_marks" ADD CONSTRAINT "finding_marks_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "finding_settings" ADD CONSTRAINT "finding_settings_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "privilege_scores" ADD CONSTRAINT "privilege_scores_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "finding_marks_tenant_first_idx" ON "finding_marks" USING btree ("tenant_id","first_seen_at" DESC NULLS LAST);