"use client";

import { Button } from "@/components/ui";
import { qs } from "@/lib/client/api";

/**
 * Export buttons: the browser downloads the streamed attachment itself (the
 * session cookie authenticates the GET), so nothing is held in page memory.
 * `params` is called on click, so a preset range is resolved at that moment.
 */
export function ExportButtons({ path, params }: { path: string; params: () => Record<string, string | number | undefined | null> }) {
  const download = (format: "csv" | "ndjson") => {
    const a = document.createElement("a");
    a.href = `/api/v1/admin${path}${qs({ ...params(), format })}`;
    a.download = "";
    document.body.appendChild(a);
    a.click();
    a.remove();
  };
  return (
    <>
      <Button variant="secondary" onClick={() => download("csv")}>
        Export CSV
      </Button>
      <Button variant="secondary" onClick={() => download("ndjson")}>
        Export NDJSON
      </Button>
    </>
  );
}
