/**
 * XenstoreServer: the xenstore database and the xs_wire protocol engine, as dom0's xenstored
 * runs it [docs/misc/xenstore.txt, docs/misc/xenstore-ring.txt, io/xs_wire.h]. Each connection
 * is a xenstore page + event channel (`XenstorePort`): a domain introduced by the toolstack, or
 * an in-process connection for dom0's own use. Requests of one connection are handled in order;
 * a connection that breaks the ring protocol gets the page's `error` field set and is no longer
 * served, without disturbing anyone else.
 */
import {
  XENSTORE_CONNECTION, XENSTORE_DOMAIN_INTERFACE, XENSTORE_ERROR, XENSTORE_PAYLOAD_MAX, XENSTORE_REL_PATH_MAX, XENSTORE_SERVER_FEATURE, XS,
  XsMessageReader, encodeXsMessage, xenstoreRings, type ByteRing, type XsMessage,
} from "@paravirt/device-channel";
import { DOMID, XEN_ERRNO, XenError, type DomId, type Port, type XsPermission } from "@paravirt/vm-interfaces";
import { SPECIAL_WATCH, domainPath, isAtOrBelow, resolvePath } from "./paths.ts";
import { createLocalChannel, type XenstorePort } from "./port.ts";
import {
  PERM_READ, StoreView, formatPerm, generationAt, initialRoot, parsePerm, permsFor,
  type Caller, type GenCounter, type StoreChange, type StoreLimits, type StoreMutation, type StoreNode,
} from "./store.ts";

/** Limits, as xenstored's quotas (its defaults unless noted); like xenstored's, they bind unprivileged domains only. */
export interface XenstoreQuota extends StoreLimits {
  /** Watches per connection (quota-nb-watch-per-domain, 128). */
  readonly maxWatchesPerConnection: number;
  /** Open transactions per connection (quota-max-transaction, 10). */
  readonly maxTransactionsPerConnection: number;
  /** Nodes one transaction may access (quota transaction-nodes, 1024). */
  readonly maxNodesPerTransaction: number;
  /** Watch events queued for a connection that is not reading its ring; later ones are dropped. */
  readonly maxPendingWatchEvents: number;
  /** Requests are not read while this many reply bytes wait for ring space (flow control). */
  readonly maxPendingReplyBytes: number;
}

export const DEFAULT_XENSTORE_QUOTA: XenstoreQuota = {
  maxNodesPerDomain: 1000,
  maxValueSize: 2048,
  maxPermsPerNode: 5,
  maxWatchesPerConnection: 128,
  maxTransactionsPerConnection: 10,
  maxNodesPerTransaction: 1024,
  maxPendingWatchEvents: 1024,
  maxPendingReplyBytes: 8192,
};

export interface XenstoreServerOptions {
  /** Whether a domain is privileged (sees and changes everything). Default: dom0 only. */
  isPrivileged?: (domid: DomId) => boolean;
  quota?: Partial<XenstoreQuota>;
  /**
   * XS_INTRODUCE from the wire (`domid`, the guest frame of its xenstore page, its event
   * channel): maps the page and binds the channel, or returns undefined on failure (EINVAL).
   * Without it XS_INTRODUCE answers ENOSYS; the host API `introduce` always works.
   */
  mapDomain?: (domid: DomId, gfn: number, evtchn: Port) => XenstorePort | undefined;
}

/** A registered watch. */
interface Watch {
  /** As given by the client (relative or absolute or special). */
  readonly path: string;
  /** Resolved absolute path, or the special name. */
  readonly abs: string;
  readonly token: Uint8Array;
  readonly relative: boolean;
}

interface Transaction {
  readonly view: StoreView;
  /** The main tree when the transaction started. */
  readonly base: StoreNode;
  readonly ops: ((view: StoreView) => StoreMutation)[];
}

