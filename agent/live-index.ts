export { isRevoked, unapprovedClient } from "@/lib/enforcement/live-index";
