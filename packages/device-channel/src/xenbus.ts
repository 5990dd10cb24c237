/** The xenbus device state machine [xen/include/public/io/xenbus.h `enum xenbus_state`]. */

export const XENBUS_STATE = {
  Unknown: 0,
  Initialising: 1,
  /** Finished early initialisation, waiting for information from the peer or hotplug scripts. */
  InitWait: 2,
  /** Waiting for a connection from the peer. */
  Initialised: 3,
  Connected: 4,
  /** The device is being closed due to an error or an unplug event. */
  Closing: 5,
  Closed: 6,
  Reconfiguring: 7,
  Reconfigured: 8,
} as const;

export type XenbusState = (typeof XENBUS_STATE)[keyof typeof XENBUS_STATE];

const NAMES = new Map<number, string>(Object.entries(XENBUS_STATE).map(([k, v]) => [v, k]));

/** The state's name ("Connected"), or `Unknown(n)` for a value outside the enum. */
export function xenbusStateName(state: number): string {
  return NAMES.get(state) ?? `Unknown(${state})`;
}

/**
 * Parses a `state` node's text. Peers write decimal; anything else (a hostile or broken peer)
 * reads as Unknown rather than throwing.
 */
export function parseXenbusState(text: string | undefined): XenbusState {
  if (text === undefined || !/^\d{1,2}$/.test(text.trim())) return XENBUS_STATE.Unknown;
  const n = Number(text.trim());
  return (n <= 8 ? n : 0) as XenbusState;
}
