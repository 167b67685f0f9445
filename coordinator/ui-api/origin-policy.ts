/** What a request to `kiln serve` is judged by: the name and port it was addressed to, and the page that sent it. */
export interface RequestSource {
  host?: string;
  origin?: string;
  /** The local port the connection came in on. */
  port: number;
}

/** Answers why a request must be refused (a message that names the fix), or null when it may go on. */
export type OriginPolicy = (source: RequestSource) => string | null;

const LOOPBACK_NAMES = ["127.0.0.1", "localhost", "[::1]"];

/**
 * Without `--lan` only this computer's own names for the server are answered:
 * a DNS-rebinding page (its name made to resolve to 127.0.0.1) arrives with its
 * own name as Host, and a page of any other site with its own Origin, so both
 * are refused before they can reach the API, even without a token in hand.
 */
export const loopbackPolicy: OriginPolicy = ({ host, origin, port }) => {
  // A browser leaves the port out of Host and Origin when it is the scheme's default.
  const hosts = LOOPBACK_NAMES.flatMap((name) => (port === 80 ? [name, `${name}:${port}`] : [`${name}:${port}`]));
  const origins = hosts.map((name) => `http://${name}`);
  const address = `http://127.0.0.1:${port}`;
  if (!hosts.includes(host?.toLowerCase() ?? ""))
    return `this Kiln serves this computer only, at ${address}; it was asked as "${host ?? ""}". Open the address \`kiln serve\` printed, or run \`kiln serve --lan\` to serve other computers`;
  if (origin !== undefined && !origins.includes(origin.toLowerCase()))
    return `Kiln answers only its own pages at ${address}, not a page of ${origin}. Open the address \`kiln serve\` printed`;
  return null;
};

/**
 * With `--lan` the computer has many names (addresses, host name, mDNS name),
 * so Host is not checked; a browser's request must come from a page of the very
 * origin it addressed, so another site's page cannot use the API or images even
 * in a browser that holds the token or the image cookie.
 */
export function sameOriginPolicy(scheme: string): OriginPolicy {
  return ({ host, origin }) => {
    const addressed = `${scheme}://${host ?? ""}`;
    if (origin !== undefined && origin.toLowerCase() !== addressed.toLowerCase())
      return `Kiln answers only its own pages at ${addressed}, not a page of ${origin}. Open the address \`kiln serve --lan\` printed`;
    return null;
  };
}
