import { formatFingerprint } from "../../shared/fingerprint";
import type { NodeStatus } from "../../shared/ui-api";
import { useActions } from "../api/actions-context";
import { pushText } from "../model/model-push-text";
import { useFarmStore } from "../stores/farm-store";
import { ConfirmButton } from "./ConfirmButton";
import { DeviceCard } from "./DeviceCard";
import { NodeLibraryList } from "./NodeLibraryList";
import { PairForm } from "./PairForm";

/** What each status means for the person looking at it. */
const STATUS_HINT: Record<NodeStatus, string> = {
  online: "taking work",
  draining: "finishing its work, taking no new images",
  lost: "not answering; its images went back to the queue",
  unpaired: "found on the LAN; pair it with the code it prints",
  conflict: "claims the identity of another node; gets no work",
  "identity-changed":
    "presents another certificate than when it was paired: a machine in between, or a reinstalled node; gets no work and no token. If you reinstalled it, remove it and pair it again",
  pairing: "connecting",
};

/** One node (selected by id, so other nodes' telemetry never re-renders it) and its devices. */
export function NodeCard({ nodeId }: { nodeId: string }) {
  const actions = useActions();
  const node = useFarmStore((s) => s.nodes.find((n) => n.id === nodeId));
  if (!node) return null;
  const headingId = `node-${node.id}`;
  const paired = node.status !== "unpaired" && node.status !== "conflict";
  return (
    <article className={`node node-${node.status}`} aria-labelledby={headingId}>
      <header className="node-head">
        <h4 id={headingId}>{node.name}</h4>
        <span className={`badge status-${node.status}`}>{node.status}</span>
        <span className="node-address">
          {node.host}:{node.port}
        </span>
        {node.version && <span className="node-version">v{node.version}</span>}
      </header>
      <p className="node-hint">{node.local ? "Renders on this computer." : STATUS_HINT[node.status]}</p>
      {node.problem && <p className="node-problem">{node.problem}</p>}
      {node.blockedModels.length > 0 && (
        <div className="node-blocked">
          <p>Blocklisted after repeated failures (fix the node, then clear):</p>
          <ul>
            {node.blockedModels.map((model) => (
              <li key={model}>
                {model}{" "}
                <button type="button" onClick={() => void actions.clearBlocklist(node.id, model)}>
                  Clear {model}
                </button>
              </li>
            ))}
          </ul>
        </div>
      )}
      {(node.differentModels?.length ?? 0) > 0 && (
        <p className="node-different">
          Other bytes than the studio's library under {node.differentModels?.join(", ")}: no work for{" "}
          {node.differentModels?.length === 1 ? "it" : "them"} here until the library's copy arrives.
        </p>
      )}
      <NodeLibraryList node={node} />
      {node.library === undefined && (node.pushes?.length ?? 0) > 0 && (
        <ul className="node-pushes" aria-label="Models from the studio's library">
          {node.pushes?.map((push) => (
            <li key={push.model} className={`push push-${push.state}`}>
              {pushText(push)}
              {push.state === "pushing" && (
                <progress max={100} value={push.percent} aria-label={`${push.model} received`} />
              )}
            </li>
          ))}
        </ul>
      )}
      {node.fingerprint && (
        <p className="node-fingerprint">
          Certificate SHA-256 <code>{formatFingerprint(node.fingerprint)}</code>
        </p>
      )}
      {(node.status === "unpaired" || node.status === "identity-changed") && <PairForm node={node} />}
      {paired && !node.local && (
        <div className="node-actions">
          <button type="button" onClick={() => void actions.drainNode(node.id, !node.drained)}>
            {node.drained ? "Undrain" : "Drain"}
          </button>
          <ConfirmButton
            label="Remove"
            confirmLabel="Remove node?"
            onConfirm={() => void actions.removeNode(node.id)}
          />
        </div>
      )}
      {node.devices.length > 0 && (
        <div className="devices">
          {node.devices.map((d) => (
            <DeviceCard
              key={d.uuid}
              device={d}
              nodeLost={node.status === "lost"}
              nodeName={node.name}
              self={node.you}
            />
          ))}
        </div>
      )}
    </article>
  );
}
