/**
 * The scheduler: weighted fair sharing in deterministic virtual time, after Xen 2.0's default
 * Borrowed Virtual Time scheduler (xen/common/sched_bvt.c): each domain accumulates virtual
 * time at a rate inversely proportional to its weight; the runnable domain with the least
 * virtual time runs next, for at most one slice, ended by the local APIC timer's interrupt.
 * A domain that wakes from blocking is brought up to the least virtual time of the runnable
 * ones, so it cannot hoard credit while asleep (BVT's warp-free wake-up).
 *
 * Native kernels are task queues: each task costs its declared virtual nanoseconds. x86 vCPUs
 * run instruction budgets (`Vcpu.run`) at a fixed number of nanoseconds per instruction.
 * With nothing runnable, time jumps to the next timer (device completions, domain timers).
 */
import type { VirtualClock } from "@paravirt/vm-interfaces";
import type { Domain } from "./domain.ts";
import type { LocalApicTimer } from "./timer.ts";

/** The vector our LAPIC timer uses for the scheduler tick (any free vector; Xen uses LOCAL_TIMER_VECTOR). */
export const TIMER_VECTOR = 0xfa;

/** Weight of a domain created without one (BVT's default MCU advance is per-weight too). */
export const DEFAULT_WEIGHT = 256;

/** Why {@link Scheduler.run} returned. */
export type RunResult = "idle" | "until" | "limit";

export interface SchedulerHooks {
  /** The domain is about to run (publish its time). */
  onSchedule(d: Domain): void;
  /** An x86 vCPU exited with `int vector` (0x82: hypercall). */
  onIntercept(d: Domain, vector: number): void;
  /** An x86 vCPU triple-faulted, or a native kernel's task threw. */
  onCrash(d: Domain, detail: string): void;
}

export class Scheduler {
  private readonly clock: VirtualClock;
  private readonly apic: LocalApicTimer;
  private readonly hooks: SchedulerHooks;
  readonly sliceNs: number;
  readonly nsPerInstruction: number;
  private readonly domains: Domain[] = [];
  private needResched = false;
  /** Context-switch allowance: how far behind a waking domain must be to preempt (virtual ns). */
  readonly ctxAllowNs: number;
  private sliceStart = 0;
  /** The domain running now, if any. */
  current: Domain | undefined;
  /** Slices handed out. */
  slices = 0;
  /** Scheduler ticks (LAPIC timer interrupts) taken. */
  ticks = 0;

  constructor(clock: VirtualClock, apic: LocalApicTimer, hooks: SchedulerHooks, sliceNs: number, nsPerInstruction: number) {
    this.clock = clock;
    this.apic = apic;
    this.hooks = hooks;
    this.sliceNs = sliceNs;
    this.nsPerInstruction = nsPerInstruction;
    this.ctxAllowNs = sliceNs / 10;
  }

  /** The LAPIC timer interrupt handler. */
  tick(): void {
    this.ticks++;
    this.needResched = true;
  }

  add(d: Domain): void {
    d.vtime = this.minVtime();
    this.domains.push(d);
  }

  remove(d: Domain): void {
    const i = this.domains.indexOf(d);
    if (i >= 0) this.domains.splice(i, 1);
    if (this.current === d) this.needResched = true;
  }

  runnable(d: Domain): boolean {
    if (d.state !== "running" || d.pauseCount > 0) return false;
    if (d.kind === "native") return d.hasTasks();
    return d.vcpu !== undefined && !d.blocked;
  }

  /**
   * A blocked domain got work or an event. If it is owed CPU (its virtual time is below the
   * running domain's by more than the context-switch allowance), the running domain is
   * preempted at its next task or instruction-budget boundary, as BVT does on wake-up.
   */
  wake(d: Domain): void {
    if (!d.blocked) return;
    d.blocked = false;
    d.vtime = Math.max(d.vtime, this.minVtime(d));
    const cur = this.current;
    if (cur !== undefined && cur !== d && this.runnable(d)) {
      const curVtime = cur.vtime + ((this.clock.now() - this.sliceStart) * DEFAULT_WEIGHT) / cur.weight;
      if (d.vtime + this.ctxAllowNs < curVtime) this.needResched = true;
    }
  }

  /** Marks `d` blocked (SCHEDOP_block, HLT). */
  block(d: Domain): void {
    d.blocked = true;
    if (this.current === d) this.needResched = true;
  }

