/**
 * Event channels, hypervisor side [xen/include/public/event_channel.h; behaviour after
 * xen/common/event_channel.c and event_2l.c]: ports per domain, bound unbound / interdomain /
 * virq / pirq / ipi, with pending and mask bits in the 2-level ABI of the domain's shared_info.
 *
 * Every operation takes the calling domain and returns a port (>= 0), 0, or a negated errno:
 * guest input never throws.
 */
import { EVTCHNSTAT, NR_VIRQS } from "@paravirt/device-channel";
import { DOMID, XEN_ERRNO, type DomId } from "@paravirt/vm-interfaces";
import type { HvContext } from "./context.ts";
import type { Channel, Domain } from "./domain.ts";
import { NR_EVTCHN_PORTS } from "./sharedInfo.ts";

/** Result of EVTCHNOP_status [event_channel.h struct evtchn_status]. */
export interface EvtchnStatus {
  status: number;
  vcpu: number;
  /** unbound: the domain allowed to bind; interdomain: the peer. */
  dom?: DomId;
  /** interdomain: the peer's port. */
  port?: number;
  pirq?: number;
  virq?: number;
}

/** Hooks into pirq dispatch (interrupts.ts). */
export interface PirqHooks {
  bind(d: Domain, pirq: number, port: number): void;
  unbind(d: Domain, pirq: number): void;
  /** Whether another domain already has `pirq` bound. */
  boundElsewhere(d: Domain, pirq: number): boolean;
}

const E = XEN_ERRNO;

export class EventChannelOps {
  private readonly hv: HvContext;
  pirq: PirqHooks | undefined;

  constructor(hv: HvContext) {
    this.hv = hv;
  }

  private channel(d: Domain, port: number): Channel | undefined {
    if (!Number.isInteger(port) || port <= 0 || port >= d.ports.length) return undefined;
    return d.ports[port];
  }

  /** get_free_port: port 0 is never handed out (it is reserved in Xen). */
  private freePort(d: Domain): number {
    for (let p = 1; p < d.ports.length; p++) {
      const c = d.ports[p];
      if (c === undefined || c.state === EVTCHNSTAT.closed) return p;
    }
    if (d.ports.length === 0) d.ports.push(undefined); // port 0
    if (d.ports.length >= NR_EVTCHN_PORTS) return -E.ENOSPC;
    d.ports.push(undefined);
    return d.ports.length - 1;
  }

  private open(d: Domain, init: Partial<Channel> & { state: number }): number {
    const port = this.freePort(d);
    if (port < 0) return port;
    d.ports[port] = {
      remoteDom: DOMID.INVALID,
      remotePort: 0,
      virq: -1,
      pirq: -1,
      vcpu: 0,
      xenConsumer: undefined,
      ...init,
    };
    return port;
  }

  /** EVTCHNOP_alloc_unbound. `dom` other than self needs a privileged caller. */
  allocUnbound(caller: Domain, dom: DomId, remoteDom: DomId): number {
    const d = this.hv.resolve(caller, dom);
    if (d === undefined) return -E.ESRCH;
    if (d !== caller && !caller.privileged) return -E.EPERM;
    const remote = remoteDom === DOMID.SELF ? d.domid : remoteDom;
    return this.open(d, { state: EVTCHNSTAT.unbound, remoteDom: remote });
  }

  /**
   * A port of `d` whose far end is the hypervisor (`alloc_unbound_xen_event_channel`):
   * sends from `d` call `consumer`. Used for the console.
   */
  allocXenBound(d: Domain, consumer: () => void): number {
    return this.open(d, { state: EVTCHNSTAT.interdomain, remoteDom: DOMID.XEN, xenConsumer: consumer });
  }

  /** EVTCHNOP_bind_interdomain. */
  bindInterdomain(caller: Domain, remoteDom: DomId, remotePort: number): number {
    const rd = this.hv.resolve(caller, remoteDom);
    if (rd === undefined) return -E.ESRCH;
    const rchn = this.channel(rd, remotePort);
    if (rchn === undefined || rchn.state !== EVTCHNSTAT.unbound) return -E.EINVAL;
    if (rchn.remoteDom !== caller.domid) return -E.EINVAL;
    const lport = this.open(caller, { state: EVTCHNSTAT.interdomain, remoteDom: rd.domid, remotePort });
    if (lport < 0) return lport;
    rchn.state = EVTCHNSTAT.interdomain;
    rchn.remoteDom = caller.domid;
    rchn.remotePort = lport;
    // Xen kicks the local port after binding so an event sent before the bind is not lost.
    this.setPending(caller, lport);
    return lport;
  }

