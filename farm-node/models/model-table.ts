import type { PackSource } from "../../shared/model-push";
import { formatColumns } from "../../shared/text-columns";
import type { PackEntry } from "./model-packs";
import { describeSource } from "./pack-sources";

/**
 * `kiln-node models` output: one line per pack, the reason under a pack that
 * cannot run, and who pushed a pack that came from a studio app (`sources`, by entry).
 */
export function formatModelTable(entries: readonly PackEntry[], sources: readonly PackSource[] = []): string {
  if (entries.length === 0) return "no model packs in this folder (the built-in kiln-demo is always available)\n";
  const rows = entries.map((e) => [
    e.info.name,
    e.info.kind,
    e.info.hash ? e.info.hash.slice(0, 12) : "-",
    e.info.sizeBytes ? formatBytes(e.info.sizeBytes) : "-",
    e.info.available ? "ok" : "unavailable",
  ]);
  const lines = formatColumns([["NAME", "KIND", "HASH", "SIZE", "STATUS"], ...rows]).split("\n");
  let out = `${lines[0]}\n`;
  entries.forEach((e, i) => {
    out += `${lines[i + 1]}\n`;
    if (e.info.unavailableReason) out += `  ↳ ${e.info.unavailableReason}\n`;
    // A pack the owner put there needs no note; a pushed one says by whom and when.
    const source = sources[i];
    if (source?.source === "push") out += `  ↳ ${describeSource(source)}\n`;
  });
  return out;
}

function formatBytes(bytes: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value >= 100 || unit === 0 ? 0 : 1)} ${units[unit]}`;
}
