CREATE TABLE "connect_requests" (
	"id" text PRIMARY KEY NOT NULL,
	"tenant_id" text NOT NULL,
	"server_id" text NOT NULL,
	"user_key" text NOT NULL,
	"status" text DEFAULT 'open' NOT NULL,
	"nonce_hash" text,
	"started_by" text,
	"flow_expires_at" timestamp with time zone,
	"expires_at" timestamp with time zone NOT NULL,
	"completed_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "upstream_connections" (
	"id" text PRIMARY KEY NOT NULL,
	"tenant_id" text NOT NULL,
	"server_id" text NOT NULL,
	"user_key" text NOT NULL,
	"user_id" text,
	"entry_id" text NOT NULL,
	"status" text NOT NULL,
	"scope" text DEFAULT '' NOT NULL,
	"generation" integer DEFAULT 0 NOT NULL,
	"ciphertext" text,
	"wrapped_key" text,
	"kek_id" text,
	"access_expires_at" timestamp with time zone,
	"connected_at" timestamp with time zone,
	"refreshed_at" timestamp with time zone,
	"ended_at" timestamp with time zone,
	"ended_by" text,
	"end_reason" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "connect_requests" ADD CONSTRAINT "connect_requests_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "connect_requests" ADD CONSTRAINT "connect_requests_server_id_servers_id_fk" FOREIGN KEY ("server_id") REFERENCES "public"."servers"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "connect_requests" ADD CONSTRAINT "connect_requests_started_by_users_id_fk" FOREIGN KEY ("started_by") REFERENCES "public"."users"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "upstream_connections" ADD CONSTRAINT "upstream_connections_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "upstream_connections" ADD CONSTRAINT "upstream_connections_server_id_servers_id_fk" FOREIGN KEY ("server_id") REFERENCES "public"."servers"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "upstream_connections" ADD CONSTRAINT "upstream_connections_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "upstream_connections" ADD CONSTRAINT "upstream_connections_entry_id_vault_entries_id_fk" FOREIGN KEY ("entry_id") REFERENCES "public"."vault_entries"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "connect_requests_key_idx" ON "connect_requests" USING btree ("tenant_id","server_id","user_key","status");--> statement-breakpoint
CREATE UNIQUE INDEX "upstream_connections_key" ON "upstream_connections" USING btree ("tenant_id","server_id","user_key");--> statement-breakpoint
CREATE INDEX "upstream_connections_server_idx" ON "upstream_connections" USING btree ("server_id","ended_at");--> statement-breakpoint
CREATE INDEX "upstream_connections_user_idx" ON "upstream_connections" USING btree ("user_id");