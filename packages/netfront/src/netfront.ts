/**
 * The netif front end [io/netif.h; behaviour as Linux's xen-netfront]: a net device for its
 * guest kernel. TX copies each frame into a page granted read-only to the back end (one slot
 * per page-sized piece, NETTXF_more_data between them); RX keeps the RX ring full of pages
 * granted writable, which the back end fills by grant copy. Handshake: tx-ring-ref,
 * rx-ring-ref, event-channel, request-rx-copy, feature-rx-notify, feature-sg, then
 * Initialised; Connected once the back end is.
 */
import {
  FrontRing, NETIF_RSP, NETIF_RX_ENTRY_SIZE, NETIF_TX_ENTRY_SIZE, NETRXF, NETTXF, XENBUS_STATE,
  decodeNetifRxResponse, decodeNetifTxResponse, encodeNetifRxRequest, encodeNetifTxRequest, parseXenbusState,
} from "@paravirt/device-channel";
import {
  PAGE_SIZE, parseMac, xsReadOptional, type DomId, type GrantRef, type NetDevice, type Page, type Port, type XenServices,
} from "@paravirt/vm-interfaces";

export interface NetfrontOptions {
  xen: XenServices;
  /** The vif's handle: the N of `device/vif/N`. */
  handle: number;
  /** Pages kept for transmit (frames queued beyond them wait). Default 64. */
  txBuffers?: number;
  log?: (line: string) => void;
}

export interface NetfrontStats {
  txPackets: number;
  txBytes: number;
  txErrors: number;
  txQueued: number;
  rxPackets: number;
  rxBytes: number;
  rxErrors: number;
}

interface TxBuffer {
  page: Page;
  ref: GrantRef;
}

export class Netfront implements NetDevice {
  readonly stats: NetfrontStats = { txPackets: 0, txBytes: 0, txErrors: 0, txQueued: 0, rxPackets: 0, rxBytes: 0, rxErrors: 0 };
  mac: Uint8Array = new Uint8Array(6);
  readonly mtu = 1500;
  private readonly xen: XenServices;
  private readonly handle: number;
  private readonly txCount: number;
  private readonly log: (line: string) => void;
  readonly devicePath: string;
  private backendPath = "";
  private backendId: DomId = 0;
  private tx: FrontRing | undefined;
  private rx: FrontRing | undefined;
  private txRingPage: Page | undefined;
  private rxRingPage: Page | undefined;
  private ringRefs: GrantRef[] = [];
  private port: Port | undefined;
  private unsubscribe: (() => void) | undefined;
  private unwatch: (() => Promise<void>) | undefined;
  /** TX buffers by id (slot id = index). */
  private txBufs: TxBuffer[] = [];
  private freeTx: number[] = [];
  /** Whether TX buffer `id` is on the ring (a response for an idle id is ignored). */
  private txBusy: boolean[] = [];
  /** RX buffers by id. */
  private rxBufs: TxBuffer[] = [];
  private readonly txWaiting: Uint8Array[] = [];
  private rxPartial: Uint8Array[] = [];
  private receiver: ((frame: Uint8Array) => void) | undefined;
  private linkHandler: ((up: boolean) => void) | undefined;
  private connected = false;
  private connectedWaiters: { resolve(): void; reject(e: Error): void }[] = [];

  constructor(options: NetfrontOptions) {
    this.xen = options.xen;
    this.handle = options.handle;
    this.txCount = options.txBuffers ?? 64;
    this.log = options.log ?? (() => {});
    this.devicePath = `device/vif/${options.handle}`;
  }

  get linkUp(): boolean {
    return this.connected;
  }

  onReceive(handler: (frame: Uint8Array) => void): void {
    this.receiver = handler;
  }

  onLinkChange(handler: (up: boolean) => void): void {
    this.linkHandler = handler;
  }

