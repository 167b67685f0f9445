import { SIZE_PRESETS } from "../model/size-rules";
import { FieldError, fieldErrorId } from "./FieldError";
import { NumberField } from "./NumberField";

interface Props {
  width: string;
  height: string;
  widthError: string | undefined;
  heightError: string | undefined;
  onChange(size: { width?: string; height?: string }): void;
  onBlur(field: "width" | "height"): void;
}

/** Presets for the usual sizes; Width and Height always editable (a preset just fills them). */
export function SizeFields({ width, height, widthError, heightError, onChange, onBlur }: Props) {
  const preset = SIZE_PRESETS.find((p) => String(p.width) === width && String(p.height) === height);
  return (
    <fieldset className="field size-field">
      <legend>Size</legend>
      <div className="chips">
        {SIZE_PRESETS.map((p) => (
          <label key={p.label} className="chip">
            <input
              type="radio"
              name="size-preset"
              checked={preset === p}
              onChange={() => onChange({ width: String(p.width), height: String(p.height) })}
            />
            <span>{p.label}</span>
          </label>
        ))}
        <label className="chip">
          <input
            type="radio"
            name="size-preset"
            checked={preset === undefined}
            onChange={() => document.getElementById("field-width")?.focus()}
          />
          <span>Custom</span>
        </label>
      </div>
      <div className="size-inputs">
        <NumberField
          id="field-width"
          label="Width"
          value={width}
          onChange={(value) => onChange({ width: value })}
          onBlur={() => onBlur("width")}
          error={widthError}
        />
        <span className="size-times" aria-hidden="true">
          ×
        </span>
        <NumberField
          id="field-height"
          label="Height"
          value={height}
          onChange={(value) => onChange({ height: value })}
          onBlur={() => onBlur("height")}
          error={heightError}
        />
      </div>
      <FieldError id={fieldErrorId("field-width")} message={widthError} />
      <FieldError id={fieldErrorId("field-height")} message={heightError} />
    </fieldset>
  );
}