interface Connection {
  readonly domid: DomId;
  readonly home: string;
  readonly caller: { domid: DomId; privileged: boolean; target: DomId | undefined };
  readonly port: XenstorePort;
  readonly rings: { req: ByteRing; rsp: ByteRing };
  readonly dv: DataView;
  readonly introduced: boolean;
  readonly reader: XsMessageReader;
  readonly out: Uint8Array[];
  outOffset: number;
  outBytes: number;
  pendingEvents: number;
  readonly watches: Map<string, Watch>;
  readonly transactions: Map<number, Transaction>;
  nextTxId: number;
  failed: boolean;
  closed: boolean;
  /** Inside `service` (a port delivering events synchronously must not re-enter the parser). */
  busy: boolean;
  again: boolean;
  unsubscribe: () => void;
}

const ERRNO_NAME = new Map<number, string>(Object.entries(XEN_ERRNO).map(([k, v]) => [v, k]));
const latin1 = new TextDecoder("latin1");
const OK = ascii("OK\0");

function ascii(s: string): Uint8Array {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i) & 0xff;
  return b;
}

function strings(...parts: string[]): Uint8Array {
  return ascii(parts.map((p) => `${p}\0`).join(""));
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function fail(errno: number): XenError {
  return new XenError(errno);
}

/** The NUL-separated fields of a payload; `terminated` when it ends in NUL. */
function fields(payload: Uint8Array): { parts: Uint8Array[]; terminated: boolean } {
  const parts: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i < payload.length; i++) {
    if (payload[i] === 0) {
      parts.push(payload.subarray(start, i));
      start = i + 1;
    }
  }
  const terminated = start === payload.length;
  if (!terminated) parts.push(payload.subarray(start));
  return { parts, terminated };
}

/** Exactly `n` NUL-terminated strings (as xenstored's argument checks), else EINVAL. */
function args(payload: Uint8Array, n: number): string[] {
  const { parts, terminated } = fields(payload);
  if (!terminated || parts.length !== n) throw fail(XEN_ERRNO.EINVAL);
  return parts.map((p) => latin1.decode(p));
}

function parseDomid(s: string): DomId {
  if (!/^\d{1,5}$/.test(s)) throw fail(XEN_ERRNO.EINVAL);
  const d = Number(s);
  if (d > 0xffff) throw fail(XEN_ERRNO.EINVAL);
  return d;
}

/**
 * The xenstore daemon. Host API: `introduce`/`release` domains, `connectLocal` for dom0's
 * in-process clients. Everything a guest sends arrives through its port's events.
 */
export class XenstoreServer {
  private readonly quota: XenstoreQuota;
  private readonly isPrivileged: (domid: DomId) => boolean;
  private readonly mapDomain: XenstoreServerOptions["mapDomain"];
  private readonly gen: GenCounter = { value: 0 };
  private readonly main: StoreView;
  private readonly domains = new Map<DomId, Connection>();
  private readonly locals = new Set<Connection>();
  private readonly dirty = new Set<Connection>();
  /** Permissions of the special watch paths: their events reach privileged domains and those these grant read. */
  private readonly specialPerms = new Map<string, readonly XsPermission[]>([
    [SPECIAL_WATCH.INTRODUCE_DOMAIN, [{ domid: 0, access: "n" }]],
    [SPECIAL_WATCH.RELEASE_DOMAIN, [{ domid: 0, access: "n" }]],
  ]);
  private droppedEvents = 0;

  constructor(options: XenstoreServerOptions = {}) {
    this.quota = { ...DEFAULT_XENSTORE_QUOTA, ...options.quota };
    this.isPrivileged = options.isPrivileged ?? ((d) => d === 0);
    this.mapDomain = options.mapDomain;
    const { root, owned } = initialRoot(this.gen);
    this.main = new StoreView(root, owned, this.gen, this.quota);
  }

