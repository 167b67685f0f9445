/**
 * Fastify's `schemaController` option for every Kiln HTTP server (the node's
 * API, the app's UI API and farm library): each message is checked with the
 * zod schemas of shared/ in its handler, never with JSON schemas, so Fastify's
 * own compilers (Ajv and fast-json-stringify, which it loads when created: a
 * third of a second of a start) are replaced by ones that refuse. A route
 * given a JSON schema stops the server from getting ready, saying why.
 */
export const ZOD_ONLY_SCHEMAS = {
  compilersFactory: {
    buildValidator: refuse,
    buildSerializer: refuse,
  },
};

function refuse(): never {
  throw new Error("this server validates with zod in its handlers; a route takes no JSON schema");
}
