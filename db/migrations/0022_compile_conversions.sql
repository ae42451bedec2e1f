CREATE TABLE "compile_conversions" (
	"fleet_id" text NOT NULL,
	"key" text NOT NULL,
	"value" text NOT NULL,
	CONSTRAINT "compile_conversions_fleet_id_key_pk" PRIMARY KEY("fleet_id","key")
);
--> statement-breakpoint
ALTER TABLE "compile_conversions" ADD CONSTRAINT "compile_conversions_fleet_id_fleets_id_fk" FOREIGN KEY ("fleet_id") REFERENCES "public"."fleets"("id") ON DELETE cascade ON UPDATE no action;