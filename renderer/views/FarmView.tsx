import { useShallow } from "zustand/react/shallow";
import { A1111ApiPanel } from "../components/A1111ApiPanel";
import { AddNodeForm } from "../components/AddNodeForm";
import { FarmTotals } from "../components/FarmTotals";
import { LibraryPanel } from "../components/LibraryPanel";
import { NodeCard } from "../components/NodeCard";
import { useFarmStore } from "../stores/farm-store";
import "../styles/farm.css";

/**
 * The TD's panel: totals, then "This computer" (the local node) first, then
 * the paired nodes, then what discovery found. Selects node ids only: readings
 * re-render the node cards that changed, not this view.
 */
export function FarmView() {
  // A flat list of "group:id" strings, so the shallow comparison sees equal answers as equal.
  const entries = useFarmStore(
    useShallow((s) =>
      [...s.nodes]
        .sort((a, b) => a.name.localeCompare(b.name))
        .map(
          (n) =>
            `${n.local ? "local" : n.status === "unpaired" || n.status === "conflict" ? "found" : "paired"}:${n.id}`,
        ),
    ),
  );
  const group = (name: string) => entries.filter((e) => e.startsWith(`${name}:`)).map((e) => e.slice(name.length + 1));
  const groups = { local: group("local"), paired: group("paired"), found: group("found") };
  const loaded = useFarmStore((s) => s.loaded);
  const mode = useFarmStore((s) => s.mode);
  const farm = mode.mode === "farm";

  return (
    <div className="farm-view">
      <h2 className="visually-hidden">Farm</h2>
      <p className="farm-mode" data-mode={mode.mode}>
        {farm
          ? `Farm mode: jobs go to a queue on ${mode.farm} that every farm node pulls from`
          : "LAN mode: jobs are sharded over the nodes paired with this app"}
      </p>
      <FarmTotals />
      {groups.local.length > 0 && (
        <section aria-label="Local monitoring panel" className="farm-section">
          <h3 className="section-heading">This computer</h3>
          {groups.local.map((id) => (
            <NodeCard key={id} nodeId={id} />
          ))}
        </section>
      )}
      <section aria-labelledby="farm-nodes" className="farm-section">
        <h3 className="section-heading" id="farm-nodes">
          Farm nodes
        </h3>
        {loaded && groups.paired.length === 0 && (
          <p className="empty">
            {farm
              ? "No node reports to the farm yet: start kiln-node with --farm and the same Redis URL."
              : "No paired nodes yet. Nodes on the LAN appear below; or add one by address."}
          </p>
        )}
        {groups.paired.map((id) => (
          <NodeCard key={id} nodeId={id} />
        ))}
      </section>
      {groups.found.length > 0 && (
        <section aria-labelledby="farm-found" className="farm-section">
          <h3 className="section-heading" id="farm-found">
            Found on the LAN
          </h3>
          {groups.found.map((id) => (
            <NodeCard key={id} nodeId={id} />
          ))}
        </section>
      )}
      {farm ? null : <LibraryPanel />}
      <A1111ApiPanel />
      {farm ? null : <AddNodeForm />}
    </div>
  );
}
