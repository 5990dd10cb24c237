import { GRANT_ENTRY_V1, GTF, readGrantEntryV1, writeGrantEntryV1 } from "@paravirt/device-channel";
import {
  GNTST, GrantError, PAGE_SIZE,
  type DomId, type GrantCopyOp, type GrantCopyPtr, type GrantMapping, type GrantRef, type GrantTable,
} from "@paravirt/vm-interfaces";
import type { DomainMemory } from "./memory.ts";

/** Refs 0..7 are reserved for the toolstack (console, xenstore) [Linux GNTTAB_NR_RESERVED_ENTRIES]. */
export const GNTTAB_NR_RESERVED_ENTRIES = 8;

/** What a grant table needs from the in-memory Xen: the other domains. */
export interface GrantPeers {
  grantTableOf(domid: DomId): InMemoryGrantTable | undefined;
}

interface Pin {
  readers: number;
  writers: number;
}

interface MapTrack {
  granter: InMemoryGrantTable;
  ref: GrantRef;
  writable: boolean;
}

/**
 * A domain's grant table, v1: entries live as real `grant_entry_v1` bytes in the domain's grant
 * frames ({@link frames}), written with domid and frame before flags. Mapping pins the entry and
 * sets GTF_reading / GTF_writing in it, as Xen does, so `endAccess` refuses while mapped.
 */
export class InMemoryGrantTable implements GrantTable {
  readonly domid: DomId;
  /** The grant frames, back to back. */
  readonly frames: DataView;
  readonly entries: number;
  private readonly memory: DomainMemory;
  private readonly peers: GrantPeers;
  private readonly free: number[] = [];
  private readonly allocated = new Set<GrantRef>();
  /** Pins held by other domains on our entries. */
  private readonly pins = new Map<GrantRef, Pin>();
  /** Our mappings of others' grants, by handle. */
  private readonly maptrack = new Map<number, MapTrack>();
  private nextHandle = 1;
  /** Counters for tests and benchmarks. */
  readonly stats = { maps: 0, unmaps: 0, copies: 0, failedMaps: 0 };

  constructor(domid: DomId, memory: DomainMemory, grantFrames: number, peers: GrantPeers) {
    this.domid = domid;
    this.memory = memory;
    this.peers = peers;
    this.frames = new DataView(new ArrayBuffer(grantFrames * PAGE_SIZE));
    this.entries = (grantFrames * PAGE_SIZE) / GRANT_ENTRY_V1.SIZE;
    for (let r = this.entries - 1; r >= GNTTAB_NR_RESERVED_ENTRIES; r--) this.free.push(r);
  }

  /** Grants handed out and not yet ended. */
  get grantsInUse(): number {
    return this.allocated.size;
  }

  /** Mappings this domain holds of other domains' grants. */
  get mappingsHeld(): number {
    return this.maptrack.size;
  }

  /** Our entries currently mapped by some other domain. */
  get entriesMapped(): number {
    return this.pins.size;
  }

  grantAccess(domid: DomId, frame: number, readonly: boolean): GrantRef {
    if (this.memory.pageBytes(frame) === undefined) throw new RangeError(`frame ${frame} is not an allocated page of d${this.domid}`);
    const ref = this.free.pop();
    if (ref === undefined) throw new GrantError(GNTST.no_space, "grant table full");
    this.allocated.add(ref);
    writeGrantEntryV1(this.frames, ref, { flags: GTF.permit_access | (readonly ? GTF.readonly : 0), domid, frame });
    return ref;
  }

  endAccess(ref: GrantRef): boolean {
    if (!this.allocated.has(ref)) throw new GrantError(GNTST.bad_gntref, `ref ${ref} is not granted`);
    const e = readGrantEntryV1(this.frames, ref);
    if (e.flags & (GTF.reading | GTF.writing)) return false;
    this.frames.setUint16(ref * GRANT_ENTRY_V1.SIZE + GRANT_ENTRY_V1.FLAGS, 0, true);
    this.allocated.delete(ref);
    this.free.push(ref);
    return true;
  }

