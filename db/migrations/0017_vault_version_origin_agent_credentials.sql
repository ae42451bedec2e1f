ALTER TABLE "agents" ADD COLUMN "credential_versions" jsonb;--> statement-breakpoint
ALTER TABLE "vault_versions" ADD COLUMN "bound_origin" text;--> statement-breakpoint
-- Current versions are bound to their entry's origin (create, rotate and confirm bind the current version); older versions stay unknown (null) and cannot be made current again.
UPDATE "vault_versions" v SET "bound_origin" = e."bound_origin" FROM "vault_entries" e WHERE e."id" = v."entry_id" AND v."status" = 'current' AND e."bound_origin" <> '';
