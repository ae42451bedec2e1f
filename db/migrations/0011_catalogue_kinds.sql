DROP INDEX "tools_server_name_key";--> statement-breakpoint
ALTER TABLE "tool_versions" ADD COLUMN "definition" jsonb;--> statement-breakpoint
ALTER TABLE "tools" ADD COLUMN "kind" text DEFAULT 'tool' NOT NULL;--> statement-breakpoint
CREATE UNIQUE INDEX "tools_server_kind_name_key" ON "tools" USING btree ("server_id","kind","name");