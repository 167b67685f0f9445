import type { ErrorCode } from "../../shared/errors";

/** The HTTP status the node API answers with for each error code. */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  E_BAD_REQUEST: 400,
  E_TOO_LARGE: 413,
  E_NOT_FOUND: 404,
  E_UNAUTHORIZED: 401,
  E_FORBIDDEN: 403,
  E_UNPAIRED: 401,
  E_PAIRING_CLOSED: 403,
  // Not 421 (Misdirected Request): HTTP clients may resend a request that got 421, and a pairing finish must run once.
  E_IDENTITY_CHANGED: 403,
  E_CONFLICT: 409,
  E_RATE_LIMITED: 429,
  E_QUEUE_FULL: 429,
  E_MODEL_MISSING: 400,
  E_DEVICE_MISSING: 400,
  E_SIZE_LIMIT: 400,
  E_OOM: 500,
  E_TIMEOUT: 504,
  E_WORKER_DIED: 500,
  E_CANCELLED: 409,
  E_INFERENCE: 500,
  E_SHUTTING_DOWN: 503,
  E_NOT_READY: 503,
  E_DISK_FULL: 507,
  E_OUTPUT_UNWRITABLE: 500,
  E_YIELDED: 409,
  E_UNREACHABLE: 502,
  E_INIT_IMAGE_MISSING: 409,
  E_INTERNAL: 500,
};
