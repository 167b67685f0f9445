import { useEffect, useState } from "react";

interface Props {
  label: string;
  confirmLabel: string;
  onConfirm(): void;
  className?: string;
}

/** Destructive actions ask once, in place (no modal): the first press arms the button for a few seconds. */
export function ConfirmButton({ label, confirmLabel, onConfirm, className }: Props) {
  const [armed, setArmed] = useState(false);

  useEffect(() => {
    if (!armed) return;
    const timer = setTimeout(() => setArmed(false), 4000);
    return () => clearTimeout(timer);
  }, [armed]);

  return (
    <button
      type="button"
      className={`${className ?? ""}${armed ? " armed" : ""}`}
      onClick={(e) => {
        if (!armed) return setArmed(true);
        // The second click of a double-click is not a confirmation: a habit must not cancel a job or remove a node.
        if (e.detail > 1) return;
        setArmed(false);
        onConfirm();
      }}
      onBlur={() => setArmed(false)}
    >
      {armed ? confirmLabel : label}
    </button>
  );
}
