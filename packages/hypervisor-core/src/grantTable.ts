/**
 * Grant tables v1, hypervisor side [xen/include/public/grant_table.h; behaviour after
 * xen/common/grant_table.c]. The table lives in frames the granting domain owns; entries are
 * `struct grant_entry_v1` (layout and GTF flags from `@paravirt/device-channel`). Mapping
 * pins the entry (GTF_reading, plus GTF_writing for a writable map) until the last unmap,
 * and holds a reference on the granted frame.
 *
 * Failure codes are Xen's: an entry that does not grant access to the caller, or a writable
 * map of a read-only grant, is GNTST_general_error ("Bad flags or dom", "Attempt to write-pin
 * a r/o grant entry" in _set_status_v1); a ref beyond the table is bad_gntref; an unknown or
 * dying granter is bad_domain; a frame the granter does not own is bad_page.
 */
import { GRANT_ENTRIES_PER_FRAME_V1, GRANT_ENTRY_V1, GTF } from "@paravirt/device-channel";
import { DOMID, GNTST, PAGE_SIZE, type DomId } from "@paravirt/vm-interfaces";
import type { HvContext } from "./context.ts";
import type { Domain } from "./domain.ts";
import { FRAME_TYPE } from "./machineMemory.ts";

/** log2 of the entries in one grant-table frame (4096 / 8 = 512). */
const ENTRY_SHIFT = Math.log2(GRANT_ENTRIES_PER_FRAME_V1);

/** Grant-table frames a domain starts with and may grow to (GNTTABOP_setup_table). */
export const GRANT_FRAMES = { INITIAL: 1, MAX: 4 } as const;

/** Result of GNTTABOP_map_grant_ref. */
export interface MapResult {
  status: number;
  handle: number;
  /** Machine frame of the granted page (dev_bus_addr >> 12), -1 on failure. */
  mfn: number;
}

/** One side of a GNTTABOP_copy: `ref` of `domid`'s table, or the caller's own `frame`. */
export type CopyPtr = { ref: number; domid: DomId; offset: number } | { frame: number; offset: number };

export interface CopyOp {
  source: CopyPtr;
  dest: CopyPtr;
  length: number;
}

export class GrantTableOps {
  private readonly hv: HvContext;

  constructor(hv: HvContext) {
    this.hv = hv;
  }

  /** Gives `d` its initial grant-table frames. Returns false when memory is exhausted. */
  init(d: Domain): boolean {
    return this.grow(d, GRANT_FRAMES.INITIAL);
  }

  private grow(d: Domain, frames: number): boolean {
    while (d.grantFrames.length < frames) {
      const mfn = this.hv.memory.allocFrame(d.domid, FRAME_TYPE.grant_table);
      if (mfn < 0) return false;
      d.grantFrames.push(mfn);
    }
    return true;
  }

  entries(d: Domain): number {
    return d.grantFrames.length * GRANT_ENTRIES_PER_FRAME_V1;
  }

  /** Machine address of entry `ref` of `d`'s table. */
  entryAddress(d: Domain, ref: number): number {
    // 512 entries per frame: integer shift and mask (`ref` is a valid index: an int32).
    const frame = d.grantFrames[ref >>> ENTRY_SHIFT]!;
    return frame * PAGE_SIZE + (ref & (GRANT_ENTRIES_PER_FRAME_V1 - 1)) * GRANT_ENTRY_V1.SIZE;
  }

  private flags(d: Domain, ref: number): number {
    return this.hv.memory.dv.getUint16(this.entryAddress(d, ref) + GRANT_ENTRY_V1.FLAGS, true);
  }
  private setFlags(d: Domain, ref: number, flags: number): void {
    this.hv.memory.dv.setUint16(this.entryAddress(d, ref) + GRANT_ENTRY_V1.FLAGS, flags, true);
  }

