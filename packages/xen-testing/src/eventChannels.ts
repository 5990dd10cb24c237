import { XEN_ERRNO, XenError, type DomId, type EventChannels, type Port } from "@paravirt/vm-interfaces";
import type { XenScheduler } from "./scheduler.ts";

/** Ports per domain (the 2-level ABI of a 64-bit guest [xen.h]). */
export const NR_EVENT_CHANNELS = 4096;

/** What event channels need from the in-memory Xen: the other domains. */
export interface EventPeers {
  eventChannelsOf(domid: DomId): InMemoryEventChannels | undefined;
}

interface PortState {
  state: "unbound" | "interdomain";
  remoteDomid: DomId;
  remotePort: Port;
  pending: boolean;
  masked: boolean;
  deliveryQueued: boolean;
  handler: (() => void) | undefined;
  /** Handler calls so far. */
  deliveries: number;
  /** Sends that found the event already pending. */
  coalesced: number;
}

/**
 * A domain's event channels: interdomain channels only (no VIRQs, PIRQs, IPIs). Sending sets
 * the peer port's pending bit; delivery runs the peer's handler later through the scheduler,
 * clearing the bit first, so sends while pending coalesce into one call. Masked ports keep
 * the bit and are delivered on unmask.
 */
export class InMemoryEventChannels implements EventChannels {
  readonly domid: DomId;
  private readonly ports = new Map<Port, PortState>();
  private readonly peers: EventPeers;
  private readonly scheduler: XenScheduler;

  constructor(domid: DomId, peers: EventPeers, scheduler: XenScheduler) {
    this.domid = domid;
    this.peers = peers;
    this.scheduler = scheduler;
  }

  /** Open ports (unbound or bound). */
  get openPorts(): number {
    return this.ports.size;
  }

  /** State of a port for tests: undefined when closed. */
  portInfo(port: Port): Readonly<Omit<PortState, "handler">> | undefined {
    return this.ports.get(port);
  }

  private allocPort(): Port {
    for (let p = 1; p < NR_EVENT_CHANNELS; p++) if (!this.ports.has(p)) return p;
    throw new XenError(XEN_ERRNO.ENOSPC, "no free event channel");
  }

  private open(port: Port): PortState {
    const s = this.ports.get(port);
    if (s === undefined) throw new XenError(XEN_ERRNO.EINVAL, `d${this.domid} port ${port} is not open`);
    return s;
  }

  allocUnbound(remote: DomId): Port {
    const port = this.allocPort();
    this.ports.set(port, {
      state: "unbound", remoteDomid: remote, remotePort: 0, pending: false, masked: false,
      deliveryQueued: false, handler: undefined, deliveries: 0, coalesced: 0,
    });
    return port;
  }

  bindInterdomain(remote: DomId, remotePort: Port): Port {
    const peer = this.peers.eventChannelsOf(remote);
    if (peer === undefined) throw new XenError(XEN_ERRNO.ESRCH, `no domain ${remote}`);
    const r = peer.ports.get(remotePort);
    if (r === undefined || r.state !== "unbound" || r.remoteDomid !== this.domid) {
      throw new XenError(XEN_ERRNO.EINVAL, `d${remote} port ${remotePort} is not unbound for d${this.domid}`);
    }
    const port = this.allocPort();
    this.ports.set(port, {
      state: "interdomain", remoteDomid: remote, remotePort, pending: false, masked: false,
      deliveryQueued: false, handler: undefined, deliveries: 0, coalesced: 0,
    });
    r.state = "interdomain";
    r.remotePort = port;
    return port;
  }

  notify(port: Port): void {
    const s = this.open(port);
    if (s.state !== "interdomain") throw new XenError(XEN_ERRNO.EINVAL, `d${this.domid} port ${port} is not bound`);
    this.peers.eventChannelsOf(s.remoteDomid)?.raise(s.remotePort);
  }

  /** Sets the pending bit of our `port` (a peer sent to it). */
  private raise(port: Port): void {
    const s = this.ports.get(port);
    if (s === undefined) return;
    if (s.pending) {
      s.coalesced++;
      return;
    }
    s.pending = true;
    this.queueDelivery(port, s);
  }

  private queueDelivery(port: Port, s: PortState): void {
    if (!s.pending || s.masked || s.handler === undefined || s.deliveryQueued) return;
    s.deliveryQueued = true;
    this.scheduler.post(() => {
      s.deliveryQueued = false;
      if (this.ports.get(port) !== s || !s.pending || s.masked || s.handler === undefined) return;
      s.pending = false;
      s.deliveries++;
      s.handler();
    });
  }

  onEvent(port: Port, handler: () => void): () => void {
    const s = this.open(port);
    if (s.handler !== undefined) throw new XenError(XEN_ERRNO.EBUSY, `d${this.domid} port ${port} already has a handler`);
    s.handler = handler;
    this.queueDelivery(port, s);
    return () => {
      if (s.handler === handler) s.handler = undefined;
    };
  }

  setMask(port: Port, masked: boolean): void {
    const s = this.open(port);
    s.masked = masked;
    if (!masked) this.queueDelivery(port, s);
  }

  /** Closes every port (the domain died); peers' ports become unbound. */
  closeAll(): void {
    for (const port of [...this.ports.keys()]) this.close(port);
  }

  close(port: Port): void {
    const s = this.open(port);
    this.ports.delete(port);
    s.handler = undefined;
    if (s.state === "interdomain") {
      const r = this.peers.eventChannelsOf(s.remoteDomid)?.ports.get(s.remotePort);
      if (r !== undefined && r.state === "interdomain" && r.remotePort === port && r.remoteDomid === this.domid) {
        r.state = "unbound";
        r.remotePort = 0;
      }
    }
  }
}