  /** SCHEDOP_yield. */
  yield(d: Domain): void {
    d.yielded = true;
    if (this.current === d) this.needResched = true;
  }

  private minVtime(except?: Domain): number {
    let m = Infinity;
    for (const d of this.domains) if (d !== except && this.runnable(d) && d.vtime < m) m = d.vtime;
    return m === Infinity ? 0 : m;
  }

  private pick(): Domain | undefined {
    let best: Domain | undefined;
    let yielded: Domain | undefined;
    for (const d of this.domains) {
      if (!this.runnable(d)) continue;
      if (d.yielded) {
        yielded ??= d;
        continue;
      }
      if (best === undefined || d.vtime < best.vtime || (d.vtime === best.vtime && d.domid < best.domid)) best = d;
    }
    const chosen = best ?? yielded;
    for (const d of this.domains) d.yielded = false;
    return chosen;
  }

  /**
   * Runs domains until virtual time `until` ("until"), until nothing is runnable and no timer
   * is pending ("idle"; the clock is then moved to a finite `until`), or until `maxSlices`
   * slices were handed out ("limit").
   */
  run(until = Infinity, maxSlices = Infinity): RunResult {
    let slices = 0;
    for (;;) {
      if (this.clock.now() >= until) return "until";
      if (slices >= maxSlices) return "limit";
      const d = this.pick();
      if (d === undefined) {
        const next = this.clock.nextDeadline();
        if (next === undefined) {
          // Nothing will ever happen again: time still passes up to `until`.
          if (until !== Infinity) this.clock.advanceTo(until);
          return "idle";
        }
        if (next > until) {
          this.clock.advanceTo(until);
          return "until";
        }
        this.clock.runNext();
        continue;
      }
      slices++;
      this.slices++;
      this.runSlice(d, until);
    }
  }

  /**
   * One scheduling decision: runs one slice ("ran"); or, with nothing runnable, moves time to
   * the next timer and fires it ("timer"); or reports "until" / "idle" (time is not moved
   * then, so host-side work such as promise continuations can still post tasks "now").
   */
  step(until = Infinity): "ran" | "timer" | "until" | "idle" {
    if (this.clock.now() >= until) return "until";
    const d = this.pick();
    if (d !== undefined) {
      this.slices++;
      this.runSlice(d, until);
      return "ran";
    }
    const next = this.clock.nextDeadline();
    if (next === undefined) return "idle";
    if (next > until) {
      this.clock.advanceTo(until);
      return "until";
    }
    this.clock.runNext();
    return "timer";
  }

  /** Whether any domain could run now. */
  hasRunnable(): boolean {
    for (const d of this.domains) if (this.runnable(d)) return true;
    return false;
  }

  private runSlice(d: Domain, until: number): void {
    const clock = this.clock;
    const start = clock.now();
    this.sliceStart = start;
    this.current = d;
    this.needResched = false;
    this.apic.oneShot(this.sliceNs, TIMER_VECTOR);
    this.hooks.onSchedule(d);
    if (d.kind === "native") {
      while (!this.needResched && clock.now() < until && this.runnable(d)) {
        const t = d.takeTask()!;
        try {
          t.fn();
        } catch (e) {
          // A kernel that throws has crashed: it stops, the machine goes on (domain_crash).
          this.hooks.onCrash(d, e instanceof Error ? `${e.name}: ${e.message}` : String(e));
          break;
        }
        clock.advanceTo(clock.now() + t.cost);
      }
      if (!d.hasTasks()) d.blocked = true;
    } else {
      const vcpu = d.vcpu!;
      while (!this.needResched && clock.now() < until && this.runnable(d)) {
        const horizon = Math.min(until, clock.nextDeadline() ?? Infinity, start + this.sliceNs);
        const budget = Math.max(1, Math.ceil((horizon - clock.now()) / this.nsPerInstruction));
        const exit = vcpu.run(budget);
        clock.advanceTo(clock.now() + Math.max(1, exit.executed) * this.nsPerInstruction);
        if (exit.reason === "halt") this.block(d);
        else if (exit.reason === "intercept") this.hooks.onIntercept(d, exit.vector);
        else if (exit.reason === "triple-fault") this.hooks.onCrash(d, exit.detail);
      }
    }
    this.apic.stop();
    const used = clock.now() - start;
    d.cpuTime += used;
    d.vtime += (used * DEFAULT_WEIGHT) / d.weight;
    this.current = undefined;
  }
}
