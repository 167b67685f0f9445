/**
 * The one Content-Security-Policy of the UI, for `kiln serve` (a response header)
 * and the desktop window (header and meta tag): no inline script, nothing from
 * other origins. React sets styles through the CSSOM, which CSP does not govern,
 * so styles need no 'unsafe-inline'. The desktop adds its image scheme.
 */
export function contentSecurityPolicy(extraImageSources: readonly string[] = []): string {
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    ["img-src 'self' data: blob:", ...extraImageSources].join(" "),
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    "form-action 'none'",
  ].join("; ");
}
