import type { ScenarioResult } from "./scenarios";

/** The lab's table: scenario → result → images lost / duplicated, then the notes. */
export function formatLabTable(results: readonly ScenarioResult[]): string {
  const rows = results.map((r) => [
    r.name,
    passed(r) ? "pass" : "FAIL",
    `${r.tally.lost}/${r.tally.duplicated}`,
    `${r.tally.stored}/${r.tally.expected}`,
  ]);
  const header = ["scenario", "result", "lost/dup", "stored"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: string[]) => `${cells.map((c, i) => c.padEnd(widths[i] as number)).join("  ")}\n`;
  let out = `\nLAN lab\n${line(header)}`;
  for (const row of rows) out += line(row);
  for (const r of results) {
    for (const note of [...r.notes, ...r.problems.map((p) => `PROBLEM: ${p}`)])
      out += `  ${r.name.split(".")[0]}: ${note}\n`;
  }
  return out;
}

export function passed(r: ScenarioResult): boolean {
  return r.problems.length === 0 && r.tally.lost === 0 && r.tally.duplicated === 0 && r.tally.wrongSeed === 0;
}
