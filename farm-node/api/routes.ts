/**
 * Who may call a route:
 * - public: liveness and metrics;
 * - pairing: no token yet; the key exchange, the window's budget and the per-address limit guard it;
 * - farm-image: the image key in the query, checked by the handler;
 * - token: a paired app's bearer token.
 */
export type RouteAccess = "public" | "pairing" | "farm-image" | "token";

export interface NodeRoute {
  method: "GET" | "POST" | "PUT" | "DELETE";
  /** As the router matches it, with `:params`. */
  url: string;
  access: RouteAccess;
  websocket?: true;
}

/**
 * Every route of the node API and who may call it: the one list the server
 * checks its routes against at start (a route missing here refuses to start)
 * and the hostile-request fuzz spells every path of. Access is looked up from
 * the route a request matched, never from its raw URL, so no spelling of a
 * path (percent-escapes, case, slashes, dot segments) reaches a handler
 * without that handler's check.
 */
export const NODE_ROUTES: readonly NodeRoute[] = [
  { method: "GET", url: "/health", access: "public" },
  { method: "GET", url: "/metrics", access: "public" },
  { method: "GET", url: "/v1/node", access: "token" },
  { method: "POST", url: "/v1/pair/start", access: "pairing" },
  { method: "POST", url: "/v1/pair/finish", access: "pairing" },
  { method: "DELETE", url: "/v1/pair", access: "token" },
  { method: "POST", url: "/v1/tasks", access: "token" },
  { method: "DELETE", url: "/v1/tasks/:id", access: "token" },
  { method: "GET", url: "/v1/images/:id", access: "token" },
  { method: "PUT", url: "/v1/init-images/:hash", access: "token" },
  { method: "GET", url: "/v1/farm/images/:id", access: "farm-image" },
  { method: "GET", url: "/v1/events", access: "token", websocket: true },
  // Model pushes (shared/model-push.ts): paired apps only; the node's owner can turn them off.
  { method: "POST", url: "/v1/model-pushes", access: "token" },
  { method: "GET", url: "/v1/model-pushes/:hash", access: "token" },
  { method: "PUT", url: "/v1/model-pushes/:hash/files/:index", access: "token" },
  { method: "POST", url: "/v1/model-pushes/:hash/commit", access: "token" },
  { method: "DELETE", url: "/v1/model-pushes/:hash", access: "token" },
];

/** The access of a matched route; a route not in the list needs a token (and cannot be registered anyway). */
export function routeAccess(method: string, url: string): RouteAccess {
  // Fastify answers HEAD with its GET route.
  const asGet = method === "HEAD" ? "GET" : method;
  return NODE_ROUTES.find((r) => r.method === asGet && r.url === url)?.access ?? "token";
}

export function isDeclaredRoute(method: string, url: string): boolean {
  const asGet = method === "HEAD" ? "GET" : method;
  return NODE_ROUTES.some((r) => r.method === asGet && r.url === url);
}
