import { formatColumns } from "../../shared/text-columns";
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

/** How one node's push stands, for its progress line and the summary. */
export type PushLine =
  | { state: "waiting" }
  | { state: "sending"; percent: number; doneBytes: number; bytesToSend: number; bytesPerSecond: number }
  | { state: "committing" }
  | { state: "installed"; sentBytes: number; totalBytes: number; bytesLinked: number }
  | { state: "already-there" }
  | { state: "failed"; reason: string };

/** MB/s as disks and links count them (10^6 bytes). */
export function formatRate(bytesPerSecond: number): string {
  return `${(bytesPerSecond / 1e6).toFixed(1)} MB/s`;
}

/** One node's line while a push runs (a terminal redraws it in place). */
export function formatPushLine(label: string, line: PushLine): string {
  switch (line.state) {
    case "waiting":
      return `${label}  offering…`;
    case "sending":
      return `${label}  ${String(line.percent).padStart(3)}%  ${formatSize(line.doneBytes)} of ${formatSize(line.bytesToSend)}  ${formatRate(line.bytesPerSecond)}`;
    case "committing":
      return `${label}  100%  verifying and installing…`;
    default:
      return `${label}  ${pushOutcomeWords(line)}`;
  }
}

/** The end of a push to one node, in words. */
export function pushOutcomeWords(line: PushLine): string {
  switch (line.state) {
    case "installed": {
      const reused = line.totalBytes - line.sentBytes;
      const extra =
        reused > 0
          ? ` (${formatSize(reused)} were already on the node${line.bytesLinked > 0 ? " or linked from its other packs" : ""})`
          : "";
      return `installed: sent ${formatSize(line.sentBytes)} of ${formatSize(line.totalBytes)}${extra}`;
    }
    case "already-there":
      return "already there";
    case "failed":
      return `failed: ${line.reason}`;
    default:
      return "not finished";
  }
}

/** The summary after `kiln models push`: one line per node. */
export function formatPushSummary(name: string, results: ReadonlyArray<{ label: string; line: PushLine }>): string {
  if (results.length === 0)
    return `${name}: no paired nodes to push to (pair one with: kiln pair HOST:PORT CODE, or give --node with --token)\n`;
  const width = Math.max(...results.map((r) => r.label.length));
  return `${name}:\n${results.map((r) => `  ${r.label.padEnd(width)}  ${pushOutcomeWords(r.line)}\n`).join("")}`;
}

/**
 * The progress lines of a push to several nodes: redrawn in place on a
 * terminal (at most every `intervalMs`), otherwise a plain line at each
 * quarter and at the end, so a log shows the push without a line per chunk.
 */
export class PushBoard {
  private readonly lines = new Map<string, PushLine>();
  private drawn = 0;
  private lastDraw = Number.NEGATIVE_INFINITY;
  private readonly quarters = new Map<string, number>();

  constructor(
    private readonly out: { write(text: string): unknown; isTTY?: boolean },
    labels: readonly string[],
    private readonly now: () => number = Date.now,
    private readonly intervalMs = 200,
  ) {
    for (const label of labels) this.lines.set(label, { state: "waiting" });
  }

  update(label: string, line: PushLine): void {
    this.lines.set(label, line);
    if (this.out.isTTY) {
      const final = line.state !== "sending";
      if (final || this.now() - this.lastDraw >= this.intervalMs) this.redraw();
      return;
    }
    if (line.state === "sending") {
      const quarter = Math.floor(line.percent / 25);
      if (quarter <= (this.quarters.get(label) ?? -1) || quarter >= 4) return;
      this.quarters.set(label, quarter);
    } else if (line.state === "waiting" || line.state === "committing") return;
    this.out.write(`${formatPushLine(label, line)}\n`);
  }

  private redraw(): void {
    this.lastDraw = this.now();
    let text = this.drawn > 0 ? `\x1b[${this.drawn}A` : "";
    for (const [label, line] of this.lines) text += `\x1b[2K${formatPushLine(label, line)}\n`;
    this.drawn = this.lines.size;
    this.out.write(text);
  }
}
