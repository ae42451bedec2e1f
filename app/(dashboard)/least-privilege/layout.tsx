import type { Metadata } from "next";
import type { ReactNode } from "react";

// The tab's title for every page of this section (the root layout adds " · Mandate").
export const metadata: Metadata = { title: "Least privilege" };

export default function Layout({ children }: { children: ReactNode }) {
  return children;
}
