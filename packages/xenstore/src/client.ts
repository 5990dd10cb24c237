/**
 * XenstoreClient: a native kernel's xenstore driver (as Linux's xenbus_xs.c / MiniOS's
 * xenbus.c) over the guest side of the xenstore page. Requests carry fresh req_ids and may be
 * outstanding together; replies are matched by req_id, XS_WATCH_EVENTs go to the watch's
 * handler. Messages larger than the free ring space are written in pieces as the server
 * consumes them.
 */
import {
  XENSTORE_DOMAIN_INTERFACE, XENSTORE_PAYLOAD_MAX, XS, XsMessageReader, encodeXsMessage, parseXsStrings, xenstoreRings,
  xsStrings, xsText, type ByteRing, type XsMessage,
} from "@paravirt/device-channel";
import { XEN_ERRNO, XenError, type DomId, type XenStore, type XenStoreOps, type XsPermission } from "@paravirt/vm-interfaces";
import type { XenstorePort } from "./port.ts";

export interface XenstoreClientOptions {
  /** Called with an exception a watch handler threw (the client carries on). */
  onHandlerError?: (error: unknown) => void;
  /** How many times `transaction` re-runs its body on EAGAIN before giving up (default 64). */
  maxTransactionRetries?: number;
}

interface Pending {
  resolve: (payload: Uint8Array) => void;
  reject: (e: unknown) => void;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function errnoOf(name: string): number {
  return (XEN_ERRNO as Record<string, number>)[name] ?? XEN_ERRNO.EIO;
}

function parsePermission(s: string): XsPermission {
  const access = s[0];
  const domid = Number(s.slice(1));
  if ((access !== "n" && access !== "r" && access !== "w" && access !== "b") || !/^\d+$/.test(s.slice(1))) {
    throw new XenError(XEN_ERRNO.EIO, `bad permission ${JSON.stringify(s)} from xenstored`);
  }
  return { access, domid };
}

/** XenStoreOps bound to one transaction id (0: none). */
class BoundOps implements XenStoreOps {
  private readonly client: XenstoreClient;
  private readonly txId: number;

  constructor(client: XenstoreClient, txId: number) {
    this.client = client;
    this.txId = txId;
  }

  async read(path: string): Promise<string> {
    return decoder.decode(await this.client.request(XS.READ, xsStrings(path), this.txId));
  }
  async write(path: string, value: string): Promise<void> {
    const p = encoder.encode(`${path}\0`);
    const v = encoder.encode(value);
    const payload = new Uint8Array(p.length + v.length);
    payload.set(p);
    payload.set(v, p.length);
    await this.client.request(XS.WRITE, payload, this.txId);
  }
  async mkdir(path: string): Promise<void> {
    await this.client.request(XS.MKDIR, xsStrings(path), this.txId);
  }
  async rm(path: string): Promise<void> {
    await this.client.request(XS.RM, xsStrings(path), this.txId);
  }
  async directory(path: string): Promise<string[]> {
    return parseXsStrings(await this.client.request(XS.DIRECTORY, xsStrings(path), this.txId));
  }
  async getPermissions(path: string): Promise<XsPermission[]> {
    return parseXsStrings(await this.client.request(XS.GET_PERMS, xsStrings(path), this.txId)).map(parsePermission);
  }
  async setPermissions(path: string, perms: readonly XsPermission[]): Promise<void> {
    await this.client.request(XS.SET_PERMS, xsStrings(path, ...perms.map((p) => `${p.access}${p.domid}`)), this.txId);
  }
}

/**
 * The guest end of a xenstore connection, implementing vm-interfaces `XenStore`. Paths are
 * absolute or relative to the domain's home (`/local/domain/<domid>`, resolved by the server).
 * Errors from xenstored reject with `XenError` (errno from the XS_ERROR name); a broken
 * connection (the page's `error` field set, or garbage on the response ring) rejects everything
 * outstanding with EIO.
 */
export class XenstoreClient implements XenStore {
  private readonly port: XenstorePort;
  private readonly rings: { req: ByteRing; rsp: ByteRing };
  private readonly dv: DataView;
  private readonly reader = new XsMessageReader();
  private readonly out: Uint8Array[] = [];
  private outOffset = 0;
  private readonly pending = new Map<number, Pending>();
  private readonly watches = new Map<string, (path: string) => void>();
  private readonly ops: BoundOps;
  private readonly options: XenstoreClientOptions;
  private readonly unsubscribe: () => void;
  private nextReqId = 1;
  private nextToken = 1;
  private pumping = false;
  private again = false;
  private broken: XenError | undefined;