  /**
   * Validates `ref` of this (granting) table for `grantee`, as Xen's map and copy do.
   * Returns the page bytes or a GNTST status.
   */
  resolve(grantee: DomId, ref: GrantRef, writable: boolean): { bytes: Uint8Array; frame: number } | number {
    if (!Number.isInteger(ref) || ref < 0 || ref >= this.entries) return GNTST.bad_gntref;
    const e = readGrantEntryV1(this.frames, ref);
    if ((e.flags & GTF.type_mask) !== GTF.permit_access || e.domid !== grantee) return GNTST.general_error;
    // Xen: "Attempt to write-pin a r/o grant entry" fails with GNTST_general_error [grant_table.c].
    if (writable && e.flags & GTF.readonly) return GNTST.general_error;
    const bytes = this.memory.pageBytes(e.frame);
    if (bytes === undefined) return GNTST.bad_page;
    return { bytes, frame: e.frame };
  }

  private pin(ref: GrantRef, writable: boolean, delta: 1 | -1): void {
    const p = this.pins.get(ref) ?? { readers: 0, writers: 0 };
    if (writable) p.writers += delta;
    else p.readers += delta;
    const o = ref * GRANT_ENTRY_V1.SIZE + GRANT_ENTRY_V1.FLAGS;
    let flags = this.frames.getUint16(o, true) & ~(GTF.reading | GTF.writing);
    if (p.readers + p.writers > 0) flags |= GTF.reading;
    if (p.writers > 0) flags |= GTF.writing;
    this.frames.setUint16(o, flags, true);
    if (p.readers + p.writers === 0) this.pins.delete(ref);
    else this.pins.set(ref, p);
  }

  map(domid: DomId, ref: GrantRef, writable: boolean): GrantMapping {
    const granter = this.peers.grantTableOf(domid);
    if (granter === undefined || domid === this.domid) {
      this.stats.failedMaps++;
      throw new GrantError(GNTST.bad_domain, `d${domid}`);
    }
    const r = granter.resolve(this.domid, ref, writable);
    if (typeof r === "number") {
      this.stats.failedMaps++;
      throw new GrantError(r, `d${domid} ref ${ref}`);
    }
    granter.pin(ref, writable, 1);
    const handle = this.nextHandle++;
    this.maptrack.set(handle, { granter, ref, writable });
    this.stats.maps++;
    return { bytes: r.bytes, machineAddress: granter.memory.machineAddress(r.frame), writable, handle };
  }

  /** Drops every mapping this domain holds (what Xen does when the domain dies). */
  releaseAllMappings(): void {
    for (const [handle, t] of this.maptrack) {
      this.maptrack.delete(handle);
      t.granter.pin(t.ref, t.writable, -1);
      this.stats.unmaps++;
    }
  }

  unmap(mapping: GrantMapping): void {
    const t = this.maptrack.get(mapping.handle);
    if (t === undefined) throw new GrantError(GNTST.bad_handle, `handle ${mapping.handle}`);
    this.maptrack.delete(mapping.handle);
    t.granter.pin(t.ref, t.writable, -1);
    this.stats.unmaps++;
  }

  private side(p: GrantCopyPtr, length: number, writable: boolean): Uint8Array | number {
    if (!Number.isInteger(p.offset) || p.offset < 0 || p.offset + length > PAGE_SIZE) return GNTST.bad_copy_arg;
    if ("ref" in p) {
      const granter = this.peers.grantTableOf(p.domid);
      if (granter === undefined) return GNTST.bad_domain;
      const r = p.domid === this.domid ? GNTST.bad_domain : granter.resolve(this.domid, p.ref, writable);
      if (typeof r === "number") return r;
      return r.bytes.subarray(p.offset, p.offset + length);
    }
    const bytes = this.memory.pageBytes(p.frame);
    if (bytes === undefined) return GNTST.bad_page;
    return bytes.subarray(p.offset, p.offset + length);
  }

  copy(ops: readonly GrantCopyOp[]): number[] {
    return ops.map((op) => {
      if (!Number.isInteger(op.length) || op.length < 0 || op.length > PAGE_SIZE) return GNTST.bad_copy_arg;
      const src = this.side(op.source, op.length, false);
      if (typeof src === "number") return src;
      const dst = this.side(op.dest, op.length, true);
      if (typeof dst === "number") return dst;
      dst.set(src);
      this.stats.copies++;
      return GNTST.okay;
    });
  }
}