  /**
   * Introduces a domain (as XS_INTRODUCE): serves its xenstore page through `port`, creates
   * its home `/local/domain/<domid>` owned by it if missing, fires `@introduceDomain`.
   * **Errors:** throws when `domid` is already introduced or reserved, or the page is smaller than the interface.
   */
  introduce(domid: DomId, port: XenstorePort): void {
    if (this.domains.has(domid)) throw new Error(`xenstore: domain ${domid} already introduced`);
    const conn = this.open(domid, port, true);
    this.domains.set(domid, conn);
    const home = domainPath(domid);
    if (this.main.lookup(home) === undefined) {
      const sys: Caller = { domid: 0, privileged: true, target: undefined };
      this.commitMain(this.main.mkdir(sys, home, false));
      this.commitMain(this.main.setPerms(sys, home, [{ domid, access: "n" }], false));
    }
    this.runFires();
    this.fireSpecial(SPECIAL_WATCH.INTRODUCE_DOMAIN);
    this.flushDirty();
    this.service(conn);
  }

  /** Stops serving a domain (as XS_RELEASE): drops its watches and transactions, fires `@releaseDomain`. */
  release(domid: DomId): boolean {
    const conn = this.domains.get(domid);
    if (conn === undefined) return false;
    this.domains.delete(domid);
    this.close(conn);
    this.fireSpecial(SPECIAL_WATCH.RELEASE_DOMAIN);
    this.flushDirty();
    return true;
  }

  /** Whether `domid` has an introduced connection (XS_IS_DOMAIN_INTRODUCED). */
  isIntroduced(domid: DomId): boolean {
    return this.domains.has(domid);
  }

  /**
   * An in-process connection for `domid` (default dom0, as xenstored's local socket): returns
   * the guest end of a fresh local channel to hand to a `XenstoreClient`.
   */
  connectLocal(domid: DomId = 0, schedule?: (task: () => void) => void): XenstorePort {
    const { guest, server } = createLocalChannel(schedule ? { schedule } : {});
    const conn = this.open(domid, server, false);
    this.locals.add(conn);
    return guest;
  }

  /** Watch events dropped because a connection had `maxPendingWatchEvents` queued. */
  get droppedWatchEvents(): number {
    return this.droppedEvents;
  }

  private open(domid: DomId, port: XenstorePort, introduced: boolean): Connection {
    if (!Number.isInteger(domid) || domid < 0 || domid >= DOMID.FIRST_RESERVED) throw new RangeError(`xenstore: bad domid ${domid}`);
    if (port.page.length < XENSTORE_DOMAIN_INTERFACE.SIZE) throw new RangeError("xenstore page too small");
    const dv = new DataView(port.page.buffer, port.page.byteOffset, port.page.byteLength);
    const conn: Connection = {
      domid,
      home: domainPath(domid),
      caller: { domid, privileged: this.isPrivileged(domid), target: undefined },
      port,
      rings: xenstoreRings(port.page),
      dv,
      introduced,
      reader: new XsMessageReader(),
      out: [],
      outOffset: 0,
      outBytes: 0,
      pendingEvents: 0,
      watches: new Map(),
      transactions: new Map(),
      nextTxId: 1,
      failed: false,
      closed: false,
      busy: false,
      again: false,
      unsubscribe: () => {},
    };
    dv.setUint32(XENSTORE_DOMAIN_INTERFACE.SERVER_FEATURES, XENSTORE_SERVER_FEATURE.RECONNECTION | XENSTORE_SERVER_FEATURE.ERROR, true);
    conn.unsubscribe = port.onEvent(() => this.service(conn));
    return conn;
  }

  private close(conn: Connection): void {
    conn.closed = true;
    conn.unsubscribe();
    this.dropState(conn);
    this.dirty.delete(conn);
  }

  private dropState(conn: Connection): void {
    conn.watches.clear();
    conn.transactions.clear();
    conn.reader.reset();
    conn.out.length = 0;
    conn.outOffset = 0;
    conn.outBytes = 0;
    conn.pendingEvents = 0;
  }

  private *connections(): Iterable<Connection> {
    yield* this.domains.values();
    yield* this.locals;
  }

  // ---- ring service -------------------------------------------------------------------------

