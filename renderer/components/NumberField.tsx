import { invalidProps } from "./FieldError";

interface NumberFieldProps {
  id: string;
  label: string;
  value: string | number;
  onChange(value: string): void;
  onBlur(): void;
  /** Shown by the form's FieldError for this id; marks the input invalid. */
  error: string | undefined;
  min?: number;
  max?: number;
  step?: number;
  decimal?: boolean;
  placeholder?: string;
}

/** A labelled number input of the prompt form; its error is rendered below the row it sits in. */
export function NumberField(props: NumberFieldProps) {
  return (
    <div className="field">
      <label htmlFor={props.id}>{props.label}</label>
      <input
        id={props.id}
        type="number"
        inputMode={props.decimal ? "decimal" : "numeric"}
        min={props.min}
        max={props.max}
        step={props.step}
        value={props.value}
        placeholder={props.placeholder}
        onChange={(e) => props.onChange(e.target.value)}
        onBlur={props.onBlur}
        {...invalidProps(props.id, props.error)}
      />
    </div>
  );
}
