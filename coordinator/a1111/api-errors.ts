import type { FastifyReply } from "fastify";
import type { z } from "zod";
import type { FieldError } from "../../shared/errors";

/**
 * Errors as A1111's clients read them. A1111 is a FastAPI app: a body that does
 * not fit the schema is 422 with `detail`, a list of `{loc, msg, type}` (loc
 * starts with "body"); other refusals carry `detail` as a string. Clients show
 * `detail`, so each message names the field and what would be accepted.
 */
export interface ValidationItem {
  loc: Array<string | number>;
  msg: string;
  type: string;
}

export function validationItems(error: z.ZodError): ValidationItem[] {
  return error.issues.map((issue) => ({
    loc: ["body", ...issue.path.map((p) => (typeof p === "symbol" ? String(p) : p))],
    msg: issue.message,
    type: issueType(issue.code),
  }));
}

/** Kiln's own field errors (a model the farm lacks, a size over a model's limit) in the same shape. */
export function fieldItems(fields: FieldError[], type = "value_error"): ValidationItem[] {
  return fields.map((f) => ({ loc: ["body", ...f.path.split(".")], msg: f.message, type }));
}

export function sendValidation(reply: FastifyReply, detail: ValidationItem[]): FastifyReply {
  return reply.code(422).send({ detail });
}

/** A refusal that is not about one field: `{detail: "…"}` as FastAPI's HTTPException sends it. */
export function sendDetail(reply: FastifyReply, status: number, detail: string): FastifyReply {
  return reply.code(status).send({ detail });
}

function issueType(code: string): string {
  switch (code) {
    case "invalid_type":
      return "type_error";
    case "too_small":
    case "too_big":
      return "value_error.number";
    case "unrecognized_keys":
      return "value_error.extra";
    default:
      return "value_error";
  }
}
