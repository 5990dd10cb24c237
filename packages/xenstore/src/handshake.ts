/**
 * The xenbus handshake of split drivers [io/xenbus.h, Linux xenbus_client.c]: each end writes
 * its XenbusState to `<device path>/state` and watches the other end's.
 */
import { XENBUS_STATE, parseXenbusState, type XenbusState } from "@paravirt/device-channel";
import { xsReadOptional, type XenStore, type XenStoreOps } from "@paravirt/vm-interfaces";

/** Writes `state` to `<devicePath>/state` (xenbus_switch_state). */
export async function switchState(xs: XenStoreOps, devicePath: string, state: XenbusState): Promise<void> {
  await xs.write(`${devicePath}/state`, String(state));
}

/** Reads `<devicePath>/state`; a missing or malformed node reads as Unknown. */
export async function readState(xs: XenStoreOps, devicePath: string): Promise<XenbusState> {
  return parseXenbusState(await xsReadOptional(xs, `${devicePath}/state`));
}

/**
 * Resolves with the state of `<devicePath>/state` once it is one of `states` (checked now and
 * on every change, through a watch that is removed afterwards).
 */
export function waitForState(xs: XenStore, devicePath: string, states: readonly XenbusState[]): Promise<XenbusState> {
  return new Promise<XenbusState>((resolve, reject) => {
    let done = false;
    let unwatch: (() => Promise<void>) | undefined;
    const finish = (): void => {
      done = true;
      unwatch?.().catch(() => {});
    };
    const check = (): void => {
      if (done) return;
      readState(xs, devicePath).then(
        (s) => {
          if (done || !states.includes(s)) return;
          finish();
          resolve(s);
        },
        (e: unknown) => {
          if (done) return;
          finish();
          reject(e);
        },
      );
    };
    xs.watch(`${devicePath}/state`, check).then(
      (u) => {
        unwatch = u;
        if (done) u().catch(() => {});
      },
      (e: unknown) => {
        if (done) return;
        done = true;
        reject(e);
      },
    );
  });
}

export { XENBUS_STATE };
