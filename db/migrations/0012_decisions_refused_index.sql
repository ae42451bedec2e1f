DROP INDEX "decisions_outcome_at_idx";--> statement-breakpoint
CREATE INDEX "decisions_refused_at_idx" ON "decisions" USING btree ("outcome","at" DESC NULLS LAST) WHERE outcome <> 'allow';