  /** Handles an event from the connection: never throws, whatever the page holds. */
  private service(conn: Connection): void {
    if (conn.closed) return;
    if (conn.busy) {
      conn.again = true;
      return;
    }
    conn.busy = true;
    try {
      do {
        conn.again = false;
        try {
          this.serviceInner(conn);
        } catch {
          // Nothing a guest writes should get here; if it does, that guest alone loses its connection.
          this.breakConnection(conn, XENSTORE_ERROR.PROTO);
        }
      } while (conn.again && !conn.closed);
    } finally {
      conn.busy = false;
    }
    this.flushDirty();
  }

  private serviceInner(conn: Connection): void {
    const { dv } = conn;
    if (dv.getUint32(XENSTORE_DOMAIN_INTERFACE.CONNECTION, true) === XENSTORE_CONNECTION.RECONNECT) this.reconnect(conn);
    if (conn.failed) return;
    const { req, rsp } = conn.rings;
    if (req.corrupt || rsp.corrupt) {
      this.breakConnection(conn, XENSTORE_ERROR.RINGIDX);
      return;
    }
    let moved = this.flush(conn);
    const buf = new Uint8Array(256);
    while (!conn.failed && !conn.closed && conn.outBytes <= this.quota.maxPendingReplyBytes) {
      const n = req.read(buf);
      if (n <= 0) break;
      moved = true;
      const r = conn.reader.push(buf.subarray(0, n), (m) => this.handle(conn, m));
      if (r === "error") this.breakConnection(conn, XENSTORE_ERROR.PROTO);
    }
    if (conn.failed || conn.closed) return;
    if (req.corrupt) {
      this.breakConnection(conn, XENSTORE_ERROR.RINGIDX);
      return;
    }
    if (this.flush(conn)) moved = true;
    if (moved) this.notify(conn);
  }

  /** XENSTORE_CONNECTION_RECONNECT [xenstore-ring.txt]: forget everything, reset the rings. */
  private reconnect(conn: Connection): void {
    this.dropState(conn);
    const { dv } = conn;
    for (const off of [
      XENSTORE_DOMAIN_INTERFACE.REQ_CONS, XENSTORE_DOMAIN_INTERFACE.REQ_PROD,
      XENSTORE_DOMAIN_INTERFACE.RSP_CONS, XENSTORE_DOMAIN_INTERFACE.RSP_PROD,
      XENSTORE_DOMAIN_INTERFACE.ERROR,
    ]) dv.setUint32(off, 0, true);
    conn.failed = false;
    dv.setUint32(XENSTORE_DOMAIN_INTERFACE.CONNECTION, XENSTORE_CONNECTION.CONNECTED, true);
    this.notify(conn);
  }

  /** Marks the page's error field and stops serving the connection until it reconnects. */
  private breakConnection(conn: Connection, code: number): void {
    if (conn.failed) return;
    // Replies to the requests before the violation still go out, as far as the ring has room.
    if (code !== XENSTORE_ERROR.RINGIDX) this.flush(conn);
    conn.failed = true;
    conn.dv.setUint32(XENSTORE_DOMAIN_INTERFACE.ERROR, code, true);
    this.dropState(conn);
    this.dirty.delete(conn);
    this.notify(conn);
  }

  private notify(conn: Connection): void {
    try {
      conn.port.notify();
    } catch {
      // The event channel is not functional (closed by a dying domain): XENSTORE_ERROR_COMM.
      if (conn.failed) return;
      conn.failed = true;
      conn.dv.setUint32(XENSTORE_DOMAIN_INTERFACE.ERROR, XENSTORE_ERROR.COMM, true);
      this.dropState(conn);
      this.dirty.delete(conn);
    }
  }

  /** Writes queued output into the response ring; whether anything was written. */
  private flush(conn: Connection): boolean {
    let wrote = false;
    while (conn.out.length > 0) {
      const head = conn.out[0]!;
      const n = conn.rings.rsp.write(head.subarray(conn.outOffset));
      if (n <= 0) break;
      wrote = true;
      conn.outOffset += n;
      conn.outBytes -= n;
      if (conn.outOffset === head.length) {
        conn.out.shift();
        conn.outOffset = 0;
      }
    }
    if (conn.out.length === 0) conn.pendingEvents = 0;
    return wrote;
  }

