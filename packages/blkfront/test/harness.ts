import { Blkback, type BlkbackOptions } from "@paravirt/blkback";
import type { BlockDevice, BlockDeviceInfo, TimerQueue } from "@paravirt/vm-interfaces";
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
