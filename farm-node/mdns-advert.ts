import { Bonjour, type Service } from "bonjour-service";
import type { Logger } from "pino";
import { MDNS_SERVICE, NODE_API_PREFIX, PROTOCOL_VERSION } from "../shared/constants";
import type { MdnsTxt } from "../shared/node-info";

export interface AdvertOptions {
  nodeId: string;
  fingerprint: string;
  name: string;
  port: number;
  gpus: number;
  log: Logger;
}

/**
 * The node's `_kiln._tcp` advert. The TXT record is only a hint: a coordinator
 * trusts what the paired node answers on GET /v1/node, never the advert.
 */
export class MdnsAdvert {
  private readonly bonjour: Bonjour;
  private readonly service: Service;

  constructor(opts: AdvertOptions) {
    const txt: MdnsTxt = {
      id: opts.nodeId,
      fp: opts.fingerprint,
      v: PROTOCOL_VERSION,
      name: opts.name.slice(0, 100),
      gpus: opts.gpus,
      api: NODE_API_PREFIX,
    };
    this.bonjour = new Bonjour({}, (error: Error) => opts.log.warn({ err: error }, "mDNS error"));
    // The instance name must be unique on the LAN; the id prefix makes it so.
    this.service = this.bonjour.publish({
      name: `${opts.name.slice(0, 40)} (${opts.nodeId.slice(0, 8)})`,
      type: MDNS_SERVICE.type,
      protocol: MDNS_SERVICE.protocol,
      port: opts.port,
      txt,
    });
    this.service.on("error", (error: Error) => opts.log.warn({ err: error }, "mDNS advert error"));
  }

  /** Sends the goodbye packets so browsers drop the node at once, then closes the socket. */
  withdraw(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, 1500);
      this.bonjour.unpublishAll(() => {
        this.bonjour.destroy(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    });
  }
}
