import { Blkback, type BlkbackOptions } from "@paravirt/blkback";
import {
  GNTST, GrantError,
  type BlockDevice, type BlockDeviceInfo, type EventChannels, type GrantMapping, type GrantTable, type TimerQueue, type XenServices, type XenStore,
} from "@paravirt/vm-interfaces";
import { MemoryBlockDevice } from "@paravirt/vm-interfaces/testing";
import { addDevice, InMemoryXen, type InMemoryDomain } from "@paravirt/xen-testing";
import { Blkfront, type BlkfrontOptions } from "../src/index.ts";

export const DEVID = 51712;

/** A device whose requests wait until the test releases them (in any order). */
export class GatedDevice implements BlockDevice {
  readonly inner: BlockDevice;
  readonly held: { op: string; sector: number; release: () => void }[] = [];
  gated = true;
  constructor(inner: BlockDevice) {
    this.inner = inner;
  }
  get info(): BlockDeviceInfo {
    return this.inner.info;
  }
  private gate<T>(op: string, sector: number, fn: () => Promise<T>): Promise<T> {
    if (!this.gated) return fn();
    return new Promise<void>((release) => this.held.push({ op, sector, release })).then(fn);
  }
  read(sector: number, dst: Uint8Array): Promise<void> {
    return this.gate("read", sector, () => this.inner.read(sector, dst));
  }
  write(sector: number, src: Uint8Array): Promise<void> {
    return this.gate("write", sector, () => this.inner.write(sector, src));
  }
  flush(): Promise<void> {
    return this.gate("flush", 0, () => this.inner.flush());
  }
  discard(sector: number, count: number): Promise<void> {
    return this.gate("discard", sector, () => this.inner.discard!(sector, count));
  }
  /** Releases every held request (and any they lead to) until none is left. */
  async releaseAll(xen: InMemoryXen): Promise<void> {
    for (;;) {
      await xen.settle();
      const h = this.held.splice(0);
      if (h.length === 0) return;
      for (const x of h) x.release();
    }
  }
}

export interface Rig {
  xen: InMemoryXen;
  dom0: InMemoryDomain;
  domU: InMemoryDomain;
  disk: MemoryBlockDevice;
  back: Blkback;
  front: Blkfront;
  paths: { frontendPath: string; backendPath: string };
}

export async function rig(o: {
  disk?: MemoryBlockDevice;
  device?: BlockDevice;
  back?: Partial<BlkbackOptions>;
  front?: Partial<BlkfrontOptions>;
  mode?: string;
  /** Give the frontend `frameOf` over the guest's memory (direct grants of guest pages). */
  directPages?: boolean;
  /** Deliver events through this timer queue instead of microtasks. */
  timers?: TimerQueue;
  /** Runs after the backend started, before the frontend connects. */
  beforeFront?: (xen: InMemoryXen, paths: { frontendPath: string; backendPath: string }) => Promise<void>;
} = {}): Promise<Rig> {
  const xen = new InMemoryXen({ timers: o.timers });
  const dom0 = xen.createDomain(0);
  const domU = xen.createDomain(1, { pages: 2048, grantFrames: 8 });
  const disk = o.disk ?? new MemoryBlockDevice(4096);
  const paths = await addDevice(xen, { kind: "vbd", frontendDomid: 1, backendDomid: 0, devid: DEVID, backend: { mode: o.mode ?? "w", dev: "xvda" } });
  const back = new Blkback({ xen: dom0, device: o.device ?? disk, frontendDomid: 1, devid: DEVID, ...o.back });
  await back.start();
  await o.beforeFront?.(xen, paths);
  const front = new Blkfront({ xen: domU, devid: DEVID, ...(o.directPages ? { frameOf: (b: Uint8Array) => domU.memory.frameOf(b) } : {}), ...o.front });
  await settled(xen, front.connect());
  return { xen, dom0, domU, disk, back, front, paths };
}

/** Deterministic pattern bytes. */
export function pattern(n: number, seed: number): Uint8Array {
  const a = new Uint8Array(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    a[i] = x & 0xff;
  }
  return a;
}

/** Byte equality that stays fast on large arrays (vitest's toEqual walks elements). */
export function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** Awaits `p` while letting the in-memory Xen deliver (needed when it runs on a timer queue). */
export async function settled<T>(xen: InMemoryXen, p: Promise<T>): Promise<T> {
  let done = false;
  const q = p.finally(() => {
    done = true;
  });
  while (!done) await xen.settle();
  return q;
}

/**
 * XenServices of `dom` for a backend process that can die: `crash()` releases what the process
 * held (its grant mappings and ports, as the OS does for a dead process) and freezes it (its
 * pending xenstore calls never return, its event handlers and watches stop).
 */
export function crashable(dom: InMemoryDomain): { xen: XenServices; crash: () => void } {
  const maps = new Set<GrantMapping>();
  const ports = new Set<number>();
  let dead = false;
  const never = <T>(): Promise<T> => new Promise<T>(() => {});
  const g = dom.gnttab;
  const e = dom.evtchn;
  const x = dom.xenstore;
  const gnttab: GrantTable = {
    grantAccess: (d, f, ro) => g.grantAccess(d, f, ro),
    endAccess: (r) => g.endAccess(r),
    map: (d, r, w) => {
      if (dead) throw new GrantError(GNTST.general_error, "dead");
      const m = g.map(d, r, w);
      maps.add(m);
      return m;
    },
    unmap: (m) => {
      if (dead) return;
      maps.delete(m);
      g.unmap(m);
    },
    copy: (ops) => g.copy(ops),
  };
  const evtchn: EventChannels = {
    allocUnbound: (r) => e.allocUnbound(r),
    bindInterdomain: (r, p) => {
      const port = e.bindInterdomain(r, p);
      ports.add(port);
      return port;
    },
    notify: (p) => {
      if (!dead) e.notify(p);
    },
    onEvent: (p, h) => e.onEvent(p, () => {
      if (!dead) h();
    }),
    setMask: (p, m) => e.setMask(p, m),
    close: (p) => {
      if (dead) return;
      ports.delete(p);
      e.close(p);
    },
  };
  const xenstore: XenStore = {
    read: (p) => (dead ? never() : x.read(p)),
    write: (p, v) => (dead ? never() : x.write(p, v)),
    mkdir: (p) => (dead ? never() : x.mkdir(p)),
    rm: (p) => (dead ? never() : x.rm(p)),
    directory: (p) => (dead ? never() : x.directory(p)),
    getPermissions: (p) => (dead ? never() : x.getPermissions(p)),
    setPermissions: (p, v) => (dead ? never() : x.setPermissions(p, v)),
    watch: (p, h) => (dead ? never() : x.watch(p, (c) => {
      if (!dead) h(c);
    })),
    transaction: (body) => (dead ? never() : x.transaction(body)),
  };
  return {
    xen: { domid: dom.domid, evtchn, gnttab, xenstore, pages: dom.pages },
    crash: () => {
      dead = true;
      for (const m of maps) g.unmap(m);
      for (const p of ports) e.close(p);
      maps.clear();
      ports.clear();
    },
  };
}