  constructor(port: XenstorePort, options: XenstoreClientOptions = {}) {
    if (port.page.length < XENSTORE_DOMAIN_INTERFACE.SIZE) throw new RangeError("xenstore page too small");
    this.port = port;
    this.options = options;
    this.rings = xenstoreRings(port.page);
    this.dv = new DataView(port.page.buffer, port.page.byteOffset, port.page.byteLength);
    this.ops = new BoundOps(this, 0);
    this.unsubscribe = port.onEvent(() => this.pump());
    this.pump();
  }

  /** Requests awaiting a reply. */
  get outstanding(): number {
    return this.pending.size;
  }

  /** Why the connection broke, if it did. */
  get error(): XenError | undefined {
    return this.broken;
  }

  read(path: string): Promise<string> {
    return this.ops.read(path);
  }
  write(path: string, value: string): Promise<void> {
    return this.ops.write(path, value);
  }
  mkdir(path: string): Promise<void> {
    return this.ops.mkdir(path);
  }
  rm(path: string): Promise<void> {
    return this.ops.rm(path);
  }
  directory(path: string): Promise<string[]> {
    return this.ops.directory(path);
  }
  getPermissions(path: string): Promise<XsPermission[]> {
    return this.ops.getPermissions(path);
  }
  setPermissions(path: string, perms: readonly XsPermission[]): Promise<void> {
    return this.ops.setPermissions(path, perms);
  }

  async watch(path: string, handler: (changedPath: string) => void): Promise<() => Promise<void>> {
    const token = `xs${this.nextToken++}`;
    this.watches.set(token, handler);
    try {
      await this.request(XS.WATCH, xsStrings(path, token));
    } catch (e) {
      this.watches.delete(token);
      throw e;
    }
    let removed = false;
    return async () => {
      if (removed) return;
      removed = true;
      this.watches.delete(token);
      await this.request(XS.UNWATCH, xsStrings(path, token));
    };
  }

  async transaction<T>(body: (tx: XenStoreOps) => Promise<T>): Promise<T> {
    const max = this.options.maxTransactionRetries ?? 64;
    for (let attempt = 0; ; attempt++) {
      const txId = Number(xsText(await this.request(XS.TRANSACTION_START, xsStrings(""))));
      let result: T;
      try {
        result = await body(new BoundOps(this, txId));
      } catch (e) {
        await this.request(XS.TRANSACTION_END, xsStrings("F"), txId).catch(() => {});
        throw e;
      }
      try {
        await this.request(XS.TRANSACTION_END, xsStrings("T"), txId);
        return result;
      } catch (e) {
        if (e instanceof XenError && e.errno === XEN_ERRNO.EAGAIN && attempt < max) continue;
        throw e;
      }
    }
  }

  /** XS_GET_DOMAIN_PATH: the home of `domid`. */
  async getDomainPath(domid: DomId): Promise<string> {
    return xsText(await this.request(XS.GET_DOMAIN_PATH, xsStrings(String(domid))));
  }

  /** XS_INTRODUCE (privileged): asks xenstored to serve `domid`'s page at `gfn` via event channel `evtchn`. */
  async introduceDomain(domid: DomId, gfn: number, evtchn: number): Promise<void> {
    await this.request(XS.INTRODUCE, xsStrings(String(domid), String(gfn), String(evtchn)));
  }

  /** XS_RELEASE (privileged). */
  async releaseDomain(domid: DomId): Promise<void> {
    await this.request(XS.RELEASE, xsStrings(String(domid)));
  }