  /** EVTCHNOP_bind_virq. */
  bindVirq(caller: Domain, virq: number, vcpu: number): number {
    if (!Number.isInteger(virq) || virq < 0 || virq >= NR_VIRQS) return -E.EINVAL;
    if (vcpu !== 0) return -E.ENOENT;
    if (caller.virqToPort[virq] !== 0) return -E.EEXIST;
    const port = this.open(caller, { state: EVTCHNSTAT.virq, virq, vcpu });
    if (port > 0) caller.virqToPort[virq] = port;
    return port;
  }

  /** EVTCHNOP_bind_ipi. */
  bindIpi(caller: Domain, vcpu: number): number {
    if (vcpu !== 0) return -E.ENOENT;
    return this.open(caller, { state: EVTCHNSTAT.ipi, vcpu });
  }

  /** EVTCHNOP_bind_pirq: only an IRQ in the caller's I/O space (irq_access_permitted). */
  bindPirq(caller: Domain, pirq: number): number {
    if (!Number.isInteger(pirq) || pirq < 0 || pirq > 255) return -E.EINVAL;
    if (!caller.ioSpace.irqPermitted(pirq)) {
      this.refuse(caller, `bind_pirq ${pirq}: not in its I/O space`);
      return -E.EPERM;
    }
    if (caller.pirqToPort.has(pirq)) return -E.EEXIST;
    if (this.pirq === undefined) return -E.ENOSYS;
    if (this.pirq.boundElsewhere(caller, pirq)) return -E.EBUSY;
    const port = this.open(caller, { state: EVTCHNSTAT.pirq, pirq });
    if (port < 0) return port;
    caller.pirqToPort.set(pirq, port);
    this.pirq.bind(caller, pirq, port);
    return port;
  }

  private refuse(d: Domain, what: string): void {
    d.violations++;
    this.hv.log(`d${d.domid}: refused ${what}`);
  }

  /** EVTCHNOP_close (on `dom`'s port; other than self needs privilege). */
  close(caller: Domain, port: number, dom: DomId = DOMID.SELF): number {
    const d = this.hv.resolve(caller, dom) ?? (dom === caller.domid ? caller : undefined);
    if (d === undefined) return -E.ESRCH;
    if (d !== caller && !caller.privileged) return -E.EPERM;
    return this.closePort(d, port);
  }

  /** Closes `port` of `d` (also used when `d` is being destroyed). */
  closePort(d: Domain, port: number): number {
    const chn = this.channel(d, port);
    if (chn === undefined) return -E.EINVAL;
    switch (chn.state) {
      case EVTCHNSTAT.closed:
        return -E.EINVAL;
      case EVTCHNSTAT.unbound:
      case EVTCHNSTAT.ipi:
        break;
      case EVTCHNSTAT.virq:
        if (d.virqToPort[chn.virq] === port) d.virqToPort[chn.virq] = 0;
        break;
      case EVTCHNSTAT.pirq:
        d.pirqToPort.delete(chn.pirq);
        this.pirq?.unbind(d, chn.pirq);
        break;
      case EVTCHNSTAT.interdomain: {
        if (chn.remoteDom === DOMID.XEN) break;
        const rd = this.hv.domain(chn.remoteDom);
        const rchn = rd && this.channel(rd, chn.remotePort);
        if (rchn !== undefined && rchn.state === EVTCHNSTAT.interdomain && rchn.remoteDom === d.domid) {
          // The peer's end becomes unbound, bindable again by us [event_channel.c evtchn_close].
          rchn.state = EVTCHNSTAT.unbound;
          rchn.remoteDom = d.domid;
          rchn.remotePort = 0;
        }
        break;
      }
    }
    chn.state = EVTCHNSTAT.closed;
    chn.xenConsumer = undefined;
    d.sharedInfo.clearPending(port);
    return 0;
  }

