/**
 * Domain consoles: each domain's console page is a `struct xencons_interface`
 * [xen/include/public/io/console.h] (layout from `@paravirt/device-channel`). The guest
 * produces `out`; the hypervisor drains it into the domain's console log when the guest
 * notifies its console port, and dom0 (or the CLI) reads the log.
 */
import { XENCONS_INTERFACE, consoleRings } from "@paravirt/device-channel";

const decoder = new TextDecoder();

/** Drains the guest's output ring of a console page; a corrupt ring yields nothing. */
export function drainConsoleOut(page: Uint8Array): string {
  // Nothing produced (out_cons == out_prod): the common case when polled, decided without building the rings.
  const dv = new DataView(page.buffer, page.byteOffset, page.byteLength);
  if (dv.getUint32(XENCONS_INTERFACE.OUT_CONS, true) === dv.getUint32(XENCONS_INTERFACE.OUT_PROD, true)) return "";
  const bytes = consoleRings(page).out.drain();
  return bytes.length === 0 ? "" : decoder.decode(bytes);
}

/** Guest side: writes as much of `bytes` as fits into the output ring; returns the count. */
export function writeConsoleOut(page: Uint8Array, bytes: Uint8Array): number {
  return consoleRings(page).out.write(bytes);
}

/** Console backend side: writes as much of `bytes` as fits into the guest's input ring. */
export function writeConsoleIn(page: Uint8Array, bytes: Uint8Array): number {
  return consoleRings(page).in.write(bytes);
}

/** Guest side: reads what the console backend put in the input ring. */
export function readConsoleIn(page: Uint8Array): string {
  const bytes = consoleRings(page).in.drain();
  return bytes.length === 0 ? "" : decoder.decode(bytes);
}
