import type { GridAxis } from "../../shared/job";
import { FieldError, fieldErrorId, invalidProps } from "./FieldError";

interface Props {
  enabled: boolean;
  text: string;
  grid: { x: GridAxis; y?: GridAxis } | null;
  error: string | undefined;
  onChange(patch: { gridEnabled?: boolean; grid?: string }): void;
  onBlur(): void;
}

function describe(axis: GridAxis): string {
  return `${axis.kind} (${axis.values.length} value${axis.values.length === 1 ? "" : "s"})`;
}

/** Optional X/Y grid in the CLI's notation, parsed by shared/grid-spec.ts as it is typed. */
export function GridField({ enabled, text, grid, error, onChange, onBlur }: Props) {
  return (
    <div className="field grid-field">
      <label className="check">
        <input type="checkbox" checked={enabled} onChange={(e) => onChange({ gridEnabled: e.target.checked })} />
        <span>X/Y grid</span>
      </label>
      {enabled && (
        <>
          <label htmlFor="field-grid" className="sub-label">
            Grid axes
          </label>
          <input
            id="field-grid"
            type="text"
            autoComplete="off"
            spellCheck={false}
            placeholder="seed=1,2,3;cfg=1,2"
            value={text}
            onChange={(e) => onChange({ grid: e.target.value })}
            onBlur={onBlur}
            {...invalidProps("field-grid", error)}
          />
          <FieldError id={fieldErrorId("field-grid")} message={error} />
          {grid && !error && (
            <p className="hint">
              X: {describe(grid.x)}
              {grid.y ? ` · Y: ${describe(grid.y)}` : ""}
            </p>
          )}
        </>
      )}
    </div>
  );
}