  /**
   * EVTCHNOP_send. A port that is not bound to a peer (unbound, closed, virq, pirq) answers
   * -EINVAL, as Xen 2.0's evtchn_send did (later Xen silently drops sends on unbound ports).
   */
  send(caller: Domain, port: number): number {
    const chn = this.channel(caller, port);
    if (chn === undefined) return -E.EINVAL;
    if (chn.state === EVTCHNSTAT.interdomain) {
      if (chn.remoteDom === DOMID.XEN) {
        chn.xenConsumer?.();
        return 0;
      }
      const rd = this.hv.domain(chn.remoteDom);
      if (rd !== undefined && rd.alive) this.setPending(rd, chn.remotePort);
      return 0;
    }
    if (chn.state === EVTCHNSTAT.ipi) {
      this.setPending(caller, port);
      return 0;
    }
    return -E.EINVAL;
  }

  /** EVTCHNOP_unmask: clears the mask and re-raises a pending event [event_2l.c evtchn_2l_unmask]. */
  unmask(caller: Domain, port: number): number {
    if (this.channel(caller, port) === undefined) return -E.EINVAL;
    const si = caller.sharedInfo;
    if (!si.isMasked(port)) return 0;
    si.setMasked(port, false);
    if (si.isPending(port)) this.markWordPending(caller, port);
    return 0;
  }

  /** EVTCHNOP_status. */
  status(caller: Domain, dom: DomId, port: number): EvtchnStatus | number {
    const d = this.hv.resolve(caller, dom);
    if (d === undefined) return -E.ESRCH;
    if (d !== caller && !caller.privileged) return -E.EPERM;
    if (!Number.isInteger(port) || port <= 0 || port >= NR_EVTCHN_PORTS) return -E.EINVAL;
    const chn = this.channel(d, port);
    if (chn === undefined) return { status: EVTCHNSTAT.closed, vcpu: 0 };
    switch (chn.state) {
      case EVTCHNSTAT.unbound:
        return { status: chn.state, vcpu: chn.vcpu, dom: chn.remoteDom };
      case EVTCHNSTAT.interdomain:
        return { status: chn.state, vcpu: chn.vcpu, dom: chn.remoteDom, port: chn.remotePort };
      case EVTCHNSTAT.pirq:
        return { status: chn.state, vcpu: chn.vcpu, pirq: chn.pirq };
      case EVTCHNSTAT.virq:
        return { status: chn.state, vcpu: chn.vcpu, virq: chn.virq };
      default:
        return { status: chn.state, vcpu: chn.vcpu };
    }
  }

  /** Raises `virq` in `d` if bound (send_guest_vcpu_virq / send_guest_global_virq). */
  sendVirq(d: Domain, virq: number): void {
    const port = d.virqToPort[virq];
    if (port !== undefined && port !== 0 && d.alive) this.setPending(d, port);
  }

  /** Raises `port` of `d` (pirq dispatch). */
  raise(d: Domain, port: number): void {
    if (d.alive) this.setPending(d, port);
  }

  /** evtchn_2l_set_pending. */
  setPending(d: Domain, port: number): void {
    const si = d.sharedInfo;
    if (si.testAndSetPending(port)) return;
    if (si.isMasked(port)) return;
    this.markWordPending(d, port);
  }

  private markWordPending(d: Domain, port: number): void {
    const si = d.sharedInfo;
    const bit = 1 << (port >>> 5);
    const sel = si.pendingSel(0);
    if ((sel & bit) !== 0) return;
    si.setPendingSel(0, sel | bit);
    // vcpu_mark_events_pending
    if (si.upcallPending(0) !== 0) return;
    si.setUpcallPending(0, 1);
    this.hv.kick(d);
  }

  /** Closes every port of a dying domain; peers' ends become unbound. */
  closeAll(d: Domain): void {
    for (let p = 1; p < d.ports.length; p++) {
      const c = d.ports[p];
      if (c !== undefined && c.state !== EVTCHNSTAT.closed) this.closePort(d, p);
    }
  }
}