  /**
   * The machine frame behind frame number `frame` as `d` names it (pfn for a translated
   * domain, mfn for a PV domain), or -1 when `d` does not own such a RAM frame.
   */
  frameToMfn(d: Domain, frame: number): number {
    if (!Number.isInteger(frame) || frame < 0) return -1;
    const mem = this.hv.memory;
    const mfn = d.translated ? (frame < d.p2m.length ? d.p2m[frame]! : -1) : frame;
    if (mfn < 0 || !mem.valid(mfn) || mem.owner[mfn] !== d.domid || mem.type[mfn] !== FRAME_TYPE.ram) return -1;
    return mfn;
  }

  /** GNTTABOP_setup_table: grows `dom`'s table to `nrFrames` and lists its frames (MFNs). */
  setupTable(caller: Domain, dom: DomId, nrFrames: number): { status: number; frames: number[] } {
    const d = this.hv.resolve(caller, dom);
    if (d === undefined) return { status: GNTST.bad_domain, frames: [] };
    if (d !== caller && !caller.privileged) return { status: GNTST.permission_denied, frames: [] };
    if (!Number.isInteger(nrFrames) || nrFrames < 0 || nrFrames > GRANT_FRAMES.MAX) return { status: GNTST.general_error, frames: [] };
    if (!this.grow(d, nrFrames)) return { status: GNTST.general_error, frames: [] };
    return { status: GNTST.okay, frames: d.grantFrames.slice(0, nrFrames) };
  }

  /** GNTTABOP_query_size. */
  querySize(caller: Domain, dom: DomId): { status: number; nrFrames: number; maxFrames: number } {
    const d = this.hv.resolve(caller, dom);
    if (d === undefined) return { status: GNTST.bad_domain, nrFrames: 0, maxFrames: 0 };
    if (d !== caller && !caller.privileged) return { status: GNTST.permission_denied, nrFrames: 0, maxFrames: 0 };
    return { status: GNTST.okay, nrFrames: d.grantFrames.length, maxFrames: GRANT_FRAMES.MAX };
  }

  /** GNTTABOP_map_grant_ref of `granter`'s `ref` into `caller`. */
  map(caller: Domain, granter: DomId, ref: number, readonly: boolean): MapResult {
    const fail = (status: number): MapResult => {
      caller.violations += status === GNTST.general_error || status === GNTST.bad_gntref ? 1 : 0;
      this.hv.log(`d${caller.domid}: map of d${granter} gref ${ref} refused: GNTST ${status}`);
      return { status, handle: -1, mfn: -1 };
    };
    const rd = granter === DOMID.SELF ? caller : this.hv.domain(granter);
    if (rd === undefined || !rd.alive) return fail(GNTST.bad_domain);
    if (!Number.isInteger(ref) || ref < 0 || ref >= this.entries(rd)) return fail(GNTST.bad_gntref);
    const act = rd.activeGrants.get(ref);
    const flags = this.flags(rd, ref);
    const entryDom = this.hv.memory.dv.getUint16(this.entryAddress(rd, ref) + GRANT_ENTRY_V1.DOMID, true);
    if (act !== undefined) {
      if (act.domid !== caller.domid) return fail(GNTST.general_error);
      if (!readonly && (flags & GTF.readonly) !== 0) return fail(GNTST.general_error);
    } else {
      if ((flags & GTF.type_mask) !== GTF.permit_access || entryDom !== caller.domid) return fail(GNTST.general_error);
      if (!readonly && (flags & GTF.readonly) !== 0) return fail(GNTST.general_error);
    }
    let mfn: number;
    if (act === undefined) {
      const frame = this.hv.memory.dv.getUint32(this.entryAddress(rd, ref) + GRANT_ENTRY_V1.FRAME, true);
      mfn = this.frameToMfn(rd, frame);
      if (mfn < 0) return fail(GNTST.bad_page);
      rd.activeGrants.set(ref, { domid: caller.domid, mfn, readPins: 0, writePins: 0 });
    } else mfn = act.mfn;
    const a = rd.activeGrants.get(ref)!;
    if (readonly) a.readPins++;
    else a.writePins++;
    this.setFlags(rd, ref, flags | GTF.reading | (readonly ? 0 : GTF.writing));
    this.hv.memory.get(mfn);
    const handle = caller.freeHandles.pop() ?? caller.maptrack.length;
    caller.maptrack[handle] = { granter: rd.domid, ref, mfn, writable: !readonly };
    return { status: GNTST.okay, handle, mfn };
  }

