import type { NodeSummary } from "../../shared/ui-api";
import { useActions } from "../api/actions-context";
import { canPush, libraryStatusText } from "../model/model-push-text";

/**
 * A node's card: every pack of the studio's library and how it stands there
 * (present, missing, different, receiving with progress and rate, refused,
 * failed, cancelled), with Push where the node lacks the library's bytes and
 * Cancel while a push runs.
 */
export function NodeLibraryList({ node }: { node: NodeSummary }) {
  const actions = useActions();
  const entries = node.library ?? [];
  if (entries.length === 0) return null;
  const canReceive = node.status === "online" && !node.drained && !node.local;
  return (
    <ul className="node-library" aria-label={`Models from the studio's library on ${node.name}`}>
      {entries.map(({ model, status }) => (
        <li key={model} className={`library-model library-${status.state}`}>
          <span className="library-model-name">{model}</span>
          <span className="library-model-state">{libraryStatusText(status)}</span>
          {status.state === "pushing" && (
            <>
              <progress max={100} value={status.percent} aria-label={`${model} received`} />
              <button
                type="button"
                aria-label={`Cancel push of ${model}`}
                onClick={() => void actions.cancelModelPush(node.id, model)}
              >
                Cancel push
              </button>
            </>
          )}
          {canReceive && canPush(status) && (
            <button type="button" aria-label={`Push ${model}`} onClick={() => void actions.pushModel(node.id, model)}>
              Push
            </button>
          )}
        </li>
      ))}
    </ul>
  );
}
