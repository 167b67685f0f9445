import * as opaque from "@serenity-kit/opaque";
import { PROTOCOL_VERSION } from "../../shared/constants";
import { describeFieldErrors, fieldErrors, KilnError } from "../../shared/errors";
import { formatFingerprint } from "../../shared/fingerprint";
import {
  PAIRING_KEY_STRETCHING,
  PairingCode,
  type PairResponse,
  PairResponse as PairResponseSchema,
  PairStartResponse,
  pairingIdentifiers,
} from "../../shared/pairing";
import { answerAs, type NodePin, pinnedAgent, request } from "./node-client";

/** A code as typed: six ASCII digits, or an error that names the field and says what to type. */
export function parsePairingCode(code: string): string {
  const parsed = PairingCode.safeParse(code);
  if (parsed.success) return parsed.data;
  const fields = fieldErrors(parsed.error).map((f) => ({ ...f, path: "code" }));
  throw new KilnError("E_BAD_REQUEST", `invalid pairing code: ${describeFieldErrors(fields)}`, undefined, fields);
}

/**
 * The app's side of pairing (see shared/pairing.ts): a key exchange on the
 * code over TLS pinned to `pin`, the certificate this app sees at the node's
 * address. The exchange completes on this side only when the node knows the
 * code and its certificate is `pin`; otherwise this side stops before sending
 * anything that could pair, so a machine in between gets no token and the app
 * pins nothing.
 */
export async function pairWithCode(baseUrl: string, pin: NodePin, code: string, client: string): Promise<PairResponse> {
  const digits = parsePairingCode(code);
  await opaque.ready;
  const dispatcher = pinnedAgent(pin);
  try {
    const { clientLoginState, startLoginRequest } = opaque.client.startLogin({ password: digits });
    const startAnswer = await request(`${baseUrl}/v1/pair/start`, dispatcher, {
      method: "POST",
      body: { client, request: startLoginRequest },
    });
    if (startAnswer.status === 404) {
      await startAnswer.body?.cancel();
      throw new KilnError(
        "E_BAD_REQUEST",
        `the node at ${baseUrl} runs an older kiln-node that pairs without a key exchange (protocol < ${PROTOCOL_VERSION}); update it, then pair`,
      );
    }
    const started = await answerAs(PairStartResponse, startAnswer, "pairing");
    const finished = opaque.client.finishLogin({
      clientLoginState,
      loginResponse: started.response,
      password: digits,
      identifiers: pairingIdentifiers(pin.fingerprint),
      keyStretching: PAIRING_KEY_STRETCHING,
    });
    if (!finished) {
      throw new KilnError(
        "E_UNAUTHORIZED",
        `pairing refused: the code is wrong, or something between this app and the node answered in its place (this app sees certificate ${formatFingerprint(pin.fingerprint)}; the node shows its own at start and with \`kiln-node pair\`). Nothing was sent and nothing is pinned.`,
      );
    }
    return answerAs(
      PairResponseSchema,
      await request(`${baseUrl}/v1/pair/finish`, dispatcher, {
        method: "POST",
        body: { session: started.session, finish: finished.finishLoginRequest, fingerprint: pin.fingerprint },
      }),
      "pairing",
    );
  } finally {
    await dispatcher.close();
  }
}