  private enqueue(conn: Connection, bytes: Uint8Array): void {
    conn.out.push(bytes);
    conn.outBytes += bytes.length;
  }

  private flushDirty(): void {
    for (const c of this.dirty) {
      if (!c.closed && !c.failed && this.flush(c)) this.notify(c);
    }
    this.dirty.clear();
  }

  // ---- requests -----------------------------------------------------------------------------

  private handle(conn: Connection, m: XsMessage): void {
    if (conn.failed || conn.closed) return;
    if (m.type >= XS.TYPE_COUNT) {
      // Not a message type of any xs_wire version: the stream cannot be trusted any more.
      this.breakConnection(conn, XENSTORE_ERROR.PROTO);
      return;
    }
    let type: number;
    let payload: Uint8Array;
    try {
      const r = this.dispatch(conn, m);
      type = m.type;
      payload = r;
      if (payload.length > XENSTORE_PAYLOAD_MAX) throw fail(XEN_ERRNO.E2BIG);
    } catch (e) {
      const errno = e instanceof XenError ? e.errno : XEN_ERRNO.EIO;
      type = XS.ERROR;
      payload = strings(ERRNO_NAME.get(errno) ?? "EIO");
      this.pendingFires.length = 0;
    }
    this.enqueue(conn, encodeXsMessage({ type, reqId: m.reqId, txId: m.txId, payload }));
    // Watch events caused by the request follow its reply.
    this.runFires();
  }

  private runFires(): void {
    for (const f of this.pendingFires.splice(0)) f();
  }

  private pendingFires: (() => void)[] = [];

  private view(conn: Connection, txId: number): { view: StoreView; tx: Transaction | undefined } {
    if (txId === 0) return { view: this.main, tx: undefined };
    const tx = conn.transactions.get(txId >>> 0);
    if (tx === undefined) throw fail(XEN_ERRNO.ENOENT);
    return { view: tx.view, tx };
  }

  private path(conn: Connection, raw: string): string {
    const abs = resolvePath(raw, conn.home);
    if (abs === undefined) throw fail(XEN_ERRNO.EINVAL);
    return abs;
  }

  /** Runs a mutation on the main store now, or records it in the transaction. */
  private mutate(conn: Connection, txId: number, op: (view: StoreView, check: boolean) => StoreMutation): void {
    const { view, tx } = this.view(conn, txId);
    if (tx === undefined) {
      this.commitMain(op(view, true));
      return;
    }
    if (!conn.caller.privileged && view.accessed!.size >= this.quota.maxNodesPerTransaction) throw fail(XEN_ERRNO.ENOSPC);
    op(view, true);
    tx.ops.push((v) => op(v, false));
  }

  /** Records a main-store mutation's watch events. */
  private commitMain(m: StoreMutation): void {
    if (m.change !== undefined) {
      const change = m.change;
      this.pendingFires.push(() => this.fireChange(change));
    }
  }