  /** XS_IS_DOMAIN_INTRODUCED (privileged). */
  async isDomainIntroduced(domid: DomId): Promise<boolean> {
    return xsText(await this.request(XS.IS_DOMAIN_INTRODUCED, xsStrings(String(domid)))) === "T";
  }

  /** XS_RESET_WATCHES: drops every watch of this connection. */
  async resetWatches(): Promise<void> {
    this.watches.clear();
    await this.request(XS.RESET_WATCHES, xsStrings(""));
  }

  /** Stops listening to the port; outstanding requests reject with EIO. */
  close(): void {
    this.unsubscribe();
    this.breakAll(new XenError(XEN_ERRNO.EIO, "xenstore client closed"));
  }

  /**
   * Sends one raw request and resolves to the reply payload (rejects with the XS_ERROR errno).
   * **Errors:** RangeError (thrown) for a payload over XENSTORE_PAYLOAD_MAX.
   */
  request(type: number, payload: Uint8Array, txId = 0): Promise<Uint8Array> {
    if (payload.length > XENSTORE_PAYLOAD_MAX) throw new RangeError(`xenstore payload ${payload.length} > ${XENSTORE_PAYLOAD_MAX}`);
    if (this.broken) return Promise.reject(this.broken);
    let reqId = this.nextReqId;
    while (this.pending.has(reqId)) reqId = (reqId + 1) >>> 0;
    this.nextReqId = (reqId + 1) >>> 0;
    const promise = new Promise<Uint8Array>((resolve, reject) => this.pending.set(reqId, { resolve, reject }));
    this.out.push(encodeXsMessage({ type, reqId, txId, payload }));
    this.pump();
    return promise;
  }

  private pump(): void {
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.again = false;
        this.pumpOnce();
      } while (this.again);
    } finally {
      this.pumping = false;
    }
  }

  private pumpOnce(): void {
    if (this.broken) return;
    if (this.dv.getUint32(XENSTORE_DOMAIN_INTERFACE.ERROR, true) !== 0) {
      this.breakAll(new XenError(XEN_ERRNO.EIO, `xenstore connection error ${this.dv.getUint32(XENSTORE_DOMAIN_INTERFACE.ERROR, true)}`));
      return;
    }
    const { req, rsp } = this.rings;
    if (req.corrupt || rsp.corrupt) {
      this.breakAll(new XenError(XEN_ERRNO.EIO, "xenstore ring indexes corrupt"));
      return;
    }
    let moved = false;
    while (this.out.length > 0) {
      const head = this.out[0]!;
      const n = req.write(head.subarray(this.outOffset));
      if (n <= 0) break;
      moved = true;
      this.outOffset += n;
      if (this.outOffset === head.length) {
        this.out.shift();
        this.outOffset = 0;
      }
    }
    const got: XsMessage[] = [];
    const buf = new Uint8Array(1024);
    for (let n = rsp.read(buf); n > 0; n = rsp.read(buf)) {
      moved = true;
      if (this.reader.push(buf.subarray(0, n), (m) => got.push(m)) === "error") {
        this.breakAll(new XenError(XEN_ERRNO.EIO, "oversized xenstore reply"));
        break;
      }
    }
    if (moved) this.port.notify();
    for (const m of got) this.dispatch(m);
  }

  private dispatch(m: XsMessage): void {
    if (m.type === XS.WATCH_EVENT) {
      const [path, token] = parseXsStrings(m.payload);
      const handler = token === undefined ? undefined : this.watches.get(token);
      if (handler === undefined || path === undefined) return;
      try {
        handler(path);
      } catch (e) {
        this.options.onHandlerError?.(e);
      }
      return;
    }
    const p = this.pending.get(m.reqId);
    if (p === undefined) return;
    this.pending.delete(m.reqId);
    if (m.type === XS.ERROR) p.reject(new XenError(errnoOf(xsText(m.payload))));
    else p.resolve(m.payload);
  }

  private breakAll(e: XenError): void {
    this.broken ??= e;
    this.out.length = 0;
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.reject(e);
  }
}
