/**
 * Physical interrupt dispatch (pirq), after xen/arch/x86/irq.c `__do_IRQ_guest` and
 * `pirq_guest_eoi`: a device's line arrives at the hypervisor, which masks it (marks it in
 * service) and raises the bound pirq event channel of every domain sharing the line. The line
 * is unmasked only when each of those domains has issued PHYSDEVOP_eoi; if the line is still
 * asserted then (level-triggered), or an edge arrived meanwhile, the event is raised again.
 */
import { XEN_ERRNO, type IrqRouter } from "@paravirt/vm-interfaces";
import type { HvContext } from "./context.ts";
import type { Domain } from "./domain.ts";
import type { EventChannelOps, PirqHooks } from "./eventChannels.ts";
import { XENIRQSTAT } from "./abi.ts";

/** IRQ lines the hypervisor listens to: 16 ISA + 8 more I/O APIC inputs. */
export const NR_IRQS = 24;

interface Binding {
  readonly d: Domain;
  readonly port: number;
  /** Has acknowledged the interrupt in service. */
  acked: boolean;
}

interface IrqState {
  bindings: Binding[];
  /** Masked at the controller, waiting for the bound domains' EOIs. */
  inService: boolean;
  /** An assertion arrived while in service. */
  latched: boolean;
  /** Interrupts delivered. */
  delivered: number;
  /** Assertions with nobody bound. */
  spurious: number;
}

export class PirqDispatch implements PirqHooks {
  private readonly hv: HvContext;
  private readonly evtchn: EventChannelOps;
  private readonly router: IrqRouter;
  private readonly irqs: IrqState[] = [];

  constructor(hv: HvContext, evtchn: EventChannelOps, router: IrqRouter) {
    this.hv = hv;
    this.evtchn = evtchn;
    this.router = router;
    for (let n = 0; n < NR_IRQS; n++) {
      this.irqs.push({ bindings: [], inService: false, latched: false, delivered: 0, spurious: 0 });
      router.listen(n, (asserted) => {
        if (asserted) this.assert(n);
      });
    }
  }

  private assert(irq: number): void {
    const s = this.irqs[irq]!;
    if (s.bindings.length === 0) {
      s.spurious++;
      return;
    }
    if (s.inService) {
      s.latched = true;
      return;
    }
    this.deliver(s);
  }

  private deliver(s: IrqState): void {
    s.inService = true;
    s.latched = false;
    s.delivered++;
    for (const b of s.bindings) {
      b.acked = false;
      this.evtchn.raise(b.d, b.port);
    }
  }

  /** All bound domains have acknowledged: unmask, and re-deliver a line still asserted. */
  private maybeUnmask(irq: number, s: IrqState): void {
    if (!s.inService || s.bindings.some((b) => !b.acked)) return;
    s.inService = false;
    if (s.bindings.length > 0 && (this.router.level(irq) || s.latched)) this.deliver(s);
  }

  bind(d: Domain, pirq: number, port: number): void {
    const s = this.irqs[pirq];
    if (s === undefined) return;
    // A domain joining while the line is in service has nothing to acknowledge yet.
    s.bindings.push({ d, port, acked: s.inService });
    if (!s.inService && this.router.level(pirq)) this.deliver(s);
  }

  unbind(d: Domain, pirq: number): void {
    const s = this.irqs[pirq];
    if (s === undefined) return;
    s.bindings = s.bindings.filter((b) => b.d !== d);
    if (s.bindings.length === 0) {
      s.inService = false;
      s.latched = false;
    } else this.maybeUnmask(pirq, s);
  }

  /** Lines are shared between domains the hypervisor gave the same IRQ; never refused here. */
  boundElsewhere(_d: Domain, _pirq: number): boolean {
    return false;
  }

  /** PHYSDEVOP_eoi: only a domain that has `irq` bound may acknowledge it. */
  eoi(caller: Domain, irq: number): number {
    const s = Number.isInteger(irq) ? this.irqs[irq] : undefined;
    if (s === undefined) return -XEN_ERRNO.EINVAL;
    const b = s.bindings.find((x) => x.d === caller);
    if (b === undefined) {
      caller.violations++;
      this.hv.log(`d${caller.domid}: refused EOI of irq ${irq} it does not have bound`);
      return -XEN_ERRNO.EINVAL;
    }
    if (!s.inService || b.acked) return 0;
    b.acked = true;
    this.maybeUnmask(irq, s);
    return 0;
  }

  /** PHYSDEVOP_irq_status_query: every bound line needs an EOI; `shared` when several domains bind it. */
  statusQuery(caller: Domain, irq: number): { rc: number; flags: number } {
    if (!Number.isInteger(irq) || irq < 0 || irq >= NR_IRQS) return { rc: -XEN_ERRNO.EINVAL, flags: 0 };
    void caller;
    const shared = this.irqs[irq]!.bindings.length > 1 ? XENIRQSTAT.shared : 0;
    return { rc: 0, flags: XENIRQSTAT.needs_eoi | shared };
  }

  /** Counters of line `irq`, for tests and the CLI. */
  stats(irq: number): { owner: number | undefined; owners: number[]; inService: boolean; delivered: number; spurious: number } {
    const s = this.irqs[irq]!;
    return { owner: s.bindings[0]?.d.domid, owners: s.bindings.map((b) => b.d.domid), inService: s.inService, delivered: s.delivered, spurious: s.spurious };
  }
}
