/**
 * The transport a xenstore connection runs over: the domain's xenstore page
 * (`struct xenstore_domain_interface` [io/xs_wire.h]) and an event channel. The server holds
 * the dom0 side of a page, a client the guest side; the composer adapts a real event channel
 * and mapped page with `evtchnPort`, tests and dom0's own in-process users use
 * `createLocalChannel`.
 */
import type { EventChannels, Port } from "@paravirt/vm-interfaces";

/** One end of a xenstore page plus its event channel. */
export interface XenstorePort {
  /** The xenstore page (4096 bytes, at least XENSTORE_DOMAIN_INTERFACE.SIZE), live and shared with the peer. */
  readonly page: Uint8Array;
  /** Sends an event to the other end. */
  notify(): void;
  /**
   * Registers the handler for events from the other end (one handler; a later call replaces
   * it). It is called asynchronously, never inside the peer's `notify`. Returns its removal.
   */
  onEvent(handler: () => void): () => void;
}

/** A XenstorePort over a bound event-channel port of `evtchn` and a mapped page. */
export function evtchnPort(evtchn: EventChannels, port: Port, page: Uint8Array): XenstorePort {
  return {
    page,
    notify: () => evtchn.notify(port),
    onEvent: (handler) => evtchn.onEvent(port, handler),
  };
}

/** Options of `createLocalChannel`. */
export interface LocalChannelOptions {
  /** The shared page; a fresh zeroed 4 KiB page by default. */
  page?: Uint8Array;
  /**
   * Runs a delivery later (default `queueMicrotask`). Tests pass their own scheduler to step
   * the two ends by hand. Notifications pending delivery coalesce into one handler call.
   */
  schedule?: (task: () => void) => void;
}

/**
 * An in-process pair of ports over one page: `guest` for a client, `server` for
 * `XenstoreServer.introduce`. Each end's `notify` schedules the other end's handler.
 */
export function createLocalChannel(options: LocalChannelOptions = {}): { guest: XenstorePort; server: XenstorePort } {
  const page = options.page ?? new Uint8Array(4096);
  const schedule = options.schedule ?? queueMicrotask;
  interface End {
    handler: (() => void) | undefined;
    pending: boolean;
  }
  const a: End = { handler: undefined, pending: false };
  const b: End = { handler: undefined, pending: false };
  const deliver = (to: End): void => {
    if (to.pending) return;
    to.pending = true;
    schedule(() => {
      to.pending = false;
      to.handler?.();
    });
  };
  const make = (self: End, peer: End): XenstorePort => ({
    page,
    notify: () => deliver(peer),
    onEvent: (handler) => {
      self.handler = handler;
      return () => {
        if (self.handler === handler) self.handler = undefined;
      };
    },
  });
  return { guest: make(a, b), server: make(b, a) };
}
