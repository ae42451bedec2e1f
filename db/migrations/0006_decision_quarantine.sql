CREATE TABLE "decision_quarantine" (
	"id" text PRIMARY KEY NOT NULL,
	"agent_id" text NOT NULL,
	"fleet_id" text NOT NULL,
	"received_at" timestamp with time zone DEFAULT now() NOT NULL,
	"decision_id" text,
	"problem" text NOT NULL,
	"raw" text NOT NULL,
	"raw_bytes" integer NOT NULL,
	"raw_sha256" text NOT NULL
);
--> statement-breakpoint
ALTER TABLE "decision_quarantine" ADD CONSTRAINT "decision_quarantine_agent_id_agents_id_fk" FOREIGN KEY ("agent_id") REFERENCES "public"."agents"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "decision_quarantine" ADD CONSTRAINT "decision_quarantine_fleet_id_fleets_id_fk" FOREIGN KEY ("fleet_id") REFERENCES "public"."fleets"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "decision_quarantine_agent_raw_key" ON "decision_quarantine" USING btree ("agent_id","raw_sha256");--> statement-breakpoint
CREATE INDEX "decision_quarantine_received_idx" ON "decision_quarantine" USING btree ("received_at" DESC NULLS LAST);