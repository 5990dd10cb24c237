/**
 * The text of a PV console as a person would read it: GRUB writes through terminfo
 * `vt100-color` (pv-grub.md §5), so its output carries ANSI/VT100 control sequences
 * [ECMA-48 §5.4 (CSI), §8.3.89 (OSC)] that are removed here; carriage returns go too.
 */

/** CSI (ESC [ params intermediates final), OSC (ESC ] ... BEL/ST), two-byte ESC sequences, charset selection. */
const ANSI = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[@-Z\\-_]/g;

/** Removes ANSI escape sequences and carriage returns. */
export function stripAnsi(text: string): string {
  return text.replace(ANSI, "").replace(/\r/g, "");
}

/**
 * Accumulates a console's output. `take` is given the whole log so far (the hypervisor's
 * console log grows); it keeps what is new. A sequence split between two takes is stripped
 * once it is complete, since the text is stripped as a whole.
 */
export class ConsoleText {
  raw = "";

  /** Records the console log `log` (everything written so far). */
  take(log: string): void {
    if (log.length > this.raw.length) this.raw = log;
  }

  /** The console without escape sequences. */
  get text(): string {
    return stripAnsi(this.raw);
  }
}
