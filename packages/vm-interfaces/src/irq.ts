/**
 * Interrupt lines and the CPU-facing interrupt controller.
 *
 * A device drives an {@link IrqLine} and never knows who listens (QEMU `qemu_irq`, v86
 * `raise_irq/lower_irq`). The controller (a PIC, an I/O APIC model, the hypervisor's pirq
 * dispatch) ORs shared lines. The CPU polls an {@link InterruptController} between
 * instructions.
 */

/** A level-sensitive interrupt line. */
export interface IrqLine {
  /** Asserts (`true`) or deasserts (`false`) the line. Idempotent. */
  setLevel(asserted: boolean): void;
}

/** An edge: assert then deassert. For edge-triggered sinks. */
export function pulse(line: IrqLine): void {
  line.setLevel(true);
  line.setLevel(false);
}

/** A line nobody listens to. */
export const NO_IRQ: IrqLine = { setLevel() {} };

/** What the CPU sees of its interrupt controller. */
export interface InterruptController {
  /** True when an unmasked interrupt is waiting for the CPU (checked only when EFLAGS.IF=1). */
  hasPending(): boolean;
  /** Takes the highest-priority pending interrupt and returns its vector (0-255). */
  acknowledge(): number;
}

/**
 * A set of level-sensitive inputs ORed per line, with a listener per line: the wiring a
 * board or the hypervisor uses to see device IRQs. `line(n)` hands out the device side.
 */
export class IrqRouter {
  private readonly sources = new Map<number, Set<object>>();
  private readonly listeners = new Map<number, (asserted: boolean) => void>();

  /** A distinct input on line `n`: lines sharing `n` are ORed. */
  line(n: number): IrqLine {
    const token = {};
    return {
      setLevel: (asserted: boolean) => {
        let set = this.sources.get(n);
        if (set === undefined) this.sources.set(n, (set = new Set()));
        const before = set.size > 0;
        if (asserted) set.add(token);
        else set.delete(token);
        const after = set.size > 0;
        if (before !== after) this.listeners.get(n)?.(after);
      },
    };
  }

  /** Whether any input on line `n` is asserted. */
  level(n: number): boolean {
    return (this.sources.get(n)?.size ?? 0) > 0;
  }

  /** Calls `fn` on every change of line `n`'s ORed level (one listener per line). */
  listen(n: number, fn: (asserted: boolean) => void): void {
    this.listeners.set(n, fn);
  }
}
