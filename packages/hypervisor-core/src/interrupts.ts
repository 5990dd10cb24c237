/**
 * Physical interrupt dispatch (pirq), after xen/arch/x86/irq.c `__do_IRQ_guest` and
 * `pirq_guest_eoi`: a device's line arrives at the hypervisor, which masks it (marks it in
 * service) and raises the owning domain's bound pirq event channel. The line is unmasked only
 * when that domain issues PHYSDEVOP_eoi; if the line is still asserted then (level-triggered),
 * or an edge arrived meanwhile, the event is raised again.
 */
import { XEN_ERRNO, type IrqRouter } from "@paravirt/vm-interfaces";
import type { HvContext } from "./context.ts";
import type { Domain } from "./domain.ts";
import type { EventChannelOps, PirqHooks } from "./eventChannels.ts";
import { XENIRQSTAT } from "./abi.ts";

/** IRQ lines the hypervisor listens to: 16 ISA + 8 more I/O APIC inputs. */
export const NR_IRQS = 24;

interface IrqState {
  owner: Domain | undefined;
  port: number;
  /** Masked at the controller, waiting for the owner's EOI. */
  inService: boolean;
  /** An assertion arrived while in service. */
  latched: boolean;
  /** Interrupts delivered to the owner. */
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
      this.irqs.push({ owner: undefined, port: 0, inService: false, latched: false, delivered: 0, spurious: 0 });
      router.listen(n, (asserted) => {
        if (asserted) this.assert(n);
      });
    }
  }

  private assert(irq: number): void {
    const s = this.irqs[irq]!;
    if (s.owner === undefined) {
      s.spurious++;
      return;
    }
    if (s.inService) {
      s.latched = true;
      return;
    }
    this.deliver(irq, s);
  }

  private deliver(irq: number, s: IrqState): void {
    s.inService = true;
    s.latched = false;
    s.delivered++;
    this.evtchn.raise(s.owner!, s.port);
    void irq;
  }

  bind(d: Domain, pirq: number, port: number): void {
    const s = this.irqs[pirq];
    if (s === undefined) return;
    s.owner = d;
    s.port = port;
    s.inService = false;
    s.latched = false;
    if (this.router.level(pirq)) this.deliver(pirq, s);
  }

  unbind(d: Domain, pirq: number): void {
    const s = this.irqs[pirq];
    if (s === undefined || s.owner !== d) return;
    s.owner = undefined;
    s.port = 0;
    s.inService = false;
    s.latched = false;
  }

  boundElsewhere(d: Domain, pirq: number): boolean {
    const s = this.irqs[pirq];
    return s !== undefined && s.owner !== undefined && s.owner !== d;
  }

  /** PHYSDEVOP_eoi: only the domain that has `irq` bound may acknowledge it. */
  eoi(caller: Domain, irq: number): number {
    const s = Number.isInteger(irq) ? this.irqs[irq] : undefined;
    if (s === undefined) return -XEN_ERRNO.EINVAL;
    if (s.owner !== caller) {
      caller.violations++;
      this.hv.log(`d${caller.domid}: refused EOI of irq ${irq} it does not have bound`);
      return -XEN_ERRNO.EINVAL;
    }
    if (!s.inService) return 0;
    s.inService = false;
    if (this.router.level(irq) || s.latched) this.deliver(irq, s);
    return 0;
  }

  /** PHYSDEVOP_irq_status_query: every bound line needs an EOI. */
  statusQuery(caller: Domain, irq: number): { rc: number; flags: number } {
    if (!Number.isInteger(irq) || irq < 0 || irq >= NR_IRQS) return { rc: -XEN_ERRNO.EINVAL, flags: 0 };
    void caller;
    return { rc: 0, flags: XENIRQSTAT.needs_eoi };
  }

  /** Counters of line `irq`, for tests and the CLI. */
  stats(irq: number): { owner: number | undefined; inService: boolean; delivered: number; spurious: number } {
    const s = this.irqs[irq]!;
    return { owner: s.owner?.domid, inService: s.inService, delivered: s.delivered, spurious: s.spurious };
  }
}
