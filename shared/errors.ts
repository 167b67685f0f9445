import { z } from "zod";

/**
 * Error codes shared by node, coordinator, UI and CLI. The scheduler reads the
 * code; people read the message.
 */
export const ErrorCode = z.enum([
  "E_BAD_REQUEST",
  "E_TOO_LARGE",
  "E_NOT_FOUND",
  "E_UNAUTHORIZED",
  "E_FORBIDDEN",
  "E_UNPAIRED",
  "E_PAIRING_CLOSED",
  "E_IDENTITY_CHANGED",
  "E_CONFLICT",
  "E_RATE_LIMITED",
  "E_QUEUE_FULL",
  "E_MODEL_MISSING",
  "E_DEVICE_MISSING",
  "E_SIZE_LIMIT",
  "E_OOM",
  "E_TIMEOUT",
  "E_WORKER_DIED",
  "E_CANCELLED",
  "E_INFERENCE",
  "E_SHUTTING_DOWN",
  "E_NOT_READY",
  "E_DISK_FULL",
  /** The app's output folder refused a result for another reason than space (read-only, permissions, I/O error). */
  "E_OUTPUT_UNWRITABLE",
  /** The device stepped aside for its owner: nothing failed, the work belongs on another device. */
  "E_YIELDED",
  /** Another machine a request needed could not be reached (in farm mode: the app a node fetches a pack from). */
  "E_UNREACHABLE",
  /** A task names an init image (by sha256) the node does not hold: send it (PUT /v1/init-images/<sha256>), then the task again. */
  "E_INIT_IMAGE_MISSING",
  "E_INTERNAL",
]);
export type ErrorCode = z.infer<typeof ErrorCode>;

/**
 * Task failures that are nobody's fault (the node stopping, its device yielded to its owner or unable to start
 * its worker): the work goes back to the queue, counted against neither the images nor the node, using no try.
 */
export const BLAMELESS_FAILURES: ReadonlySet<string> = new Set<ErrorCode>([
  "E_SHUTTING_DOWN",
  "E_YIELDED",
  "E_NOT_READY",
]);

export const FieldError = z.object({
  path: z.string(),
  message: z.string(),
});
export type FieldError = z.infer<typeof FieldError>;

/** The body of every non-2xx answer of the node API. */
export const ApiError = z.object({
  error: z.object({
    code: ErrorCode,
    message: z.string(),
    fields: z.array(FieldError).optional(),
    /** Extra facts a client can act on (e.g. the installed models). */
    details: z.record(z.string(), z.unknown()).optional(),
  }),
});
export type ApiError = z.infer<typeof ApiError>;

/** An error as a value: a code for programs, a message for people. */
export class KilnError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
    /** Per-field problems of a rejected request, for forms and API clients. */
    readonly fields?: FieldError[],
  ) {
    super(message);
    this.name = "KilnError";
  }
}

/** Turns zod issues into `field: message` pairs a person can act on. */
export function fieldErrors(error: z.ZodError): FieldError[] {
  return error.issues.map((issue) => ({
    path: issue.path.length > 0 ? issue.path.join(".") : "(body)",
    message: issue.message,
  }));
}

/** One-line summary of field errors, for logs and CLI output. */
export function describeFieldErrors(fields: FieldError[]): string {
  return fields.map((f) => `${f.path}: ${f.message}`).join("; ");
}
