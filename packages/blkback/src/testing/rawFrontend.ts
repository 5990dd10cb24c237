import {
  BLKIF_X86_32, BLKIF_X86_64, FrontRing, SRING, XENBUS_STATE,
  decodeBlkifResponse, encodeBlkifRequest,
  type BlkifLayout, type BlkifRequest, type BlkifResponse,
} from "@paravirt/device-channel";
import type { GrantRef, Page, Port, XenServices } from "@paravirt/vm-interfaces";

export interface RawBlkifFrontendOptions {
  readonly xen: XenServices;
  readonly devid: number;
  readonly backendDomid?: number;
  readonly protocol?: "x86_64-abi" | "x86_32-abi";
  /** Ring pages as 2^order; order 0 writes `ring-ref`, else `ring-page-order` + `ring-refN`. */
  readonly ringPageOrder?: number;
  /** Frontend directory; default `device/vbd/<devid>` of the domain. */
  readonly frontendPath?: string;
  /** Writes `feature-persistent` = 1 (default: the key is not written). */
  readonly persistent?: boolean;
}

/**
 * A bare blkif frontend for testing backends: it does the xenstore handshake and then lets the
 * test put any bytes on the ring, well-formed or not, move `req_prod` anywhere, and read
 * responses. Nothing here validates what the test asks for; that is the point.
 */
export class RawBlkifFrontend {
  readonly xen: XenServices;
  readonly layout: BlkifLayout;
  readonly frontendPath: string;
  readonly backendDomid: number;
  ring!: FrontRing;
  port: Port = 0;
  ringPages: Page[] = [];
  ringRefs: GrantRef[] = [];
  private readonly order: number;
  private readonly persistent: boolean;

  constructor(o: RawBlkifFrontendOptions) {
    this.xen = o.xen;
    this.layout = o.protocol === "x86_32-abi" ? BLKIF_X86_32 : BLKIF_X86_64;
    this.frontendPath = o.frontendPath ?? `/local/domain/${o.xen.domid}/device/vbd/${o.devid}`;
    this.backendDomid = o.backendDomid ?? 0;
    this.order = o.ringPageOrder ?? 0;
    this.persistent = o.persistent ?? false;
  }

  /**
   * Allocates and grants a ring, binds a port, writes the keys and switches to Initialised.
   * `reqProd` publishes that `req_prod` on the fresh ring first (a ring in an impossible state).
   */
  async connect(opts: { reqProd?: number } = {}): Promise<void> {
    const n = 1 << this.order;
    this.ringPages = [];
    for (let i = 0; i < n; i++) this.ringPages.push(this.xen.pages.allocPage());
    const first = this.ringPages[0]!.bytes;
    const bytes = new Uint8Array(first.buffer, first.byteOffset, n * 4096);
    this.ring = FrontRing.init(bytes, this.layout.entrySize);
    if (opts.reqProd !== undefined) this.setReqProd(opts.reqProd);
    this.ringRefs = this.ringPages.map((p) => this.xen.gnttab.grantAccess(this.backendDomid, p.frame, false));
    this.port = this.xen.evtchn.allocUnbound(this.backendDomid);
    const xs = this.xen.xenstore;
    const f = this.frontendPath;
    if (this.order === 0) await xs.write(`${f}/ring-ref`, String(this.ringRefs[0]));
    else {
      await xs.write(`${f}/ring-page-order`, String(this.order));
      for (let i = 0; i < n; i++) await xs.write(`${f}/ring-ref${i}`, String(this.ringRefs[i]));
    }
    await xs.write(`${f}/event-channel`, String(this.port));
    await xs.write(`${f}/protocol`, this.layout.protocol);
    if (this.persistent) await xs.write(`${f}/feature-persistent`, "1");
    await xs.write(`${f}/state`, String(XENBUS_STATE.Initialised));
  }

  /** Closes the port, ends the ring grants (if unmapped) and frees the ring; Closed, then Initialising. */
  async disconnect(): Promise<boolean> {
    const xs = this.xen.xenstore;
    await xs.write(`${this.frontendPath}/state`, String(XENBUS_STATE.Closed));
    try {
      this.xen.evtchn.close(this.port);
    } catch {
      // closed already
    }
    let all = true;
    for (let i = 0; i < this.ringRefs.length; i++) {
      if (this.xen.gnttab.endAccess(this.ringRefs[i]!)) this.xen.pages.freePage(this.ringPages[i]!);
      else all = false;
    }
    this.ringRefs = [];
    this.ringPages = [];
    return all;
  }

  /** Grants a fresh page to the backend. */
  grantPage(readonly: boolean): { page: Page; ref: GrantRef } {
    const page = this.xen.pages.allocPage();
    return { page, ref: this.xen.gnttab.grantAccess(this.backendDomid, page.frame, readonly) };
  }

  /** Encodes `req` into the next slot (no push). */
  put(req: BlkifRequest): void {
    encodeBlkifRequest(this.ring.view, this.ring.nextRequest(), req, this.layout);
  }

  /** Copies raw bytes (up to the entry size) into the next slot (no push). */
  putRaw(bytes: Uint8Array): void {
    const off = this.ring.nextRequest();
    this.ring.bytes.set(bytes.subarray(0, this.layout.entrySize), off);
  }

  /** Publishes the requests put so far and sends an event. */
  push(): void {
    this.ring.pushRequests();
    this.kick();
  }

  /** Writes `req_prod` directly (hostile). */
  setReqProd(value: number): void {
    this.ring.view.setUint32(SRING.REQ_PROD, value >>> 0, true);
  }

  kick(): void {
    try {
      this.xen.evtchn.notify(this.port);
    } catch {
      // the backend is gone
    }
  }

  /** Takes every published response. */
  responses(): BlkifResponse[] {
    const out: BlkifResponse[] = [];
    let off: number | undefined;
    while ((off = this.ring.takeResponse()) !== undefined) out.push(decodeBlkifResponse(this.ring.view, off, this.layout));
    return out;
  }
}
