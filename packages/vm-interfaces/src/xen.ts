/**
 * The Xen services a split driver sees: event channels, the grant table and xenstore, for one
 * domain. hypervisor-core implements them for real domains; `@paravirt/vm-interfaces/testing`
 * has in-memory versions so front and back ends are tested without a hypervisor (Mirage's
 * blkback is a functor over the same three things).
 *
 * Error numbers are Xen's (xen/include/public/errno.h, equal to Linux's on x86); grant status
 * codes are GNTST_* from xen/include/public/grant_table.h.
 */

/** A domain id (domid_t). */
export type DomId = number;
/** An event-channel port (evtchn_port_t). */
export type Port = number;
/** A grant reference (grant_ref_t). */
export type GrantRef = number;

/** Domain ids with a meaning of their own [xen.h]. */
export const DOMID = {
  FIRST_RESERVED: 0x7ff0,
  SELF: 0x7ff0,
  IO: 0x7ff1,
  XEN: 0x7ff2,
  COW: 0x7ff3,
  INVALID: 0x7ff4,
  IDLE: 0x7fff,
} as const;

/** Xen error numbers [xen/include/public/errno.h]; hypercalls return their negation. */
export const XEN_ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  ENOEXEC: 8,
  EBADF: 9,
  ECHILD: 10,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  EXDEV: 18,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  ENOSPC: 28,
  EROFS: 30,
  EMLINK: 31,
  EDOM: 33,
  ERANGE: 34,
  EDEADLK: 35,
  ENAMETOOLONG: 36,
  ENOLCK: 37,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  ENODATA: 61,
  ETIME: 62,
  EBADMSG: 74,
  EOVERFLOW: 75,
  EILSEQ: 84,
  ENOTSOCK: 88,
  EMSGSIZE: 90,
  EOPNOTSUPP: 95,
  EADDRINUSE: 98,
  EADDRNOTAVAIL: 99,
  ENOBUFS: 105,
  EISCONN: 106,
  ENOTCONN: 107,
  ETIMEDOUT: 110,
  ECONNREFUSED: 111,
} as const;

const ERRNO_NAMES = new Map<number, string>(Object.entries(XEN_ERRNO).map(([k, v]) => [v, k]));

/** A Xen operation refused with an errno. `errno` is positive (`XEN_ERRNO.EINVAL`, ...). */
export class XenError extends Error {
  override readonly name = "XenError";
  readonly errno: number;
  constructor(errno: number, message?: string) {
    super(`${ERRNO_NAMES.get(errno) ?? `errno ${errno}`}${message ? `: ${message}` : ""}`);
    this.errno = errno;
  }
}

/** Grant-table operation status codes [grant_table.h GNTST_*]. */
export const GNTST = {
  okay: 0,
  general_error: -1,
  bad_domain: -2,
  bad_gntref: -3,
  bad_handle: -4,
  bad_virt_addr: -5,
  bad_dev_addr: -6,
  no_device_space: -7,
  permission_denied: -8,
  bad_page: -9,
  bad_copy_arg: -10,
  address_too_big: -11,
  eagain: -12,
  no_space: -13,
} as const;

const GNTST_NAMES = new Map<number, string>(Object.entries(GNTST).map(([k, v]) => [v, k]));

/** A grant operation refused with a GNTST_* status (negative). */
export class GrantError extends Error {
  override readonly name = "GrantError";
  readonly status: number;
  constructor(status: number, message?: string) {
    super(`GNTST_${GNTST_NAMES.get(status) ?? status}${message ? `: ${message}` : ""}`);
    this.status = status;
  }
}

/**
 * Event channels of one domain [event_channel.h]. Notification is edge-like: sends while an
 * event is pending coalesce into one handler call.
 */
export interface EventChannels {
  /** EVTCHNOP_alloc_unbound: a port that domain `remote` may bind to. */
  allocUnbound(remote: DomId): Port;
  /** EVTCHNOP_bind_interdomain: connects a local port to `remotePort` of `remote`. */
  bindInterdomain(remote: DomId, remotePort: Port): Port;
  /** EVTCHNOP_send. **Errors:** XenError EINVAL for a port that is not open and bound. */
  notify(port: Port): void;
  /**
   * Calls `handler` (in this domain's context, not synchronously inside the sender) each time
   * the port's pending bit is delivered. One handler per port; returns its removal.
   */
  onEvent(port: Port, handler: () => void): () => void;
  /** Masks (`true`) or unmasks the port; unmasking with the event pending delivers it. */
  setMask(port: Port, masked: boolean): void;
  /** EVTCHNOP_close. The peer's port becomes unbound; further sends to it fail. */
  close(port: Port): void;
}

