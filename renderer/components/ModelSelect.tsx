import type { ModelInfo } from "../../shared/node-info";
import { FieldError, fieldErrorId, invalidProps } from "./FieldError";

interface Props {
  value: string;
  models: ModelInfo[];
  /** Per model, in the same order: its name and how many devices render it ("sdxl-x — 2 devices now, 6 after pushes"). */
  labels: readonly string[];
  error: string | undefined;
  onChange(model: string): void;
  onBlur(): void;
}

/**
 * The models the farm has now and the library's packs no node has yet, each
 * with its device count now and after pushes; a chosen model that went
 * offline stays listed, marked, so the choice is not lost silently.
 */
export function ModelSelect({ value, models, labels, error, onChange, onBlur }: Props) {
  const missing = value !== "" && !models.some((m) => m.name === value);
  return (
    <div className="field">
      <label htmlFor="field-model">Model</label>
      <select
        id="field-model"
        value={value}
        onChange={(e) => onChange(e.target.value)}
        onBlur={onBlur}
        {...invalidProps("field-model", error)}
      >
        {value === "" && (
          <option value="" disabled>
            {models.length === 0 ? "No models yet: is a node online?" : "Pick a model"}
          </option>
        )}
        {missing && <option value={value}>{value} (not on the farm now)</option>}
        {models.map((m, i) => (
          <option key={m.name} value={m.name} title={m.description}>
            {labels[i] ?? m.name}
          </option>
        ))}
      </select>
      <FieldError id={fieldErrorId("field-model")} message={error} />
    </div>
  );
}