  private dispatch(conn: Connection, m: XsMessage): Uint8Array {
    const caller = conn.caller;
    const p = m.payload;
    switch (m.type) {
      case XS.READ: {
        const { view } = this.view(conn, m.txId);
        return view.get(caller, this.path(conn, args(p, 1)[0]!), PERM_READ).value;
      }
      case XS.WRITE: {
        const nul = p.indexOf(0);
        if (nul < 0) throw fail(XEN_ERRNO.EINVAL);
        const abs = this.path(conn, latin1.decode(p.subarray(0, nul)));
        const value = p.slice(nul + 1);
        this.mutate(conn, m.txId, (v, check) => v.write(caller, abs, value, check));
        return OK;
      }
      case XS.MKDIR: {
        const abs = this.path(conn, args(p, 1)[0]!);
        this.mutate(conn, m.txId, (v, check) => v.mkdir(caller, abs, check));
        return OK;
      }
      case XS.RM: {
        const abs = this.path(conn, args(p, 1)[0]!);
        this.mutate(conn, m.txId, (v, check) => v.rm(caller, abs, check));
        return OK;
      }
      case XS.DIRECTORY: {
        const { view } = this.view(conn, m.txId);
        const node = view.get(caller, this.path(conn, args(p, 1)[0]!), PERM_READ);
        return strings(...node.children.keys());
      }
      case XS.DIRECTORY_PART: {
        const [raw, offText] = args(p, 2);
        if (!/^\d{1,10}$/.test(offText!)) throw fail(XEN_ERRNO.EINVAL);
        const { view } = this.view(conn, m.txId);
        const node = view.get(caller, this.path(conn, raw!), PERM_READ);
        return directoryPart(node.gen, [...node.children.keys()], Number(offText));
      }
      case XS.GET_PERMS: {
        const special = this.specialPerms.get(args(p, 1)[0]!);
        if (special !== undefined) {
          if (!(permsFor(caller, special) & PERM_READ)) throw fail(XEN_ERRNO.EACCES);
          return strings(...special.map(formatPerm));
        }
        const { view } = this.view(conn, m.txId);
        const node = view.get(caller, this.path(conn, args(p, 1)[0]!), PERM_READ);
        return strings(...node.perms.map(formatPerm));
      }
      case XS.SET_PERMS: {
        const { parts, terminated } = fields(p);
        if (!terminated || parts.length < 2) throw fail(XEN_ERRNO.EINVAL);
        const perms: XsPermission[] = [];
        for (const part of parts.slice(1)) {
          const perm = parsePerm(latin1.decode(part));
          if (perm === undefined) throw fail(XEN_ERRNO.EINVAL);
          perms.push(perm);
        }
        const name = latin1.decode(parts[0]!);
        const special = this.specialPerms.get(name);
        if (special !== undefined) {
          // Owned by dom0: only privileged domains may grant the special events to others.
          if (!caller.privileged) throw fail(XEN_ERRNO.EACCES);
          this.specialPerms.set(name, perms);
          return OK;
        }
        const abs = this.path(conn, name);
        this.mutate(conn, m.txId, (v, check) => v.setPerms(caller, abs, perms, check));
        return OK;
      }
      case XS.WATCH:
        return this.watch(conn, p);
      case XS.UNWATCH: {
        const { parts, terminated } = fields(p);
        if (!terminated || parts.length !== 2) throw fail(XEN_ERRNO.EINVAL);
        const key = watchKey(this.watchPath(conn, latin1.decode(parts[0]!)), parts[1]!);
        if (!conn.watches.delete(key)) throw fail(XEN_ERRNO.ENOENT);
        return OK;
      }
      case XS.RESET_WATCHES:
        conn.watches.clear();
        return OK;
      case XS.TRANSACTION_START: {
        if (m.txId !== 0) throw fail(XEN_ERRNO.EBUSY);
        if (!caller.privileged && conn.transactions.size >= this.quota.maxTransactionsPerConnection) throw fail(XEN_ERRNO.ENOSPC);
        let id = conn.nextTxId;
        while (id === 0 || conn.transactions.has(id)) id = (id + 1) >>> 0;
        conn.nextTxId = (id + 1) >>> 0;
        conn.transactions.set(id, { view: this.main.snapshot(), base: this.main.root, ops: [] });
        return strings(String(id));
      }
      case XS.TRANSACTION_END:
        return this.endTransaction(conn, m.txId, args(p, 1)[0]!);
      case XS.GET_DOMAIN_PATH:
        return strings(domainPath(parseDomid(args(p, 1)[0]!)));
      case XS.IS_DOMAIN_INTRODUCED: {
        if (!caller.privileged) throw fail(XEN_ERRNO.EACCES);
        return strings(this.domains.has(parseDomid(args(p, 1)[0]!)) ? "T" : "F");
      }
      case XS.INTRODUCE: {
        if (!caller.privileged) throw fail(XEN_ERRNO.EACCES);
        const [d, gfnText, evText] = args(p, 3);
        const domid = parseDomid(d!);
        if (domid >= DOMID.FIRST_RESERVED) throw fail(XEN_ERRNO.EINVAL);
        if (!/^\d{1,16}$/.test(gfnText!) || !/^\d{1,10}$/.test(evText!)) throw fail(XEN_ERRNO.EINVAL);
        if (this.domains.has(domid)) throw fail(XEN_ERRNO.EEXIST);
        if (this.mapDomain === undefined) throw fail(XEN_ERRNO.ENOSYS);
        let port: XenstorePort | undefined;
        try {
          port = this.mapDomain(domid, Number(gfnText), Number(evText));
        } catch {
          port = undefined;
        }
        if (port === undefined || port.page.length < XENSTORE_DOMAIN_INTERFACE.SIZE) throw fail(XEN_ERRNO.EINVAL);
        const introduced = port;
        this.pendingFires.push(() => {
          if (!this.domains.has(domid)) this.introduce(domid, introduced);
        });
        return OK;
      }
      case XS.RELEASE: {
        if (!caller.privileged) throw fail(XEN_ERRNO.EACCES);
        const domid = parseDomid(args(p, 1)[0]!);
        if (!this.domains.has(domid)) throw fail(XEN_ERRNO.ENOENT);
        this.pendingFires.push(() => this.release(domid));
        return OK;
      }
      case XS.RESUME: {
        if (!caller.privileged) throw fail(XEN_ERRNO.EACCES);
        const domid = parseDomid(args(p, 1)[0]!);
        if (!this.domains.has(domid)) throw fail(XEN_ERRNO.ENOENT);
        return OK;
      }
      case XS.SET_TARGET: {
        if (!caller.privileged) throw fail(XEN_ERRNO.EACCES);
        const [d, t] = args(p, 2);
        const target = this.domains.get(parseDomid(d!));
        const targetId = parseDomid(t!);
        if (target === undefined) throw fail(XEN_ERRNO.ENOENT);
        target.caller.target = targetId;
        return OK;
      }
      default:
        // XS_CONTROL, and messages only the server sends (XS_WATCH_EVENT, XS_ERROR) or that were removed.
        throw fail(XEN_ERRNO.ENOSYS);
    }
  }

