import type { SeedMode } from "../../shared/job";
import { randomSeed } from "../model/random-seed";
import { FieldError, fieldErrorId, invalidProps } from "./FieldError";
import { Icon } from "./Icon";

interface Props {
  seed: string;
  locked: boolean;
  mode: SeedMode;
  error: string | undefined;
  onChange(patch: { seed?: string; seedLocked?: boolean; seedMode?: SeedMode }): void;
  onBlur(): void;
}

const MODES: { value: SeedMode; label: string }[] = [
  { value: "increment", label: "Seed, seed+1, …" },
  { value: "fixed", label: "Same seed for all" },
  { value: "random", label: "Random for each" },
];

/** The seed the next job starts from: kept (locked) or drawn anew after every Render. */
export function SeedField({ seed, locked, mode, error, onChange, onBlur }: Props) {
  return (
    <div className="field seed-field">
      <label htmlFor="field-seed">Seed</label>
      <div className="input-row">
        <input
          id="field-seed"
          type="text"
          inputMode="numeric"
          autoComplete="off"
          spellCheck={false}
          value={seed}
          placeholder="random"
          onChange={(e) => onChange({ seed: e.target.value })}
          onBlur={onBlur}
          {...invalidProps("field-seed", error)}
        />
        <button
          type="button"
          className="icon-button"
          aria-label="Keep seed"
          aria-pressed={locked}
          title={locked ? "Seed kept after Render" : "A new seed is drawn after Render"}
          onClick={() => onChange({ seedLocked: !locked })}
        >
          <Icon name={locked ? "lock" : "unlock"} />
        </button>
        <button
          type="button"
          className="icon-button"
          aria-label="New random seed"
          title="New random seed"
          onClick={() => onChange({ seed: String(randomSeed()) })}
        >
          <Icon name="dice" />
        </button>
      </div>
      <FieldError id={fieldErrorId("field-seed")} message={error} />
      <label htmlFor="field-seed-mode" className="sub-label">
        Seed mode
      </label>
      <select
        id="field-seed-mode"
        value={mode}
        onChange={(e) => onChange({ seedMode: MODES.find((m) => m.value === e.target.value)?.value ?? "increment" })}
      >
        {MODES.map((m) => (
          <option key={m.value} value={m.value}>
            {m.label}
          </option>
        ))}
      </select>
    </div>
  );
}
