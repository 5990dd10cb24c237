/** Host-API misuse reported by cpu-x86 (guest errors never throw: they become exceptions). */

export type X86CpuErrorKind =
  /** restoreState was given something saveState did not produce. */
  | "malformed-state"
  /** An image handed to a loader is not what it claims to be or does not fit. */
  | "bad-image";

export class X86CpuError extends Error {
  override readonly name = "X86CpuError";
  readonly kind: X86CpuErrorKind;
  constructor(kind: X86CpuErrorKind, message: string) {
    super(message);
    this.kind = kind;
  }
}