  private endTransaction(conn: Connection, txId: number, how: string): Uint8Array {
    if (how !== "T" && how !== "F") throw fail(XEN_ERRNO.EINVAL);
    const id = txId >>> 0;
    const tx = conn.transactions.get(id);
    if (tx === undefined) throw fail(XEN_ERRNO.ENOENT);
    conn.transactions.delete(id);
    if (how === "F") return OK;
    // Conflict when any node the transaction looked at (or found absent) is not the one it
    // started from: created, removed, or its value, permissions or child list changed.
    for (const p of tx.view.accessed!) {
      if (generationAt(tx.base, p) !== generationAt(this.main.root, p)) throw fail(XEN_ERRNO.EAGAIN);
    }
    for (const op of tx.ops) {
      try {
        this.commitMain(op(this.main));
      } catch {
        // Cannot happen: nothing the transaction looked at changed, so each operation replays as it ran.
      }
    }
    return OK;
  }

  // ---- watches ------------------------------------------------------------------------------

  private watch(conn: Connection, p: Uint8Array): Uint8Array {
    const { parts, terminated } = fields(p);
    if (!terminated || parts.length !== 2) throw fail(XEN_ERRNO.EINVAL);
    const path = latin1.decode(parts[0]!);
    const token = parts[1]!.slice();
    const abs = this.watchPath(conn, path);
    const relative = !path.startsWith("/") && !path.startsWith("@");
    // Watches are identified by canonical path and token: `x` and `<home>/x` are the same watch.
    const key = watchKey(abs, token);
    if (conn.watches.has(key)) throw fail(XEN_ERRNO.EEXIST);
    if (!conn.caller.privileged && conn.watches.size >= this.quota.maxWatchesPerConnection) throw fail(XEN_ERRNO.ENOSPC);
    const w: Watch = { path, abs, token, relative };
    conn.watches.set(key, w);
    // A new watch fires once straight away [xenstore.txt "WATCH"].
    this.pendingFires.push(() => this.sendEvent(conn, w, path));
    return OK;
  }

