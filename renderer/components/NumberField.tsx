import { invalidProps } from "./FieldError";

interface NumberFieldProps {
  id: string;
  label: string;
  value: string | number;
  onChange(value: string): void;
  onBlur(): void;
  /** Shown by the form's FieldError for this id; marks the input invalid. */
  error: string | undefined;
  decimal?: boolean;
  placeholder?: string;
}

/**
 * A labelled number input of the prompt form; its error is rendered below the row it sits in. Text, not
 * type="number": a browser gives a number input it cannot parse ("20e", "7..5") the value "", which the form
 * took for "the model's default" and submitted; as text, what was typed is checked and named.
 */
export function NumberField(props: NumberFieldProps) {
  return (
    <div className="field">
      <label htmlFor={props.id}>{props.label}</label>
      <input
        id={props.id}
        type="text"
        inputMode={props.decimal ? "decimal" : "numeric"}
        autoComplete="off"
        value={props.value}
        placeholder={props.placeholder}
        onChange={(e) => props.onChange(e.target.value)}
        onBlur={props.onBlur}
        {...invalidProps(props.id, props.error)}
      />
    </div>
  );
}
