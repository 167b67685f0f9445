import { formatColumns } from "../text-columns";
import type { PackEntry } from "./model-packs";

/** `kiln-node models` output: one line per pack, the reason under a pack that cannot run. */
export function formatModelTable(entries: readonly PackEntry[]): string {
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
