/**
 * Certificate fingerprints as people compare them: the SHA-256 in groups of
 * four hex digits. Node's `X509Certificate.fingerprint256` gives colon-separated
 * uppercase pairs; the protocol carries 64 lowercase hex digits.
 */
export function normalizeFingerprint(text: string): string {
  return text.replace(/[^0-9a-fA-F]/g, "").toLowerCase();
}

/** `ab12 cd34 …`: 16 groups, short enough to read aloud and compare with the node's console. */
export function formatFingerprint(hex: string): string {
  return (normalizeFingerprint(hex).match(/.{1,4}/g) ?? []).join(" ");
}