  /** GNTTABOP_unmap_grant_ref. */
  unmap(caller: Domain, handle: number): number {
    const m = Number.isInteger(handle) && handle >= 0 ? caller.maptrack[handle] : undefined;
    if (m === undefined) return GNTST.bad_handle;
    caller.maptrack[handle] = undefined;
    caller.freeHandles.push(handle);
    const rd = this.hv.domain(m.granter);
    const act = rd?.alive ? rd.activeGrants.get(m.ref) : undefined;
    if (rd !== undefined && act !== undefined) {
      if (m.writable) act.writePins--;
      else act.readPins--;
      let flags = this.flags(rd, m.ref);
      if (act.writePins === 0) flags &= ~GTF.writing;
      if (act.readPins + act.writePins === 0) {
        flags &= ~GTF.reading;
        rd.activeGrants.delete(m.ref);
      }
      this.setFlags(rd, m.ref, flags);
    }
    this.hv.memory.put(m.mfn);
    return GNTST.okay;
  }

  /** Whether `caller` holds a mapping of machine frame `mfn` (writable when asked). */
  holdsMapping(caller: Domain, mfn: number, writable: boolean): boolean {
    for (const m of caller.maptrack) if (m !== undefined && m.mfn === mfn && (!writable || m.writable)) return true;
    return false;
  }

  /**
   * GNTTABOP_copy: one status per op, in order; a failed op copies nothing. Every op is
   * checked on its own (a batch from one back end typically names one granter: its lookup
   * is kept from one op to the next, nothing else is).
   */
  copy(caller: Domain, ops: readonly CopyOp[]): number[] {
    const out = new Array<number>(ops.length);
    this.granterId = -1;
    for (let i = 0; i < ops.length; i++) out[i] = this.copyOne(caller, ops[i]!);
    this.granterId = -1;
    this.granter = undefined;
    return out;
  }

  /** The granting domain the previous op of this GNTTABOP_copy named (by domid), if any. */
  private granterId = -1;
  private granter: Domain | undefined;

  private copyOne(caller: Domain, op: CopyOp): number {
    const len = op.length;
    if (!Number.isInteger(len) || len < 0 || len > PAGE_SIZE) return GNTST.bad_copy_arg;
    const src = this.resolvePtr(caller, op.source, len, false);
    if (src < 0) return src;
    const dst = this.resolvePtr(caller, op.dest, len, true);
    if (dst < 0) return dst;
    this.hv.memory.bytes.copyWithin(dst, src, src + len);
    return GNTST.okay;
  }

  /**
   * Machine address for one side of a copy, or a GNTST status (small negative). A grant
   * reference must name an entry granting the caller access (GTF_permit_access, its domid;
   * not GTF_readonly when written) to a RAM frame its granter owns [grant_table.c
   * __acquire_grant_for_copy]; a frame must be the caller's own RAM.
   */
  private resolvePtr(caller: Domain, p: CopyPtr, len: number, write: boolean): number {
    const offset = p.offset;
    if (!Number.isInteger(offset) || offset < 0 || offset + len > PAGE_SIZE) return GNTST.bad_copy_arg;
    if ("ref" in p) {
      let rd: Domain | undefined;
      if (p.domid === this.granterId) rd = this.granter;
      else {
        rd = p.domid === DOMID.SELF ? caller : this.hv.domain(p.domid);
        this.granterId = p.domid;
        this.granter = rd;
      }
      if (rd === undefined || !rd.alive) return GNTST.bad_domain;
      const ref = p.ref;
      if (!Number.isInteger(ref) || ref < 0 || ref >= rd.grantFrames.length * GRANT_ENTRIES_PER_FRAME_V1) return GNTST.bad_gntref;
      const at = this.entryAddress(rd, ref);
      const dv = this.hv.memory.dv;
      const flags = dv.getUint16(at + GRANT_ENTRY_V1.FLAGS, true);
      if ((flags & GTF.type_mask) !== GTF.permit_access || dv.getUint16(at + GRANT_ENTRY_V1.DOMID, true) !== caller.domid || (write && (flags & GTF.readonly) !== 0)) {
        caller.violations++;
        return GNTST.general_error;
      }
      const mfn = this.frameToMfn(rd, dv.getUint32(at + GRANT_ENTRY_V1.FRAME, true));
      if (mfn < 0) return GNTST.bad_page;
      return mfn * PAGE_SIZE + offset;
    }
    const mfn = this.frameToMfn(caller, p.frame);
    if (mfn < 0) return GNTST.bad_page;
    return mfn * PAGE_SIZE + offset;
  }

