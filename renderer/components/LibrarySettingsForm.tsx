import { type FormEvent, useState } from "react";
import type { ModelLibrary } from "../../shared/ui-api";
import { useActions } from "../api/actions-context";
import { FieldError, fieldErrorId, invalidProps } from "./FieldError";

/**
 * The desktop app's library settings (the app's `--models DIR` and
 * `--no-push`): the folder and the on-demand switch, applied to the
 * coordinator and saved by the app when Apply is pressed. The coordinator's
 * refusal (a folder that is not there) shows next to the folder.
 */
export function LibrarySettingsForm({ library }: { library: ModelLibrary }) {
  const actions = useActions();
  const [dir, setDir] = useState(library.dir ?? "");
  const [onDemand, setOnDemand] = useState(library.onDemand);
  const [error, setError] = useState<string | undefined>(undefined);
  const [saving, setSaving] = useState(false);
  const changed = dir.trim() !== (library.dir ?? "") || onDemand !== library.onDemand;

  async function choose() {
    const picked = await actions.chooseFolder?.();
    if (picked) {
      setDir(picked);
      setError(undefined);
    }
  }

  async function onSubmit(e: FormEvent) {
    e.preventDefault();
    setSaving(true);
    setError(undefined);
    try {
      await actions.setModelLibrary({ dir, onDemand });
    } catch (failure) {
      setError((failure as Error).message);
    } finally {
      setSaving(false);
    }
  }

  return (
    <form className="library-settings" aria-label="Model library settings" onSubmit={(e) => void onSubmit(e)}>
      <div className="field">
        <label htmlFor="library-dir">Model library folder</label>
        <input
          id="library-dir"
          type="text"
          spellCheck={false}
          value={dir}
          onChange={(e) => {
            setDir(e.target.value);
            setError(undefined);
          }}
          {...invalidProps("library-dir", error)}
        />
        {actions.chooseFolder && (
          <button type="button" className="library-choose" onClick={() => void choose()}>
            Choose…
          </button>
        )}
        <FieldError id={fieldErrorId("library-dir")} message={error} />
      </div>
      <label className="library-switch">
        <input type="checkbox" checked={onDemand} onChange={(e) => setOnDemand(e.target.checked)} />
        On-demand pushes
      </label>
      <p className="library-hint">
        {onDemand
          ? "Queued images' models are pushed to nodes that lack them while the rest of the farm renders."
          : "Nothing is pushed on its own: push packs from a node's card; nodes use their own copies as they are."}{" "}
        This computer renders from the folder it was started with.
      </p>
      <button type="submit" disabled={!changed || saving}>
        Apply
      </button>
    </form>
  );
}
