/**
 * The xenbus handshake of split drivers [io/xenbus.h, Linux xenbus_client.c]: each end writes
 * its XenbusState to `<device path>/state` and watches the other end's.
 */
import { XENBUS_STATE, parseXenbusState, xenbusStateName, type XenbusState } from "@paravirt/device-channel";
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

/** Where a {@link XenbusStateKeeper} writes: an end's xenstore (looked up at each write: a kernel may attach it late). */
export interface XenbusStateKeeperOptions {
  readonly xen: { readonly xenstore: XenStoreOps };
  /** The end's device directory: the state goes to `<devicePath>/state`. */
  readonly devicePath: string;
  /** Gets "state <name>" on each switch, and why a write failed. */
  readonly log?: (message: string) => void;
}

/**
 * One end's own xenbus state (a split driver's `dev->state`): {@link switchTo} records and
 * publishes it, {@link waitFor} resolves when it reaches a state the caller waits for.
 */
export class XenbusStateKeeper {
  private current: XenbusState = XENBUS_STATE.Initialising;
  private readonly xen: { readonly xenstore: XenStoreOps };
  private readonly devicePath: string;
  private readonly log: ((message: string) => void) | undefined;
  private readonly waiters: { want: (s: XenbusState) => boolean; resolve: () => void }[] = [];

  constructor(options: XenbusStateKeeperOptions) {
    this.xen = options.xen;
    this.devicePath = options.devicePath;
    this.log = options.log;
  }

  /** The state last switched to (Initialising at first). */
  get state(): XenbusState {
    return this.current;
  }

  /**
   * xenbus_switch_state: nothing when already in `s` (as Linux's xenbus_client.c); else records
   * `s`, writes it to `<devicePath>/state` (a failed write is logged, the end goes on in its
   * new state) and then wakes the waiters `s` satisfies.
   */
  async switchTo(s: XenbusState): Promise<void> {
    if (this.current === s) return;
    this.current = s;
    this.log?.(`state ${xenbusStateName(s)}`);
    try {
      await switchState(this.xen.xenstore, this.devicePath, s);
    } catch (e) {
      this.log?.(`cannot write state: ${String(e)}`);
    }
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i]!;
      if (w.want(s)) {
        this.waiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  /** Resolves when this end reaches a state `want` accepts (now, if it is in one). */
  waitFor(want: (s: XenbusState) => boolean): Promise<void> {
    if (want(this.current)) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ want, resolve }));
  }
}
