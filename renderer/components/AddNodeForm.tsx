import { type FormEvent, useState } from "react";
import { useActions } from "../api/actions-context";
import { isFingerprint, isPairingCode, parseNodeAddress } from "../model/node-address";
import { FieldError, fieldErrorId, invalidProps } from "./FieldError";

/**
 * Adds a node by address, for LANs where discovery (multicast) is blocked:
 * with the pairing code it prints, or with a token set on the node
 * (`--token-file`). A token goes only to the certificate the person names by
 * its SHA-256 (the node prints it at start), unless they choose to trust the
 * one that answers now.
 */
export function AddNodeForm() {
  const actions = useActions();
  const [address, setAddress] = useState("");
  const [secret, setSecret] = useState("");
  const [fingerprint, setFingerprint] = useState("");
  const [trustFirstUse, setTrustFirstUse] = useState(false);
  const [errors, setErrors] = useState<{ address?: string; secret?: string; fingerprint?: string }>({});
  const [busy, setBusy] = useState(false);

  async function onSubmit(e: FormEvent) {
    e.preventDefault();
    const parsed = parseNodeAddress(address);
    const next: typeof errors = {};
    if ("error" in parsed) next.address = parsed.error;
    if (secret.trim() === "") next.secret = "Enter the code the node prints (123-456) or its token";
    const byToken = secret.trim() !== "" && !isPairingCode(secret);
    if (byToken && !trustFirstUse && !isFingerprint(fingerprint))
      next.fingerprint =
        "Enter the certificate SHA-256 the node prints at start (64 hex digits), or trust the certificate it presents now";
    setErrors(next);
    if ("error" in parsed || next.secret || next.fingerprint) return;
    setBusy(true);
    try {
      const value = secret.trim();
      if (!byToken) await actions.pairNode(parsed.host, parsed.port, value);
      else
        await actions.addNode(
          parsed.host,
          parsed.port,
          value,
          trustFirstUse ? "trust-first-use" : { fingerprint: fingerprint.trim() },
        );
      setAddress("");
      setSecret("");
      setFingerprint("");
      setTrustFirstUse(false);
    } catch (err) {
      setErrors(
        byToken && /certificate/.test((err as Error).message)
          ? { fingerprint: (err as Error).message }
          : { secret: (err as Error).message },
      );
    } finally {
      setBusy(false);
    }
  }

  return (
    // Unnamed on purpose: a form named "…address" would also answer to the label "Address".
    <form className="add-node" onSubmit={onSubmit} noValidate>
      <h3>Add a node by address</h3>
      <div className="field">
        <label htmlFor="add-node-address">Address</label>
        <input
          id="add-node-address"
          type="text"
          autoComplete="off"
          spellCheck={false}
          placeholder="10.0.0.7:7878"
          value={address}
          onChange={(e) => setAddress(e.target.value)}
          {...invalidProps("add-node-address", errors.address)}
        />
        <FieldError id={fieldErrorId("add-node-address")} message={errors.address} />
      </div>
      <div className="field">
        <label htmlFor="add-node-secret">Pairing code or token</label>
        <input
          id="add-node-secret"
          type="password"
          autoComplete="off"
          spellCheck={false}
          value={secret}
          onChange={(e) => setSecret(e.target.value)}
          {...invalidProps("add-node-secret", errors.secret)}
        />
        <FieldError id={fieldErrorId("add-node-secret")} message={errors.secret} />
      </div>
      {secret.trim() !== "" && !isPairingCode(secret) && (
        <div className="field">
          <label htmlFor="add-node-fingerprint">Certificate SHA-256</label>
          <input
            id="add-node-fingerprint"
            type="text"
            autoComplete="off"
            spellCheck={false}
            placeholder="as kiln-node prints it at start"
            value={fingerprint}
            disabled={trustFirstUse}
            onChange={(e) => setFingerprint(e.target.value)}
            {...invalidProps("add-node-fingerprint", errors.fingerprint)}
          />
          <FieldError id={fieldErrorId("add-node-fingerprint")} message={errors.fingerprint} />
          <label className="checkbox">
            <input type="checkbox" checked={trustFirstUse} onChange={(e) => setTrustFirstUse(e.target.checked)} />
            Trust the certificate it presents now (only on a network you control)
          </label>
        </div>
      )}
      <button type="submit" disabled={busy}>
        Add node
      </button>
    </form>
  );
}
