/** mDNS service type, as bonjour-service names it: advertised as `_kiln._tcp`. */
export const MDNS_SERVICE = { type: "kiln", protocol: "tcp" } as const;

/** Bumped whenever a wire message changes shape incompatibly. */
/** 2: node APIs over HTTPS with pinned certificates; pairing confirms the fingerprint. */
export const PROTOCOL_VERSION = 2;

export const DEFAULT_NODE_PORT = 7878;
export const DEFAULT_UI_PORT = 7870;

/** Path prefix of the authenticated node API (also carried in the mDNS TXT `api`). */
export const NODE_API_PREFIX = "/v1";

/** Telemetry cadence of nodes, in milliseconds (1 Hz). */
export const TELEMETRY_INTERVAL_MS = 1000;

/** The guide's request timeout for one 512×512 image at default steps. */
export const BASE_TASK_TIMEOUT_S = 30;

/** Largest edge any pipeline accepts; models may set a lower limit. */
export const MAX_IMAGE_EDGE = 2048;

/** The built-in demo model's name. */
export const DEMO_MODEL = "kiln-demo";