/** A page of a domain's own memory: its frame number as the domain names it, and its bytes. */
export interface Page {
  /** Guest frame number (pseudo-physical frame for a PV domain). */
  readonly frame: number;
  /** The 4096 bytes, live. */
  readonly bytes: Uint8Array;
}

/** Allocates pages of the calling domain's memory (to share through grants). */
export interface PageAllocator {
  allocPage(): Page;
  freePage(page: Page): void;
}

/** A grant mapped into this domain. */
export interface GrantMapping {
  /** The granted page, live (writes reach the granter's page when mapped writable). */
  readonly bytes: Uint8Array;
  /** Machine address of the page: what a device's DMA must target for zero copy. */
  readonly machineAddress: number;
  readonly writable: boolean;
  /** Handle for unmap (grant_handle_t). */
  readonly handle: number;
}

/** One side of GNTTABOP_copy: a granted page of another domain, or a frame of our own. */
export type GrantCopyPtr =
  | { readonly ref: GrantRef; readonly domid: DomId; readonly offset: number }
  | { readonly frame: number; readonly offset: number };

export interface GrantCopyOp {
  readonly source: GrantCopyPtr;
  readonly dest: GrantCopyPtr;
  readonly length: number;
}

/**
 * The grant table of one domain [grant_table.h, v1]: entries it grants to others, and the
 * mappings it holds of others' grants.
 */
export interface GrantTable {
  /** Grants `domid` access to our frame `frame`. **Errors:** GrantError no_space when full. */
  grantAccess(domid: DomId, frame: number, readonly: boolean): GrantRef;
  /**
   * Ends a grant. Returns false (and leaves the grant in place) while the grantee still has it
   * mapped (GTF_reading/GTF_writing set), as gnttab_end_foreign_access_ref does.
   */
  endAccess(ref: GrantRef): boolean;
  /**
   * GNTTABOP_map_grant_ref of `domid`'s grant `ref`. **Errors:** GrantError bad_gntref,
   * bad_domain, general_error (a grant to another domain, or a writable map of a read-only
   * grant: Xen's "Attempt to write-pin a r/o grant entry").
   */
  map(domid: DomId, ref: GrantRef, writable: boolean): GrantMapping;
  /** GNTTABOP_unmap_grant_ref. **Errors:** GrantError bad_handle. */
  unmap(mapping: GrantMapping): void;
  /** GNTTABOP_copy: per-op GNTST status, in order; a failed op copies nothing. */
  copy(ops: readonly GrantCopyOp[]): number[];
}

/** xenstore node permission [xs_wire.h, docs/misc/xenstore.txt]: n(one), r, w, b(oth). */
export interface XsPermission {
  readonly domid: DomId;
  readonly access: "n" | "r" | "w" | "b";
}

/** Read/write operations on xenstore, inside or outside a transaction. Paths are absolute or relative to the domain's home. */
export interface XenStoreOps {
  /** XS_READ. **Errors:** XenError ENOENT, EACCES. */
  read(path: string): Promise<string>;
  /** XS_WRITE (creates missing parents). **Errors:** XenError EACCES. */
  write(path: string, value: string): Promise<void>;
  /** XS_MKDIR. */
  mkdir(path: string): Promise<void>;
  /** XS_RM (the node and its subtree). */
  rm(path: string): Promise<void>;
  /** XS_DIRECTORY: child names. **Errors:** XenError ENOENT. */
  directory(path: string): Promise<string[]>;
  /** XS_GET_PERMS: the owner first. */
  getPermissions(path: string): Promise<XsPermission[]>;
  /** XS_SET_PERMS: the first entry is the owner and the default for other domains. */
  setPermissions(path: string, perms: readonly XsPermission[]): Promise<void>;
}

/** A domain's connection to xenstore. */
export interface XenStore extends XenStoreOps {
  /**
   * XS_WATCH: calls `handler` with the path that changed each time `path` or a node below it
   * changes, and once right after the watch is set (as xenstored does). Returns its removal.
   */
  watch(path: string, handler: (changedPath: string) => void): Promise<() => Promise<void>>;
  /**
   * Runs `body` in an XS_TRANSACTION_START/END pair, retrying it while the end answers EAGAIN.
   */
  transaction<T>(body: (tx: XenStoreOps) => Promise<T>): Promise<T>;
}

/** Everything a split driver needs from its domain. */
export interface XenServices {
  /** This domain's id. */
  readonly domid: DomId;
  readonly evtchn: EventChannels;
  readonly gnttab: GrantTable;
  readonly xenstore: XenStore;
  readonly pages: PageAllocator;
}

/** Reads `path`, or `undefined` when it does not exist. */
export async function xsReadOptional(xs: XenStoreOps, path: string): Promise<string | undefined> {
  try {
    return await xs.read(path);
  } catch (e) {
    if (e instanceof XenError && e.errno === XEN_ERRNO.ENOENT) return undefined;
    throw e;
  }
}
