import type { FastifyServerOptions } from "fastify";

/**
 * The app's servers (the UI API, the farm library) check every message with
 * the shared zod schemas, so Fastify's JSON-schema compilers, which it loads
 * when created (a third of a second), are replaced by ones that refuse: a
 * route given a JSON schema fails when it is added, saying why.
 */
export const ZOD_ONLY_SCHEMAS: FastifyServerOptions["schemaController"] = {
  compilersFactory: {
    buildValidator: refuse,
    buildSerializer: refuse,
  },
};

function refuse(): never {
  throw new Error("this server validates with zod in its handlers; a route takes no JSON schema");
}
