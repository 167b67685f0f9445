import { randomBytes, timingSafeEqual } from "node:crypto";

/**
 * The cookie that lets the browser UI load stored images. An `<img>` cannot
 * send a header, and a token in an image's address leaks through "copy image
 * address" and drag and drop, so the page trades its token for this cookie
 * (`POST /session`, token as a bearer header). Its value is a random secret of
 * this server run, not the token, and it opens images only: Path=/images, never
 * readable by script (HttpOnly), never sent along by another site's page
 * (SameSite=Strict), and never in cleartext when served over TLS (Secure).
 * Cookies ignore ports, so a page of another port on this computer counts as
 * the same site; the browser's Sec-Fetch-Site tells such a page apart.
 */
export class ImageSession {
  private readonly secret = randomBytes(32).toString("base64url");

  constructor(private readonly secure: boolean) {}

  /** The `Set-Cookie` value for the server listening on `port`. */
  cookie(port: number): string {
    return `${cookieName(port)}=${this.secret}; Path=/images; HttpOnly; SameSite=Strict${this.secure ? "; Secure" : ""}`;
  }

  /** Whether a request holds this run's secret (compared in constant time) and comes from no other origin's page. */
  admits(headers: { cookie?: string; "sec-fetch-site"?: string }, port: number): boolean {
    const site = headers["sec-fetch-site"];
    if (site === "same-site" || site === "cross-site") return false;
    const prefix = `${cookieName(port)}=`;
    const expected = Buffer.from(this.secret);
    return (headers.cookie ?? "").split(";").some((pair) => {
      const text = pair.trim();
      if (!text.startsWith(prefix)) return false;
      const given = Buffer.from(text.slice(prefix.length));
      return given.length === expected.length && timingSafeEqual(given, expected);
    });
  }
}

/** Cookies are kept per host, not per port: two `kiln serve` on one computer must not overwrite each other's. */
function cookieName(port: number): string {
  return `kiln-images-${port}`;
}
