import type { FastifyServerOptions } from "fastify";

/**
 * Fastify's JSON-schema compilers (Ajv and fast-json-stringify), replaced by
 * ones that refuse: every body here is checked with the shared zod schemas in
 * its handler, and Fastify loads its own compilers when it is created, about a
 * third of a second of the node's start. A route given a JSON schema fails
 * when it is added, saying why.
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
