import { type FormEvent, useState } from "react";
import type { NodeSummary } from "../../shared/ui-api";
import { useActions } from "../api/actions-context";
import { isPairingCode } from "../model/node-address";
import { FieldError, fieldErrorId, invalidProps } from "./FieldError";

/** Pairs a discovered node with the code it prints on its console (or in its log). */
export function PairForm({ node }: { node: NodeSummary }) {
  const actions = useActions();
  const [code, setCode] = useState("");
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const inputId = `pair-${node.id}`;

  async function onSubmit(e: FormEvent) {
    e.preventDefault();
    if (!isPairingCode(code)) {
      setError(`Type the six-digit code ${node.name} prints, like 123-456`);
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      await actions.pairNode(node.host, node.port, code.trim());
      setCode("");
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <form className="pair-form" onSubmit={onSubmit} noValidate>
      <label htmlFor={inputId}>Pairing code</label>
      <div className="input-row">
        <input
          id={inputId}
          type="text"
          inputMode="numeric"
          autoComplete="one-time-code"
          spellCheck={false}
          placeholder="123-456"
          value={code}
          onChange={(e) => {
            setCode(e.target.value);
            setError(undefined);
          }}
          {...invalidProps(inputId, error)}
        />
        <button type="submit" className="primary" disabled={busy}>
          Pair
        </button>
      </div>
      <FieldError id={fieldErrorId(inputId)} message={error} />
    </form>
  );
}
