/** The parts of a V8 .heapsnapshot file read here (the format Chrome DevTools saves and loads). */
interface HeapSnapshotFile {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

export interface HeapGrowthRow {
  /** Node kind and constructor (or what V8 names it), e.g. `object:TLSSocket`; strings and code are not split by content. */
  what: string;
  count: number;
  bytes: number;
}

/** Retained objects by kind and constructor: count and summed self size. */
function tally(text: string): Map<string, { count: number; bytes: number }> {
  const file = JSON.parse(text) as HeapSnapshotFile;
  const fields = file.snapshot.meta.node_fields;
  const kinds = file.snapshot.meta.node_types[0];
  const [typeAt, nameAt, sizeAt] = [fields.indexOf("type"), fields.indexOf("name"), fields.indexOf("self_size")];
  const tallies = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < file.nodes.length; i += fields.length) {
    const kind = kinds[file.nodes[i + typeAt] as number] ?? "?";
    // A string's or a code object's name is its content: thousands of one-off rows that say nothing about growth.
    const named = !/string|code|number/.test(kind);
    const what = named ? `${kind}:${file.strings[file.nodes[i + nameAt] as number]?.slice(0, 80)}` : kind;
    const tallied = tallies.get(what) ?? { count: 0, bytes: 0 };
    tallied.count++;
    tallied.bytes += file.nodes[i + sizeAt] as number;
    tallies.set(what, tallied);
  }
  return tallies;
}

/**
 * What grew between two heap snapshots of one process, largest growth first:
 * the rows to look at when the heap after GC grows (load both files in Chrome
 * DevTools' Memory tab, "Comparison" view, to follow their retainers).
 */
export function heapGrowth(before: string, after: string, rows = 15): HeapGrowthRow[] {
  const was = tally(before);
  return [...tally(after)]
    .map(([what, now]) => ({
      what,
      count: now.count - (was.get(what)?.count ?? 0),
      bytes: now.bytes - (was.get(what)?.bytes ?? 0),
    }))
    .sort((a, b) => b.bytes - a.bytes)
    .slice(0, rows);
}