  /** Unmaps every grant `d` holds (domain destruction: gnttab_release_mappings). */
  releaseMappings(d: Domain): void {
    for (let h = 0; h < d.maptrack.length; h++) if (d.maptrack[h] !== undefined) this.unmap(d, h);
  }

  /** Releases `d`'s table frames. */
  releaseTable(d: Domain): void {
    // The frames themselves go with the rest of the domain's memory.
    d.grantFrames = [];
    d.activeGrants.clear();
  }

  /**
   * GNTTABOP_transfer: gives the caller's page `frame` to `domid`, into that domain's grant
   * entry `ref`, which must accept a transfer from the caller (GTF_accept_transfer). A
   * translated receiver names in the entry the pseudo-physical frame (a hole it left) where
   * the page lands; a PV receiver gets the MFN written into the entry. Sets
   * GTF_transfer_committed | GTF_transfer_completed [grant_table.c gnttab_transfer].
   */
  transfer(caller: Domain, frame: number, domid: DomId, ref: number): number {
    const mem = this.hv.memory;
    const mfn = this.frameToMfn(caller, frame);
    if (mfn < 0 || mem.refs[mfn]! > 0 || caller.isPinnedTable(mfn)) return GNTST.bad_page;
    const e = domid === DOMID.SELF ? caller : this.hv.domain(domid);
    if (e === undefined || !e.alive) return GNTST.bad_domain;
    if (!Number.isInteger(ref) || ref < 0 || ref >= this.entries(e)) return GNTST.bad_gntref;
    const at = this.entryAddress(e, ref);
    const flags = mem.dv.getUint16(at + GRANT_ENTRY_V1.FLAGS, true);
    const fromDom = mem.dv.getUint16(at + GRANT_ENTRY_V1.DOMID, true);
    if ((flags & GTF.type_mask) !== GTF.accept_transfer || fromDom !== caller.domid || (flags & GTF.transfer_committed) !== 0) {
      caller.violations++;
      return GNTST.general_error;
    }
    let slot: number;
    if (e.translated) {
      slot = mem.dv.getUint32(at + GRANT_ENTRY_V1.FRAME, true);
      if (slot >= e.p2m.length || e.p2m[slot] !== -1) return GNTST.general_error;
    } else {
      slot = e.p2m.indexOf(-1);
      if (slot < 0) return GNTST.general_error; // no room in its reservation
    }
    // Steal from the caller...
    const pfn = mem.m2p[mfn]!;
    if (pfn >= 0 && caller.p2m[pfn] === mfn) caller.p2m[pfn] = -1;
    // ...and give to the receiver.
    mem.owner[mfn] = e.domid;
    e.p2m[slot] = mfn;
    mem.m2p[mfn] = slot;
    if (!e.translated) mem.dv.setUint32(at + GRANT_ENTRY_V1.FRAME, mfn, true);
    mem.dv.setUint16(at + GRANT_ENTRY_V1.FLAGS, flags | GTF.transfer_committed | GTF.transfer_completed, true);
    return GNTST.okay;
  }

  /** Entries of `d` currently granting access to someone (GTF_permit_access set). */
  activeEntries(d: Domain): number {
    let n = 0;
    for (let ref = 0; ref < this.entries(d); ref++) if ((this.flags(d, ref) & GTF.type_mask) !== 0) n++;
    return n;
  }
}
