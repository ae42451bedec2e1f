ALTER TABLE "vault_entries" ADD COLUMN "bound_origin" text DEFAULT '' NOT NULL;--> statement-breakpoint
-- Existing entries are bound to their server's upstream origin as it is now (what URL.origin gives: lower case, no default port).
UPDATE "vault_entries" e SET "bound_origin" = regexp_replace(regexp_replace(lower(substring(s."upstream_url" from '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*')), '^(https://.*):443$', '\1'), '^(http://.*):80$', '\1') FROM "servers" s WHERE s."id" = e."server_id";
--> statement-breakpoint
-- Fingerprints were an unkeyed SHA-256 prefix (a dictionary target for low-entropy secrets); new versions get a keyed one. The old ones are dropped.
UPDATE "vault_versions" SET "fingerprint" = '';
