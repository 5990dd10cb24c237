/**
 * Time: the local APIC timer that drives the scheduler tick, per-domain one-shot timers
 * (set_timer_op → VIRQ_TIMER) and the system time / wall clock published in shared_info.
 */
import { VIRQ } from "@paravirt/device-channel";
import type { AccessSize, IoDevice, TimerId, TimerQueue } from "@paravirt/vm-interfaces";
import type { Domain } from "./domain.ts";
import type { EventChannelOps } from "./eventChannels.ts";
import { tscScale } from "./sharedInfo.ts";

/** Local APIC timer registers, offsets in the APIC page [Intel SDM Vol. 3A, Table 11-1 / §11.5.4]. */
export const LAPIC_TIMER_REG = {
  LVT_TIMER: 0x320,
  INITIAL_COUNT: 0x380,
  CURRENT_COUNT: 0x390,
  DIVIDE_CONFIG: 0x3e0,
} as const;

/** LVT timer register bits [Intel SDM Vol. 3A, Figure 11-8]. */
export const LVT_TIMER = {
  VECTOR_MASK: 0xff,
  MASKED: 1 << 16,
  /** Timer mode bits 18:17: 00 one-shot, 01 periodic. */
  PERIODIC: 1 << 17,
} as const;

/**
 * The local APIC timer [Intel SDM Vol. 3A §11.5.4]: counts down from the initial count at the
 * bus clock divided by the divide configuration, interrupting with the LVT vector at zero;
 * periodic mode reloads. Writing the initial count (re)starts it; 0 stops it.
 */
export class LocalApicTimer implements IoDevice {
  readonly accessSizes: readonly AccessSize[] = [4];
  private readonly timers: TimerQueue;
  private readonly busHz: number;
  private readonly onInterrupt: (vector: number) => void;
  private lvt = LVT_TIMER.MASKED;
  private initial = 0;
  private divide = 0;
  private startedAt = 0;
  private pending: TimerId | undefined;
  /** The expiry callback, made once (the scheduler re-arms the timer every slice). */
  private readonly expireFn = (): void => this.expire();
  /** Interrupts fired. */
  fired = 0;

  constructor(timers: TimerQueue, busHz: number, onInterrupt: (vector: number) => void) {
    this.timers = timers;
    this.busHz = busHz;
    this.onInterrupt = onInterrupt;
  }

  /** Divisor from the divide configuration register: bits 3,1:0 [SDM Figure 11-10]. */
  get divisor(): number {
    const v = ((this.divide & 8) >> 1) | (this.divide & 3);
    return v === 7 ? 1 : 2 << v;
  }

  /** Nanoseconds per count. */
  get nsPerCount(): number {
    return (1e9 * this.divisor) / this.busHz;
  }

  read(offset: number): number {
    switch (offset) {
      case LAPIC_TIMER_REG.LVT_TIMER:
        return this.lvt >>> 0;
      case LAPIC_TIMER_REG.INITIAL_COUNT:
        return this.initial >>> 0;
      case LAPIC_TIMER_REG.CURRENT_COUNT:
        return this.current() >>> 0;
      case LAPIC_TIMER_REG.DIVIDE_CONFIG:
        return this.divide;
      default:
        return 0;
    }
  }

  write(offset: number, _size: AccessSize, value: number): void {
    switch (offset) {
      case LAPIC_TIMER_REG.LVT_TIMER:
        this.lvt = value & (LVT_TIMER.VECTOR_MASK | LVT_TIMER.MASKED | LVT_TIMER.PERIODIC);
        break;
      case LAPIC_TIMER_REG.INITIAL_COUNT:
        this.initial = value >>> 0;
        this.arm();
        break;
      case LAPIC_TIMER_REG.DIVIDE_CONFIG:
        this.divide = value & 0xb;
        break;
    }
  }

  private current(): number {
    if (this.initial === 0 || this.pending === undefined) return 0;
    const elapsed = Math.floor((this.timers.now() - this.startedAt) / this.nsPerCount);
    return Math.max(0, this.initial - elapsed);
  }

  private arm(): void {
    if (this.pending !== undefined) this.timers.cancel(this.pending);
    this.pending = undefined;
    if (this.initial === 0) return;
    this.startedAt = this.timers.now();
    this.pending = this.timers.schedule(this.startedAt + this.initial * this.nsPerCount, this.expireFn);
  }

  private expire(): void {
    this.pending = undefined;
    this.fired++;
    if ((this.lvt & LVT_TIMER.PERIODIC) !== 0) this.arm();
    if ((this.lvt & LVT_TIMER.MASKED) === 0) this.onInterrupt(this.lvt & LVT_TIMER.VECTOR_MASK);
  }

  /** Programs a one-shot interrupt `ns` from now at vector `vector` (divide by 1). */
  oneShot(ns: number, vector: number): void {
    this.write(LAPIC_TIMER_REG.DIVIDE_CONFIG, 4, 0xb);
    this.write(LAPIC_TIMER_REG.LVT_TIMER, 4, vector);
    this.write(LAPIC_TIMER_REG.INITIAL_COUNT, 4, Math.max(1, Math.min(0xffffffff, Math.ceil(ns / this.nsPerCount))));
  }

  /** Stops the count (initial count 0). */
  stop(): void {
    this.write(LAPIC_TIMER_REG.INITIAL_COUNT, 4, 0);
  }
}

/** Time keeping for domains. */
export class TimeKeeper {
  private readonly timers: TimerQueue;
  private readonly evtchn: EventChannelOps;
  readonly tscHz: number;
  readonly mul: number;
  readonly shift: number;
  /** Wall clock at system time 0. */
  readonly wallClock: { sec: number; nsec: number };

  constructor(timers: TimerQueue, evtchn: EventChannelOps, tscHz: number, wallClock: { sec: number; nsec: number }) {
    this.timers = timers;
    this.evtchn = evtchn;
    this.tscHz = tscHz;
    const s = tscScale(tscHz);
    this.mul = s.mul;
    this.shift = s.shift;
    this.wallClock = wallClock;
  }

  /** TSC value at virtual time `ns`. */
  tscAt(ns: number): number {
    return Math.floor((ns * this.tscHz) / 1e9);
  }

  /** Publishes system time (and the wall clock once) in `d`'s shared_info (update_vcpu_system_time). */
  publish(d: Domain): void {
    const now = this.timers.now();
    d.sharedInfo.writeTime(0, this.tscAt(now), now, this.mul, this.shift);
  }

  initDomain(d: Domain): void {
    d.sharedInfo.writeWallClock(this.wallClock.sec, this.wallClock.nsec);
    this.publish(d);
  }

  /**
   * set_timer_op: a one-shot at absolute system time `deadline` ns raising VIRQ_TIMER;
   * 0 cancels. A deadline in the past fires at once (on the next timer pass).
   */
  setTimer(d: Domain, deadline: number): number {
    if (d.timerId !== undefined) this.timers.cancel(d.timerId);
    d.timerId = undefined;
    if (deadline === 0) return 0;
    d.timerId = this.timers.schedule(Math.max(deadline, this.timers.now()), () => {
      d.timerId = undefined;
      this.publish(d);
      this.evtchn.sendVirq(d, VIRQ.TIMER);
    });
    return 0;
  }

  cancel(d: Domain): void {
    if (d.timerId !== undefined) this.timers.cancel(d.timerId);
    d.timerId = undefined;
  }
}
