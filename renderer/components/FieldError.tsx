/** A field's problem, tied to its input by `aria-describedby={fieldErrorId(field)}`. */
export function FieldError({ id, message }: { id: string; message: string | undefined }) {
  if (!message) return null;
  return (
    <p className="field-error" id={id}>
      {message}
    </p>
  );
}

export function fieldErrorId(inputId: string): string {
  return `${inputId}-error`;
}

/** Props that mark an input invalid and point it at its message. */
export function invalidProps(inputId: string, message: string | undefined) {
  return message ? { "aria-invalid": true, "aria-describedby": fieldErrorId(inputId) } : {};
}
