CREATE TABLE "tenant_issuers" (
	"id" text PRIMARY KEY NOT NULL,
	"tenant_id" text NOT NULL,
	"issuer" text NOT NULL,
	"jwks_uri" text,
	"discovery" boolean DEFAULT true NOT NULL,
	"algorithms" jsonb NOT NULL,
	"claims" jsonb NOT NULL,
	"tenant_mapping" jsonb NOT NULL,
	"require_typ" text,
	"revocation_endpoint" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "tenant_issuers" ADD CONSTRAINT "tenant_issuers_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "tenant_issuers_tenant_issuer_key" ON "tenant_issuers" USING btree ("tenant_id","issuer");--> statement-breakpoint
CREATE INDEX "tenant_issuers_issuer_idx" ON "tenant_issuers" USING btree ("issuer");--> statement-breakpoint
-- Backfill: every tenant that could use a server (its owner and each tenant it is shared with)
-- now trusts each of the server's issuers itself, mapped by the old tenant claim to its own id only.
INSERT INTO "tenant_issuers" ("id", "tenant_id", "issuer", "jwks_uri", "discovery", "algorithms", "claims", "tenant_mapping", "revocation_endpoint")
SELECT DISTINCT ON (x.tenant_id, x.iss ->> 'issuer')
  'tis_' || replace(gen_random_uuid()::text, '-', ''),
  x.tenant_id,
  x.iss ->> 'issuer',
  x.iss ->> 'jwksUri',
  coalesce((x.iss ->> 'discovery')::boolean, true),
  coalesce(x.iss -> 'algorithms', '["RS256","ES256"]'::jsonb),
  jsonb_build_object(
    'user', coalesce(x.iss #>> '{claims,user}', 'sub'),
    'client', coalesce(x.iss #>> '{claims,client}', 'client_id'),
    'scopes', coalesce(x.iss #>> '{claims,scopes}', 'scope'),
    'groups', 'groups'),
  jsonb_build_object('mode', 'claim', 'claim', coalesce(x.iss #>> '{claims,tenant}', 'tenant'), 'values', jsonb_build_array(x.tenant_id)),
  x.iss ->> 'revocationEndpoint'
FROM (
  SELECT s.created_at, s.id AS server_id, t.tenant_id, i.iss
  FROM "servers" s
  CROSS JOIN LATERAL jsonb_array_elements(s.issuers) AS i(iss)
  CROSS JOIN LATERAL (SELECT s.tenant_id UNION SELECT st.tenant_id FROM "server_tenants" st WHERE st.server_id = s.id) AS t(tenant_id)
  WHERE jsonb_typeof(i.iss -> 'issuer') = 'string'
) x
ORDER BY x.tenant_id, x.iss ->> 'issuer', x.created_at, x.server_id
ON CONFLICT ("tenant_id", "issuer") DO NOTHING;
