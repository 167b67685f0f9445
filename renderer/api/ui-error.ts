import type { ErrorCode, FieldError } from "../../shared/errors";
import { UiErrorBody } from "../../shared/ui-api";

/** An error answered by the coordinator, rebuilt on the UI side of either transport. */
export class UiError extends Error {
  override readonly name = "UiError";

  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Per-field problems (`width`, `prompts.0`…), shown next to their fields. */
    readonly fields: FieldError[] = [],
  ) {
    super(message);
  }
}

/** Rebuilds the `{error}` of a reply; a malformed body still becomes a readable error. */
export function uiErrorFrom(body: unknown): UiError {
  const parsed = UiErrorBody.safeParse(body);
  if (!parsed.success) return new UiError("E_INTERNAL", "the coordinator answered with an unreadable error");
  return new UiError(parsed.data.code, parsed.data.message, parsed.data.fields ?? []);
}