  /** Sets up the rings and event channel, publishes them, and resolves once the back end is Connected. */
  async connect(): Promise<void> {
    const xs = this.xen.xenstore;
    const d = this.devicePath;
    const backend = await xsReadOptional(xs, `${d}/backend`);
    const backendId = await xsReadOptional(xs, `${d}/backend-id`);
    if (backend === undefined || backendId === undefined || !/^\d+$/.test(backendId)) {
      throw new Error(`${d}: no backend / backend-id in xenstore (the toolstack creates them)`);
    }
    this.backendPath = backend;
    this.backendId = Number(backendId);
    const mac = await xsReadOptional(xs, `${d}/mac`);
    if (mac !== undefined) this.mac = parseMac(mac);
    // Rings: one page each, granted writable to the back end.
    this.txRingPage = this.xen.pages.allocPage();
    this.rxRingPage = this.xen.pages.allocPage();
    this.tx = FrontRing.init(this.txRingPage.bytes, NETIF_TX_ENTRY_SIZE);
    this.rx = FrontRing.init(this.rxRingPage.bytes, NETIF_RX_ENTRY_SIZE);
    const txRef = this.xen.gnttab.grantAccess(this.backendId, this.txRingPage.frame, false);
    const rxRef = this.xen.gnttab.grantAccess(this.backendId, this.rxRingPage.frame, false);
    this.ringRefs = [txRef, rxRef];
    this.port = this.xen.evtchn.allocUnbound(this.backendId);
    this.unsubscribe = this.xen.evtchn.onEvent(this.port, () => this.interrupt());
    // TX buffers granted read-only; RX buffers granted writable and posted.
    for (let i = 0; i < Math.min(this.txCount, this.tx.size); i++) {
      const page = this.xen.pages.allocPage();
      this.txBufs.push({ page, ref: this.xen.gnttab.grantAccess(this.backendId, page.frame, true) });
      this.freeTx.push(i);
    }
    for (let i = 0; i < this.rx.size; i++) {
      const page = this.xen.pages.allocPage();
      this.rxBufs.push({ page, ref: this.xen.gnttab.grantAccess(this.backendId, page.frame, false) });
      this.postRx(i);
    }
    this.rx.pushRequests();
    await xs.transaction(async (tx) => {
      await tx.write(`${d}/tx-ring-ref`, String(txRef));
      await tx.write(`${d}/rx-ring-ref`, String(rxRef));
      await tx.write(`${d}/event-channel`, String(this.port));
      await tx.write(`${d}/request-rx-copy`, "1");
      await tx.write(`${d}/feature-rx-notify`, "1");
      await tx.write(`${d}/feature-sg`, "1");
      await tx.write(`${d}/feature-gso-tcpv4`, "0");
      await tx.write(`${d}/feature-no-csum-offload`, "1");
      await tx.write(`${d}/state`, String(XENBUS_STATE.Initialised));
    });
    const up = new Promise<void>((resolve, reject) => this.connectedWaiters.push({ resolve, reject }));
    this.unwatch = await xs.watch(`${this.backendPath}/state`, () => void this.backendChanged());
    await up;
  }

  private async backendChanged(): Promise<void> {
    const state = parseXenbusState(await xsReadOptional(this.xen.xenstore, `${this.backendPath}/state`));
    if (state === XENBUS_STATE.Connected && !this.connected) {
      this.connected = true;
      await this.xen.xenstore.write(`${this.devicePath}/state`, String(XENBUS_STATE.Connected));
      this.log(`${this.devicePath}: connected to ${this.backendPath}`);
      for (const w of this.connectedWaiters.splice(0)) w.resolve();
      this.linkHandler?.(true);
      this.kickTx();
    } else if ((state === XENBUS_STATE.Closing || state === XENBUS_STATE.Closed) && (this.connected || this.connectedWaiters.length > 0)) {
      const wasUp = this.connected;
      this.connected = false;
      for (const w of this.connectedWaiters.splice(0)) w.reject(new Error(`${this.backendPath} closed before connecting`));
      await this.xen.xenstore.write(`${this.devicePath}/state`, String(XENBUS_STATE.Closed)).catch(() => {});
      if (wasUp) this.linkHandler?.(false);
    }
  }

  private postRx(id: number): void {
    const rx = this.rx!;
    encodeNetifRxRequest(rx.view, rx.nextRequest(), { id, gref: this.rxBufs[id]!.ref });
  }

  /** Transmits a frame (copied); frames wait in a queue while all TX buffers are in flight. */
  send(frame: Uint8Array): void {
    if (frame.length < 14 || frame.length > 0xffff) {
      this.stats.txErrors++;
      return;
    }
    // Straight into a granted buffer when nothing waits ahead of it (no intermediate copy);
    // out of buffers, reap what the back end already answered first (as Linux's xmit path does).
    if (this.connected && this.txWaiting.length === 0 && this.freeTx.length === 0) this.reapTx(this.tx!);
    if (this.connected && this.txWaiting.length === 0 && this.placeTx(frame)) {
      if (this.tx!.pushRequestsAndCheckNotify()) this.notify();
      return;
    }
    this.txWaiting.push(frame.slice());
    this.kickTx();
  }

  /** Copies one frame into free TX buffers and writes its requests (not yet pushed); false when there is no room. */
  private placeTx(frame: Uint8Array): boolean {
    const tx = this.tx!;
    const pieces = Math.ceil(frame.length / PAGE_SIZE);
    if (this.freeTx.length < pieces || tx.freeRequests() < pieces) return false;
    for (let i = 0; i < pieces; i++) {
      const id = this.freeTx.pop()!;
      this.txBusy[id] = true;
      const buf = this.txBufs[id]!;
      const chunk = pieces === 1 ? frame : frame.subarray(i * PAGE_SIZE, Math.min(frame.length, (i + 1) * PAGE_SIZE));
      // At the end of its page (cache-line aligned): the data netback and the NIC driver stage
      // in their own pages starts at or near offset 0, and buffers all starting at offset 0
      // would compete for the same cache sets.
      const offset = (PAGE_SIZE - chunk.length) & ~63;
      buf.page.bytes.set(chunk, offset);
      encodeNetifTxRequest(tx.view, tx.nextRequest(), {
        gref: buf.ref,
        offset,
        flags: (i < pieces - 1 ? NETTXF.more_data : 0) | NETTXF.data_validated,
        id,
        size: i === 0 ? frame.length : chunk.length,
      });
    }
    this.stats.txPackets++;
    this.stats.txBytes += frame.length;
    return true;
  }

