/**
 * Host I/O (a file read, a socket) takes no virtual time: while any is in flight, the machine
 * must not jump virtual time ahead to its next timer, or a device's 30-second command timeout
 * would fire while the host's disk is merely busy for a millisecond. Devices' backends are
 * wrapped so the machine loop knows when host I/O is outstanding. I/O a device starts ahead of
 * need (hw-ide's DMA at its data phase, `AtaDiskOptions.overlap`) goes to the unwrapped backend
 * and is handed to `track` only when the device needs its result, so the machine runs on meanwhile.
 */
import type { BlockDevice } from "@paravirt/vm-interfaces";

/** Counts host operations in flight. */
export class HostIoTracker {
  private count = 0;

  /** Operations started and not yet settled. */
  get inFlight(): number {
    return this.count;
  }

  /** Tracks `p` until it settles; returns it. */
  track<T>(p: Promise<T>): Promise<T> {
    this.count++;
    return p.finally(() => {
      this.count--;
    });
  }
}

/** `device`, with every request counted by `tracker`. */
export function trackBlockDevice(device: BlockDevice, tracker: HostIoTracker): BlockDevice {
  const discard = device.discard?.bind(device);
  const readv = device.readv?.bind(device);
  const writev = device.writev?.bind(device);
  return {
    get info() {
      return device.info;
    },
    read: (sector, dst) => tracker.track(device.read(sector, dst)),
    write: (sector, src) => tracker.track(device.write(sector, src)),
    flush: () => tracker.track(device.flush()),
    ...(discard ? { discard: (sector: number, count: number) => tracker.track(discard(sector, count)) } : {}),
    ...(readv ? { readv: (sector: number, bufs: readonly Uint8Array[]) => tracker.track(readv(sector, bufs)) } : {}),
    ...(writev ? { writev: (sector: number, bufs: readonly Uint8Array[]) => tracker.track(writev(sector, bufs)) } : {}),
  };
}
