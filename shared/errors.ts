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

const MAX_MESSAGE_CHARS = 2000;
/** Field problems kept of one answer, and the most of its details' JSON kept: far more than a real answer has. */
const MAX_FIELD_ERRORS = 50;
const MAX_DETAILS_CHARS = 64 * 1024;

/**
 * A node's words for people (an error's message): kept, but cut to a length a
 * screen and the ledger can hold, so an answer is never refused for its prose.
 */
export const NodeMessage = z
  .string()
  .transform((text) => (text.length > MAX_MESSAGE_CHARS ? `${text.slice(0, MAX_MESSAGE_CHARS)}…` : text));

export const FieldError = z.object({
  path: z.string().transform((path) => path.slice(0, 200)),
  message: NodeMessage,
});
export type FieldError = z.infer<typeof FieldError>;

/**
 * The body of every non-2xx answer of the node API (and of the UI API). Read from a peer, so cut to bounds: its
 * message becomes an image's error and a node's problem, kept in the ledger and sent with every nodes.changed.
 */
export const ApiError = z.object({
  error: z.object({
    code: ErrorCode,
    message: NodeMessage,
    fields: z
      .array(FieldError)
      .transform((fields) => fields.slice(0, MAX_FIELD_ERRORS))
      .optional(),
    /** Extra facts a client can act on (e.g. the installed models); dropped when past any real answer's size. */
    details: z
      .record(z.string(), z.unknown())
      .transform((details) => (JSON.stringify(details).length > MAX_DETAILS_CHARS ? undefined : details))
      .optional(),
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
