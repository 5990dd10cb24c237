/**
 * A learning bridge [IEEE 802.1D §7/§8, without spanning tree]: it learns which port each
 * source MAC arrived on, forwards a unicast frame only to the port its destination was
 * learned on, and floods broadcast, multicast and unknown destinations to every other port.
 * Learned entries age out after `ageingNs` of virtual time (802.1D's default is 300 s).
 * Frames never go back out of the port they came in on, so domU-to-domU traffic between two
 * vifs never touches the physical NIC.
 */
import { formatMac, type Clock, type EthernetPort } from "@paravirt/vm-interfaces";

export interface BridgeOptions {
  clock: Clock;
  /** Default 300 s [802.1D §7.9.2]. */
  ageingNs?: number;
  /** Largest number of learned addresses (a flood of random sources cannot grow it further). Default 4096. */
  maxEntries?: number;
}

export interface BridgePortStats {
  rxFrames: number;
  txFrames: number;
  flooded: number;
}

interface Port {
  readonly name: string;
  readonly dev: EthernetPort;
  readonly stats: BridgePortStats;
  /** The last source and destination looked up for a frame from this port (see {@link Recent}). */
  readonly src: Recent;
  readonly dst: Recent;
}

interface Entry {
  port: Port;
  seen: number;
}

/**
 * One address and its forwarding-database entry, remembered so that a stream of frames
 * between the same two stations looks each address up once: the MAC as two integers (first
 * 2 and last 4 bytes), valid while no entry has left the database since (`generation`).
 */
interface Recent {
  hi: number;
  lo: number;
  entry: Entry | undefined;
  generation: number;
}

export class Bridge {
  private readonly clock: Clock;
  private readonly ageingNs: number;
  private readonly maxEntries: number;
  private readonly ports: Port[] = [];
  /** Learned addresses, keyed by the 48-bit MAC as a number (no string per frame). */
  private readonly fdb = new Map<number, Entry>();
  /** Counts removals from {@link fdb}: a remembered entry from an older generation may be gone. */
  private generation = 0;
  /** Called for every frame the bridge forwards, with where it came from and went. */
  onForward: ((frame: Uint8Array, from: string, to: string[]) => void) | undefined;

  constructor(options: BridgeOptions) {
    this.clock = options.clock;
    this.ageingNs = options.ageingNs ?? 300e9;
    this.maxEntries = options.maxEntries ?? 4096;
  }

  /** Adds a port: the bridge becomes the receiver of `dev`'s frames. */
  addPort(name: string, dev: EthernetPort): void {
    if (this.ports.some((p) => p.name === name)) throw new RangeError(`bridge port ${name} exists`);
    const recent = (): Recent => ({ hi: -1, lo: 0, entry: undefined, generation: -1 });
    const port: Port = { name, dev, stats: { rxFrames: 0, txFrames: 0, flooded: 0 }, src: recent(), dst: recent() };
    this.ports.push(port);
    dev.onReceive((frame) => this.input(port, frame));
  }

  /** Removes a port and forgets what was learned on it. */
  removePort(name: string): void {
    const i = this.ports.findIndex((p) => p.name === name);
    if (i < 0) return;
    const [port] = this.ports.splice(i, 1);
    port!.dev.onReceive(() => {});
    for (const [mac, e] of this.fdb) if (e.port === port) this.forget(mac);
  }

  private forget(mac: number): void {
    this.fdb.delete(mac);
    this.generation++;
  }

  /** The entry for the MAC at `frame[at]`, through `recent` when it is that address's. */
  private lookup(recent: Recent, frame: Uint8Array, at: number): Entry | undefined {
    const hi = (frame[at]! << 8) | frame[at + 1]!;
    const lo = ((frame[at + 2]! << 24) | (frame[at + 3]! << 16) | (frame[at + 4]! << 8) | frame[at + 5]!) >>> 0;
    if (recent.hi === hi && recent.lo === lo && recent.generation === this.generation && recent.entry !== undefined) return recent.entry;
    const entry = this.fdb.get(hi * 0x1_0000_0000 + lo);
    recent.hi = hi;
    recent.lo = lo;
    recent.entry = entry;
    recent.generation = this.generation;
    return entry;
  }

  /** Statistics per port. */
  stats(name: string): BridgePortStats | undefined {
    return this.ports.find((p) => p.name === name)?.stats;
  }

  /** The forwarding database: MAC → port name, without aged-out entries. */
  table(): Map<string, string> {
    const now = this.clock.now();
    const out = new Map<string, string>();
    for (const [mac, e] of this.fdb) if (now - e.seen <= this.ageingNs) out.set(formatMac(macBytes(mac)), e.port.name);
    return out;
  }

  private input(from: Port, frame: Uint8Array): void {
    if (frame.length < 14) return;
    from.stats.rxFrames++;
    const now = this.clock.now();
    // Learn unicast sources only (a group address as source is invalid [802.3 §3.2.3]).
    if ((frame[6]! & 1) === 0) {
      const e = this.lookup(from.src, frame, 6);
      if (e !== undefined) {
        e.port = from;
        e.seen = now;
      } else if (this.fdb.size < this.maxEntries || this.evictOne(now)) {
        this.fdb.set(macKey(frame, 6), { port: from, seen: now });
      }
    }
    const group = (frame[0]! & 1) !== 0;
    const dst = group ? undefined : this.lookup(from.dst, frame, 0);
    if (dst !== undefined && now - dst.seen <= this.ageingNs) {
      if (dst.port !== from) this.output(dst.port, frame, from);
      return; // known on the ingress port: filtered
    }
    from.stats.flooded++;
    const to = this.ports.filter((p) => p !== from);
    this.onForward?.(frame, from.name, to.map((p) => p.name));
    for (const p of to) {
      p.stats.txFrames++;
      p.dev.send(frame);
    }
  }

  private output(port: Port, frame: Uint8Array, from: Port): void {
    if (this.onForward !== undefined) this.onForward(frame, from.name, [port.name]);
    port.stats.txFrames++;
    port.dev.send(frame);
  }

  /** Drops an aged-out entry, or the oldest, to make room. */
  private evictOne(now: number): boolean {
    let oldest: number | undefined;
    let seen = Infinity;
    for (const [mac, e] of this.fdb) {
      if (now - e.seen > this.ageingNs) {
        this.forget(mac);
        return true;
      }
      if (e.seen < seen) {
        seen = e.seen;
        oldest = mac;
      }
    }
    if (oldest === undefined) return false;
    this.forget(oldest);
    return true;
  }
}

/** The 6 bytes at `at` as one number (48 bits fit a double exactly). */
function macKey(frame: Uint8Array, at: number): number {
  return (((frame[at]! << 8) | frame[at + 1]!) * 0x1_0000_0000) + (((frame[at + 2]! << 24) | (frame[at + 3]! << 16) | (frame[at + 4]! << 8) | frame[at + 5]!) >>> 0);
}

function macBytes(key: number): Uint8Array {
  const hi = Math.floor(key / 0x1_0000_0000);
  const lo = key >>> 0;
  return Uint8Array.of(hi >> 8, hi & 0xff, lo >>> 24, (lo >>> 16) & 0xff, (lo >>> 8) & 0xff, lo & 0xff);
}
