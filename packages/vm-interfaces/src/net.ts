/**
 * Ethernet: frames only. A port is one end of a link; whoever holds it sends frames out of
 * it and hears frames arriving at it. A NIC model holds its wire-side port; a net device
 * (the e1000 driver, netfront, a netback vif) is a port with an address and a link state,
 * which a bridge joins (v86's paired bus connectors; Mirage `Mirage_net.S`).
 */

/** Largest standard Ethernet frame without FCS (14-byte header + 1500 payload). */
export const ETH_FRAME_MAX = 1514;
/** Smallest frame without FCS; shorter frames are padded by the sender. */
export const ETH_FRAME_MIN = 60;

/** One end of an Ethernet link. */
export interface EthernetPort {
  /** Sends a frame (destination MAC first, no FCS) out of this end. The callee must not keep `frame`. */
  send(frame: Uint8Array): void;
  /** Sets the handler for frames arriving at this end (one handler; a later call replaces it). */
  onReceive(handler: (frame: Uint8Array) => void): void;
}

/** A network interface as a kernel's network stack or a bridge sees it. */
export interface NetDevice extends EthernetPort {
  /** The interface's 6-byte MAC address. */
  readonly mac: Uint8Array;
  /** Largest payload (bytes after the Ethernet header) it sends. */
  readonly mtu: number;
  /** Whether the link is up. */
  readonly linkUp: boolean;
  /** Sets the handler called when the link goes up or down. */
  onLinkChange?(handler: (up: boolean) => void): void;
}

/**
 * A cable: two connected ends. A frame sent on one is delivered, synchronously, to the
 * other's handler. `tap`, when given, sees every frame with its direction (pcap capture).
 */
export function cable(tap?: (frame: Uint8Array, fromA: boolean) => void): [EthernetPort, EthernetPort] {
  let toA: ((f: Uint8Array) => void) | undefined;
  let toB: ((f: Uint8Array) => void) | undefined;
  const a: EthernetPort = {
    send(frame) {
      tap?.(frame, true);
      toB?.(frame.slice());
    },
    onReceive(h) {
      toA = h;
    },
  };
  const b: EthernetPort = {
    send(frame) {
      tap?.(frame, false);
      toA?.(frame.slice());
    },
    onReceive(h) {
      toB = h;
    },
  };
  return [a, b];
}

/** Formats a MAC address as `aa:bb:cc:dd:ee:ff`. */
export function formatMac(mac: Uint8Array): string {
  return Array.from(mac.subarray(0, 6), (b) => b.toString(16).padStart(2, "0")).join(":");
}

/** Parses `aa:bb:cc:dd:ee:ff`; throws RangeError on anything else. */
export function parseMac(text: string): Uint8Array {
  const parts = text.split(":");
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) {
    throw new RangeError(`not a MAC address: ${JSON.stringify(text)}`);
  }
  return Uint8Array.from(parts, (p) => parseInt(p, 16));
}