  /** A watch path made canonical: a special `@name`, or an absolute path. */
  private watchPath(conn: Connection, path: string): string {
    if (path.startsWith("@")) {
      if (path.length > XENSTORE_REL_PATH_MAX || !/^@[A-Za-z0-9\-_@]*$/.test(path)) throw fail(XEN_ERRNO.EINVAL);
      return path;
    }
    return this.path(conn, path);
  }

  private sendEvent(conn: Connection, w: Watch, path: string): void {
    if (conn.closed || conn.failed || conn.watches.get(watchKey(w.abs, w.token)) !== w) return;
    if (conn.pendingEvents >= this.quota.maxPendingWatchEvents) {
      this.droppedEvents++;
      return;
    }
    const payload = concat([ascii(`${path}\0`), w.token, new Uint8Array(1)]);
    if (payload.length > XENSTORE_PAYLOAD_MAX) return;
    this.enqueue(conn, encodeXsMessage({ type: XS.WATCH_EVENT, reqId: 0, txId: 0, payload }));
    conn.pendingEvents++;
    this.dirty.add(conn);
  }

  private fireChange(change: StoreChange): void {
    for (const conn of this.connections()) {
      if (conn.failed) continue;
      for (const w of conn.watches.values()) {
        if (w.abs.startsWith("@")) continue;
        const visible = (perms: readonly (readonly XsPermission[])[]) => perms.some((ps) => (permsFor(conn.caller, ps) & PERM_READ) !== 0);
        if (isAtOrBelow(change.path, w.abs)) {
          if (visible(change.perms)) this.sendEvent(conn, w, eventPath(conn, w, change.path));
        } else if (change.removed !== undefined && isAtOrBelow(w.abs, change.path)) {
          // A watched node removed with its ancestor fires with its own path.
          const r = change.removed.find((x) => x.path === w.abs);
          if (r !== undefined && visible([r.perms])) this.sendEvent(conn, w, eventPath(conn, w, r.path));
        }
      }
    }
  }

  private fireSpecial(name: string): void {
    const perms = this.specialPerms.get(name)!;
    for (const conn of this.connections()) {
      if (!(permsFor(conn.caller, perms) & PERM_READ)) continue;
      for (const w of conn.watches.values()) if (w.abs === name) this.sendEvent(conn, w, name);
    }
  }
}

function watchKey(path: string, token: Uint8Array): string {
  return `${path}\0${latin1.decode(token)}`;
}

/** The path an event reports: relative to the home when the watch was set relative. */
function eventPath(conn: Connection, w: Watch, abs: string): string {
  if (w.relative && abs.startsWith(`${conn.home}/`)) return abs.slice(conn.home.length + 1);
  return abs;
}

/**
 * XS_DIRECTORY_PART reply [xenstore.txt]: `<generation>\0` then children from byte `offset`
 * of the NUL-joined list, as many whole names as fit; an extra NUL marks the end.
 */
function directoryPart(gen: number, names: readonly string[], offset: number): Uint8Array {
  const head = `${gen}\0`;
  const room = XENSTORE_PAYLOAD_MAX - head.length - 1;
  let pos = 0;
  let body = "";
  let complete = true;
  for (const n of names) {
    const len = n.length + 1;
    if (pos + len <= offset) {
      pos += len;
      continue;
    }
    if (pos < offset) throw fail(XEN_ERRNO.EINVAL);
    if (body.length + len > room) {
      complete = false;
      break;
    }
    body += `${n}\0`;
    pos += len;
  }
  if (offset > pos) throw fail(XEN_ERRNO.EINVAL);
  return ascii(head + body + (complete ? "\0" : ""));
}
