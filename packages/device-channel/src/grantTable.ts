/**
 * Grant table v1 entries and operation numbers [xen/include/public/grant_table.h].
 *
 * A v1 entry is 8 bytes in the granting domain's grant-table frames:
 * `uint16_t flags; domid_t domid; uint32_t frame;`.
 */

/** Byte layout of `struct grant_entry_v1`. */
export const GRANT_ENTRY_V1 = {
  SIZE: 8,
  FLAGS: 0,
  DOMID: 2,
  FRAME: 4,
} as const;

/** Entries in one 4 KiB grant-table frame. */
export const GRANT_ENTRIES_PER_FRAME_V1 = 4096 / GRANT_ENTRY_V1.SIZE;

/** `grant_entry_v1.flags` bits [grant_table.h GTF_*]. */
export const GTF = {
  invalid: 0,
  permit_access: 1 << 0,
  accept_transfer: 2 << 0,
  transitive: 3 << 0,
  type_mask: 3 << 0,
  readonly: 1 << 2,
  reading: 1 << 3,
  writing: 1 << 4,
  PWT: 1 << 5,
  PCD: 1 << 6,
  PAT: 1 << 7,
  sub_page: 1 << 8,
  transfer_committed: 1 << 2,
  transfer_completed: 1 << 3,
} as const;

/** GNTTABOP_* sub-operations of HYPERVISOR_grant_table_op [grant_table.h]. */
export const GNTTABOP = {
  map_grant_ref: 0,
  unmap_grant_ref: 1,
  setup_table: 2,
  dump_table: 3,
  transfer: 4,
  copy: 5,
  query_size: 6,
  unmap_and_replace: 7,
  set_version: 8,
  get_status_frames: 9,
  get_version: 10,
  swap_grant_ref: 11,
  cache_flush: 12,
} as const;

/** GNTMAP_* flags of gnttab_map_grant_ref [grant_table.h]. */
export const GNTMAP = {
  device_map: 1 << 0,
  host_map: 1 << 1,
  readonly: 1 << 2,
  application_map: 1 << 3,
  contains_pte: 1 << 4,
} as const;

/** GNTCOPY_* flags of gnttab_copy [grant_table.h]. */
export const GNTCOPY = {
  source_gref: 1 << 0,
  dest_gref: 1 << 1,
} as const;

/** A decoded v1 grant entry. */
export interface GrantEntryV1 {
  flags: number;
  domid: number;
  frame: number;
}

/** Reads entry `ref` of a v1 table held in `table` (the grant-table frames, back to back). */
export function readGrantEntryV1(table: DataView, ref: number): GrantEntryV1 {
  const o = ref * GRANT_ENTRY_V1.SIZE;
  return {
    flags: table.getUint16(o + GRANT_ENTRY_V1.FLAGS, true),
    domid: table.getUint16(o + GRANT_ENTRY_V1.DOMID, true),
    frame: table.getUint32(o + GRANT_ENTRY_V1.FRAME, true),
  };
}

/**
 * Writes entry `ref` the way a granting guest must: domid and frame first, flags last, so
 * the hypervisor never sees a valid flags word with a stale frame (grant_table.h "Introducing
 * a valid entry into the grant table").
 */
export function writeGrantEntryV1(table: DataView, ref: number, entry: GrantEntryV1): void {
  const o = ref * GRANT_ENTRY_V1.SIZE;
  table.setUint16(o + GRANT_ENTRY_V1.DOMID, entry.domid, true);
  table.setUint32(o + GRANT_ENTRY_V1.FRAME, entry.frame >>> 0, true);
  table.setUint16(o + GRANT_ENTRY_V1.FLAGS, entry.flags, true);
}
