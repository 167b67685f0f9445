/** mDNS service type, as bonjour-service names it: advertised as `_kiln._tcp`. */
export const MDNS_SERVICE = { type: "kiln", protocol: "tcp" } as const;

/**
 * Bumped whenever a wire message changes shape incompatibly.
 * 2: node APIs over HTTPS with pinned certificates; pairing confirms the fingerprint.
 * 3: pairing is a key exchange on the code (`/v1/pair/start`, `/v1/pair/finish`); the code never crosses the wire.
 */
export const PROTOCOL_VERSION = 3;

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

/** Devices one node may report (the GPUs of one box; `--simulate` allows 64 too). More is refused as a lie. */
export const MAX_DEVICES_PER_NODE = 64;

/** Images in one task (a micro-batch), as TaskRequest allows them. */
export const MAX_IMAGES_PER_TASK = 64;

/** Studio apps one device may list in its sharing report (the apps that used it within its window). */
export const MAX_CLIENTS_PER_DEVICE = 256;

/**
 * Largest PNG an app downloads for one image, whatever a node announces: a
 * 2048×2048 RGB image that does not compress at all is about 12.6 MB.
 */
export const MAX_RESULT_PNG_BYTES = 64 * 2 ** 20;

/**
 * Largest message a node may send on its event socket. The
 * largest a real node sends is telemetry: 8.3 KB from `--simulate 16x24GB@4`
 * with every device busy, about 0.5 KB per device and 0.1 KB per app sharing
 * it, so 1 MiB holds 64 devices each shared by over a hundred apps.
 */
export const MAX_NODE_MESSAGE_BYTES = 2 ** 20;
