import js from "@eslint/js";
import reactHooks from "eslint-plugin-react-hooks";
import globals from "globals";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: [".next/**", "node_modules/**", ".data/**", "db/migrations/**", "next-env.d.ts", "test-results/**", "playwright-report/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node, ...globals.browser } },
    plugins: { "react-hooks": reactHooks },
    rules: {
      ...reactHooks.configs.recommended.rules,
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", destructuredArrayIgnorePattern: "^_" }],
      "no-console": ["error", { allow: ["log", "error", "warn"] }],
    },
  },
  {
    // The data plane must stay free of the database and Next.js.
    files: ["lib/enforcement/**", "agent/**"],
    rules: {
      "no-restricted-imports": ["error", { patterns: [{ group: ["@/db/*", "@/lib/db", "next", "next/*", "../db/*"], message: "lib/enforcement and agent/ must not import db/ or Next.js" }] }],
    },
  },
);