  /**
   * Places waiting frames into free TX buffers. While some still wait, asks the back end for
   * an event when it answers (RING_FINAL_CHECK_FOR_RESPONSES sets rsp_event [io/ring.h]), and
   * reaps what it answered meanwhile. Otherwise no TX completion event is asked for: answered
   * buffers are reaped when send runs out of them, as virtio-net frees old buffers in its
   * transmit path with TX interrupts off.
   */
  private kickTx(): void {
    if (!this.connected) return;
    const tx = this.tx!;
    let pushed = false;
    for (;;) {
      while (this.txWaiting.length > 0 && this.placeTx(this.txWaiting[0]!)) {
        this.txWaiting.shift();
        pushed = true;
      }
      if (this.txWaiting.length === 0 || !tx.finalCheckForResponses()) break;
      this.reapTx(tx);
    }
    this.stats.txQueued = this.txWaiting.length;
    if (pushed && tx.pushRequestsAndCheckNotify()) this.notify();
  }

  private notify(): void {
    if (this.port === undefined) return;
    try {
      this.xen.evtchn.notify(this.port);
    } catch {
      // back end gone
    }
  }

  /** Frees the TX buffers of the responses the back end has published. */
  private reapTx(tx: FrontRing): void {
    for (let at = tx.takeResponse(); at !== undefined; at = tx.takeResponse()) {
      const r = decodeNetifTxResponse(tx.view, at);
      if (r.status === NETIF_RSP.NULL) continue;
      if (r.status !== NETIF_RSP.OKAY) this.stats.txErrors++;
      if (r.id < this.txBufs.length && this.txBusy[r.id]) {
        this.txBusy[r.id] = false;
        this.freeTx.push(r.id);
      }
    }
  }

  /** TX buffers on the ring the back end has not answered yet (answered ones may still await reaping). */
  get txInFlight(): number {
    const tx = this.tx;
    if (tx === undefined) return 0;
    return ((tx.reqProdPvt - tx.rspCons) >>> 0) - tx.unconsumedResponses();
  }

  private interrupt(): void {
    if (this.tx === undefined || this.rx === undefined) return;
    // TX completions free buffers (an event for them is asked for only while frames wait: kickTx).
    this.reapTx(this.tx);
    // RX: deliver frames, repost buffers.
    const rx = this.rx;
    let reposted = false;
    do {
      for (let at = rx.takeResponse(); at !== undefined; at = rx.takeResponse()) {
        const r = decodeNetifRxResponse(rx.view, at);
        if (r.id >= this.rxBufs.length) {
          this.stats.rxErrors++;
          continue;
        }
        if (r.status < 0 || r.offset + r.status > PAGE_SIZE) {
          this.stats.rxErrors++;
          this.rxPartial = [];
        } else {
          // Each response's status is the bytes in its own buffer [netif.h netif_rx_response].
          this.rxPartial.push(this.rxBufs[r.id]!.page.bytes.slice(r.offset, r.offset + r.status));
          if ((r.flags & NETRXF.more_data) === 0) this.deliverRx();
        }
        this.postRx(r.id);
        reposted = true;
      }
    } while (rx.finalCheckForResponses());
    if (reposted && rx.pushRequestsAndCheckNotify()) this.notify();
    this.kickTx();
  }

  private deliverRx(): void {
    const parts = this.rxPartial;
    this.rxPartial = [];
    const total = parts.reduce((n, p) => n + p.length, 0);
    const frame = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      frame.set(p, at);
      at += p.length;
    }
    this.stats.rxPackets++;
    this.stats.rxBytes += total;
    this.receiver?.(frame);
  }

  /** Closes the device: Closing → Closed, grants ended, pages freed. */
  async close(): Promise<void> {
    await this.unwatch?.();
    this.connected = false;
    await this.xen.xenstore.write(`${this.devicePath}/state`, String(XENBUS_STATE.Closing)).catch(() => {});
    this.unsubscribe?.();
    if (this.port !== undefined) {
      try {
        this.xen.evtchn.close(this.port);
      } catch {
        // already closed
      }
    }
    for (const b of [...this.txBufs, ...this.rxBufs]) {
      if (this.xen.gnttab.endAccess(b.ref)) this.xen.pages.freePage(b.page);
    }
    // A page still mapped by the back end is not ours to reuse: it is leaked rather than freed.
    const [txRef, rxRef] = this.ringRefs;
    if (this.txRingPage && txRef !== undefined && this.xen.gnttab.endAccess(txRef)) this.xen.pages.freePage(this.txRingPage);
    if (this.rxRingPage && rxRef !== undefined && this.xen.gnttab.endAccess(rxRef)) this.xen.pages.freePage(this.rxRingPage);
    this.txBufs = [];
    this.rxBufs = [];
    await this.xen.xenstore.write(`${this.devicePath}/state`, String(XENBUS_STATE.Closed)).catch(() => {});
  }
}
