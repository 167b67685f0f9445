import { type FormEvent, useEffect, useState } from "react";
import type { A1111ApiStatus } from "../../shared/desktop-bridge";
import { useActions } from "../api/actions-context";
import { a1111ApiHint } from "../model/a1111-api-hint";
import { FieldError, fieldErrorId, invalidProps } from "./FieldError";

/**
 * The desktop app's switch for the AUTOMATIC1111 API (issue 17): off by
 * default; on, the app serves `/sdapi/v1` on 127.0.0.1 at the port picked
 * here, for Open WebUI, SillyTavern and other A1111 clients on this computer.
 * Shown only in the desktop app (`kiln serve` has its own flags).
 */
export function A1111ApiPanel() {
  const actions = useActions();
  const [status, setStatus] = useState<A1111ApiStatus | null>(null);
  const [enabled, setEnabled] = useState(false);
  const [port, setPort] = useState("");
  const [error, setError] = useState<string | undefined>(undefined);
  const [saving, setSaving] = useState(false);

  useEffect(() => {
    if (!actions.a1111Api) return;
    let live = true;
    void actions
      .a1111Api()
      .then((read) => {
        if (!live) return;
        setStatus(read);
        setEnabled(read.enabled);
        setPort(String(read.port));
      })
      .catch(() => undefined);
    return () => {
      live = false;
    };
  }, [actions]);

  // Still starting (the app's start loads the local node before the API listens): asked again until it says.
  const starting = status !== null && a1111ApiHint(status).starting;
  useEffect(() => {
    const read = actions.a1111Api;
    if (!starting || !read) return;
    let live = true;
    const timer = setInterval(() => {
      void read()
        .then((again) => {
          if (live) setStatus(again);
        })
        .catch(() => undefined);
    }, 1000);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, [actions, starting]);

  if (!actions.setA1111Api || !status) return null;
  const changed = enabled !== status.enabled || port.trim() !== String(status.port);

  async function onSubmit(e: FormEvent) {
    e.preventDefault();
    if (!actions.setA1111Api) return;
    setSaving(true);
    setError(undefined);
    try {
      const set = await actions.setA1111Api({ enabled, port: Number(port.trim()) });
      setStatus(set);
      setPort(String(set.port));
    } catch (failure) {
      setError((failure as Error).message);
    } finally {
      setSaving(false);
    }
  }

  return (
    <section aria-labelledby="farm-a1111" className="farm-section a1111-panel">
      <h3 className="section-heading" id="farm-a1111">
        A1111 API
      </h3>
      <form className="library-settings" aria-label="A1111 API settings" onSubmit={(e) => void onSubmit(e)}>
        <label className="library-switch">
          <input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} />
          Serve the AUTOMATIC1111 API on this computer
        </label>
        <div className="field">
          <label htmlFor="a1111-port">Port</label>
          <input
            id="a1111-port"
            type="number"
            min={1024}
            max={65535}
            value={port}
            onChange={(e) => {
              setPort(e.target.value);
              setError(undefined);
            }}
            {...invalidProps("a1111-port", error)}
          />
          <FieldError id={fieldErrorId("a1111-port")} message={error} />
        </div>
        <p className="library-hint">{a1111ApiHint(status).text}</p>
        <button type="submit" disabled={!changed || saving}>
          Apply
        </button>
      </form>
    </section>
  );
}
