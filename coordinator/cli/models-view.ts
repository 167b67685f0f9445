import { type ModelsReport, type NodeModelStatus, shortHash, statusDetail, statusWord } from "../models/models-report";

/**
 * `kiln models` as a table: one row per library pack with one column per
 * paired node, the reasons under the row they explain, then what only nodes
 * have. `--json` prints the report itself.
 */
export function formatModelsReport(report: ModelsReport): string {
  const { packs, nodes } = report;
  let out = `library ${report.library.dir}: ${count(packs.length, "pack")}\n`;
  if (nodes.length === 0) out += "no paired nodes (pair one with: kiln pair HOST:PORT CODE, or give --node)\n";
  const labels = nodeLabels(report);
  for (const [i, node] of nodes.entries()) {
    const address = `${node.host}:${node.port}`;
    const where = labels[i] === address ? address : `${labels[i]}  ${address}`;
    out += `  ${where}${node.reachable ? "" : `  unreachable: ${node.problem ?? "did not answer"}`}\n`;
  }
  out += "\n";
  if (packs.length === 0) {
    out +=
      "no model packs in the library yet: put one folder per pack in it (an optimum ONNX export or a kiln-model.json pack)\n";
  } else {
    const header = ["NAME", "KIND", "HASH", "SIZE", "STATUS", ...labels];
    const rows = packs.map((p) => [
      p.name,
      p.kind,
      shortHash(p.hash),
      formatSize(p.sizeBytes),
      p.status.state,
      ...nodes.map((n) => {
        const on = p.onNodes.find((o) => o.nodeId === n.id);
        return on ? statusWord(on.status) : "-";
      }),
    ]);
    const lines = formatColumns([header, ...rows]).split("\n");
    out += `${lines[0]}\n`;
    packs.forEach((p, i) => {
      out += `${lines[i + 1]}\n`;
      if (p.folder !== p.name) out += `  ↳ folder ${p.folder}/\n`;
      if (p.status.state === "unreadable") out += `  ↳ unreadable (${p.status.reason})\n`;
      for (const [j, node] of nodes.entries()) {
        const on = p.onNodes.find((o) => o.nodeId === node.id);
        const detail = on && node.reachable ? statusDetail(on.status as NodeModelStatus) : null;
        if (detail) out += `  ↳ ${labels[j]} ${detail}\n`;
      }
    });
  }
  if (report.nodesOnly.length > 0) {
    out += "\non nodes only (not in the library):\n";
    const byId = new Map(nodes.map((n, i) => [n.id, labels[i] as string]));
    const rows = report.nodesOnly.map((m) => [
      m.name,
      m.kind,
      shortHash(m.hash),
      formatSize(m.sizeBytes),
      m.nodeIds.map((id) => byId.get(id) ?? id).join(", "),
    ]);
    out += `${formatColumns([["NAME", "KIND", "HASH", "SIZE", "ON"], ...rows])}\n`;
  }
  return out;
}

/** Node names as column headers; a name two nodes share gets its address. */
function nodeLabels(report: ModelsReport): string[] {
  const seen = new Map<string, number>();
  for (const n of report.nodes) seen.set(n.name, (seen.get(n.name) ?? 0) + 1);
  return report.nodes.map((n) => ((seen.get(n.name) ?? 0) > 1 ? `${n.name}@${n.host}:${n.port}` : n.name));
}

/** GB and MB as disks count them (10^9, 10^6); kB below a tenth of a megabyte. */
export function formatSize(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(2)} GB`;
  if (bytes >= 1e5) return `${(bytes / 1e6).toFixed(1)} MB`;
  return `${Math.ceil(bytes / 1e3)} kB`;
}

function count(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? "" : "s"}`;
}

/** Rows of cells as aligned text columns, the first row the header. */
function formatColumns(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  return rows
    .map((row) =>
      row
        .map((cell, i) => cell.padEnd(widths[i] as number))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}
