import type { IrqLine } from "../irq.ts";

/** An IrqLine that remembers its level and every edge, for assertions on devices' interrupts. */
export class RecordingIrqLine implements IrqLine {
  level = false;
  /** Number of deasserted-to-asserted transitions. */
  raised = 0;
  /** Number of asserted-to-deasserted transitions. */
  lowered = 0;
  /** Every setLevel call, in order. */
  readonly history: boolean[] = [];

  setLevel(asserted: boolean): void {
    this.history.push(asserted);
    if (asserted && !this.level) this.raised++;
    if (!asserted && this.level) this.lowered++;
    this.level = asserted;
  }
}
