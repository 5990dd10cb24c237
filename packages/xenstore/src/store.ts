/**
 * The xenstore tree as an immutable (path-copying) structure, so a transaction snapshot is one
 * root pointer. A `StoreView` is the main store or a transaction's private copy; its operations
 * check permissions as xenstored does [docs/misc/xenstore.txt "Permissions"] and report what
 * changed (for watches and for transaction conflict detection).
 */
import { XEN_ERRNO, XenError, type DomId, type XsPermission } from "@paravirt/vm-interfaces";
import { joinSegments, pathSegments } from "./paths.ts";

/** One node: its value, permissions (owner first) and children in creation order. */
export interface StoreNode {
  readonly value: Uint8Array;
  readonly perms: readonly XsPermission[];
  readonly children: ReadonlyMap<string, StoreNode>;
  /** Generation of the last change of this node's value, permissions or child list. */
  readonly gen: number;
}

/** Who performs an operation. */
export interface Caller {
  readonly domid: DomId;
  readonly privileged: boolean;
  /** XS_SET_TARGET: the domain this one acts for (a device-model stub domain). */
  readonly target: DomId | undefined;
}

/** Limits enforced on unprivileged callers. */
export interface StoreLimits {
  /** Nodes a domain may own (xenstored's quota-nb-entry-per-domain, 1000). */
  readonly maxNodesPerDomain: number;
  /** Bytes of one node's value (quota-max-entry-size, 2048). */
  readonly maxValueSize: number;
  /** Entries of one node's permission list (quota-max-perms, 5). */
  readonly maxPermsPerNode: number;
}

/** A change for watches: `path` and the permission sets under which a watcher may see it. */
export interface StoreChange {
  readonly path: string;
  readonly perms: readonly (readonly XsPermission[])[];
  /** For XS_RM: every removed node (the path itself and its descendants) with its permissions. */
  readonly removed?: readonly { readonly path: string; readonly perms: readonly XsPermission[] }[];
}

/** Result of a mutation: what watches should hear about (nothing for a no-op). */
export interface StoreMutation {
  readonly change: StoreChange | undefined;
}

export const PERM_READ = 1;
export const PERM_WRITE = 2;
export const PERM_OWNER = 4;

function accessBits(a: XsPermission["access"]): number {
  return a === "b" ? PERM_READ | PERM_WRITE : a === "r" ? PERM_READ : a === "w" ? PERM_WRITE : 0;
}

/** What `caller` may do to a node with `perms`: the owner and privileged callers everything. */
export function permsFor(caller: Caller, perms: readonly XsPermission[]): number {
  if (caller.privileged) return PERM_READ | PERM_WRITE | PERM_OWNER;
  const owner = perms[0]!;
  if (owner.domid === caller.domid || (caller.target !== undefined && owner.domid === caller.target)) {
    return PERM_READ | PERM_WRITE | PERM_OWNER;
  }
  let bits = accessBits(owner.access);
  for (let i = 1; i < perms.length; i++) {
    const p = perms[i]!;
    if (p.domid === caller.domid || (caller.target !== undefined && p.domid === caller.target)) {
      bits = accessBits(p.access);
      break;
    }
  }
  return bits;
}

/** Formats a permission as on the wire: access letter then domid (`r5`). */
export function formatPerm(p: XsPermission): string {
  return `${p.access}${p.domid}`;
}

/** Parses a wire permission (`b0`), or undefined. */
export function parsePerm(s: string): XsPermission | undefined {
  const m = /^([nrwb])(\d{1,5})$/.exec(s);
  if (!m) return undefined;
  const domid = Number(m[2]);
  if (domid > 0xffff) return undefined;
  return { access: m[1] as XsPermission["access"], domid };
}

const EMPTY = new Uint8Array(0);

export function newNode(perms: readonly XsPermission[], gen: number): StoreNode {
  return { value: EMPTY, perms, children: new Map(), gen };
}

function err(errno: number): XenError {
  return new XenError(errno);
}

/** Generation of the node at `abs` in the tree under `root`, -1 when absent (no access recorded). */
export function generationAt(root: StoreNode, abs: string): number {
  let n: StoreNode | undefined = root;
  for (const s of pathSegments(abs)) {
    n = n.children.get(s);
    if (n === undefined) return -1;
  }
  return n.gen;
}

/** Monotonic generation counter shared by the main store and its transactions. */
export interface GenCounter {
  value: number;
}

/**
 * A store: the main one, or a transaction's copy (with `accessed` recording every path it
 * looked at, for conflict detection at commit).
 */
export class StoreView {
  root: StoreNode;
  /** Nodes owned per domain (for the node quota). */
  readonly owned: Map<DomId, number>;
  readonly accessed: Set<string> | undefined;
  private readonly gen: GenCounter;
  private readonly limits: StoreLimits;

  constructor(root: StoreNode, owned: Map<DomId, number>, gen: GenCounter, limits: StoreLimits, accessed?: Set<string>) {
    this.root = root;
    this.owned = owned;
    this.gen = gen;
    this.limits = limits;
    this.accessed = accessed;
  }

  /** A transaction's copy of this view: O(1), shares every node. */
  snapshot(): StoreView {
    return new StoreView(this.root, new Map(this.owned), this.gen, this.limits, new Set());
  }

  private touch(path: string): void {
    this.accessed?.add(path);
  }

  /** The node at `abs`, recording the access. */
  lookup(abs: string): StoreNode | undefined {
    this.touch(abs);
    let n: StoreNode | undefined = this.root;
    for (const s of pathSegments(abs)) {
      n = n.children.get(s);
      if (n === undefined) return undefined;
    }
    return n;
  }

  /** The deepest existing node on the way to `segs` and how many components it matched. */
  private nearest(segs: readonly string[]): { node: StoreNode; depth: number } {
    let node = this.root;
    let depth = 0;
    while (depth < segs.length) {
      const c = node.children.get(segs[depth]!);
      if (c === undefined) break;
      node = c;
      depth++;
    }
    this.touch(joinSegments(segs, depth));
    return { node, depth };
  }

  /**
   * The error for a missing node, telling nothing the caller may not know: ENOENT when it has
   * (some of) the access it asked for on the nearest existing ancestor, else EACCES.
   */
  private missing(caller: Caller, abs: string, need: number): XenError {
    const { node } = this.nearest(pathSegments(abs));
    return err(permsFor(caller, node.perms) & need ? XEN_ERRNO.ENOENT : XEN_ERRNO.EACCES);
  }

  /** Permissions of the parent of `abs` (watchers who may read it see the change too), without recording an access. */
  private parentPerms(abs: string): readonly (readonly XsPermission[])[] {
    const segs = pathSegments(abs);
    if (segs.length === 0) return [];
    let n: StoreNode | undefined = this.root;
    for (const s of segs.slice(0, -1)) {
      n = n.children.get(s);
      if (n === undefined) return [];
    }
    return [n.perms];
  }

  /** The node at `abs` if `caller` has `need` on it; throws ENOENT/EACCES otherwise. */
  get(caller: Caller, abs: string, need: number): StoreNode {
    const node = this.lookup(abs);
    if (node === undefined) throw this.missing(caller, abs, need);
    if ((permsFor(caller, node.perms) & need) !== need) throw err(XEN_ERRNO.EACCES);
    return node;
  }

  private put(segs: readonly string[], leaf: StoreNode | undefined): void {
    const rec = (node: StoreNode, i: number): StoreNode => {
      const children = new Map(node.children);
      const name = segs[i]!;
      if (i === segs.length - 1) {
        if (leaf === undefined) children.delete(name);
        else children.set(name, leaf);
        // Adding or removing a child changes the parent's listing.
        const listingChanged = leaf === undefined || !node.children.has(name);
        return { ...node, children, gen: listingChanged ? this.nextGen() : node.gen };
      }
      children.set(name, rec(node.children.get(name)!, i + 1));
      return { ...node, children };
    };
    this.root = segs.length === 0 ? leaf! : rec(this.root, 0);
  }

  private nextGen(): number {
    return ++this.gen.value;
  }

  private addOwned(domid: DomId, n: number): void {
    const v = (this.owned.get(domid) ?? 0) + n;
    if (v === 0) this.owned.delete(domid);
    else this.owned.set(domid, v);
  }

  /** XS_WRITE: sets the value, creating the node and missing parents. */
  write(caller: Caller, abs: string, value: Uint8Array, check: boolean): StoreMutation {
    if (check && !caller.privileged && value.length > this.limits.maxValueSize) throw err(XEN_ERRNO.ENOSPC);
    const node = this.lookup(abs);
    if (node === undefined) return this.create(caller, abs, value, check);
    if (check && !(permsFor(caller, node.perms) & PERM_WRITE)) throw err(XEN_ERRNO.EACCES);
    this.put(pathSegments(abs), { ...node, value, gen: this.nextGen() });
    return { change: { path: abs, perms: [node.perms, ...this.parentPerms(abs)] } };
  }

  /** XS_MKDIR: creates an empty node (and missing parents); an existing node is left alone. */
  mkdir(caller: Caller, abs: string, check: boolean): StoreMutation {
    const node = this.lookup(abs);
    if (node === undefined) return this.create(caller, abs, EMPTY, check);
    if (check && !(permsFor(caller, node.perms) & PERM_WRITE)) throw err(XEN_ERRNO.EACCES);
    return { change: undefined };
  }

  private create(caller: Caller, abs: string, value: Uint8Array, check: boolean): StoreMutation {
    const segs = pathSegments(abs);
    const { node: anc, depth } = this.nearest(segs);
    if (check) {
      const bits = permsFor(caller, anc.perms);
      if (!(bits & PERM_WRITE)) throw err(XEN_ERRNO.EACCES);
      if (!caller.privileged && (this.owned.get(caller.domid) ?? 0) + (segs.length - depth) > this.limits.maxNodesPerDomain) {
        throw err(XEN_ERRNO.ENOSPC);
      }
    }
    let parentPerms = anc.perms;
    for (let k = depth + 1; k <= segs.length; k++) {
      // New nodes inherit the parent's permissions; unprivileged domains own what they create.
      const perms = caller.privileged ? parentPerms : [{ domid: caller.domid, access: parentPerms[0]!.access }, ...parentPerms.slice(1)];
      const n = newNode(perms, this.nextGen());
      this.put(segs.slice(0, k), k === segs.length ? { ...n, value } : n);
      this.addOwned(perms[0]!.domid, 1);
      this.touch(joinSegments(segs, k));
      parentPerms = perms;
    }
    return { change: { path: abs, perms: [parentPerms, ...this.parentPerms(abs)] } };
  }

  /** XS_RM: removes the node and its subtree; a missing node whose parent exists is fine. */
  rm(caller: Caller, abs: string, check: boolean): StoreMutation {
    if (abs === "/") throw err(XEN_ERRNO.EINVAL);
    const segs = pathSegments(abs);
    const node = this.lookup(abs);
    if (node === undefined) {
      // Already gone: fine when the parent exists (and the caller could have written there).
      const e = check ? this.missing(caller, abs, PERM_WRITE) : err(XEN_ERRNO.ENOENT);
      if (e.errno === XEN_ERRNO.ENOENT && this.lookup(joinSegments(segs, segs.length - 1)) !== undefined) return { change: undefined };
      throw e;
    }
    if (check && !(permsFor(caller, node.perms) & PERM_WRITE)) throw err(XEN_ERRNO.EACCES);
    const removed: { path: string; perms: readonly XsPermission[] }[] = [];
    const walk = (n: StoreNode, p: string): void => {
      removed.push({ path: p, perms: n.perms });
      this.touch(p);
      this.addOwned(n.perms[0]!.domid, -1);
      for (const [name, c] of n.children) walk(c, `${p}/${name}`);
    };
    walk(node, abs);
    this.put(segs, undefined);
    return { change: { path: abs, perms: [node.perms, ...this.parentPerms(abs)], removed } };
  }

  /** XS_SET_PERMS: only the owner (or a privileged caller) may; only privileged callers change the owner. */
  setPerms(caller: Caller, abs: string, perms: readonly XsPermission[], check: boolean): StoreMutation {
    const node = this.lookup(abs);
    if (node === undefined) throw this.missing(caller, abs, PERM_WRITE | PERM_OWNER);
    if (check) {
      const bits = permsFor(caller, node.perms);
      if ((bits & (PERM_WRITE | PERM_OWNER)) !== (PERM_WRITE | PERM_OWNER)) throw err(XEN_ERRNO.EACCES);
      if (!caller.privileged && perms[0]!.domid !== node.perms[0]!.domid) throw err(XEN_ERRNO.EPERM);
      if (!caller.privileged && perms.length > this.limits.maxPermsPerNode) throw err(XEN_ERRNO.ENOSPC);
    }
    this.addOwned(node.perms[0]!.domid, -1);
    this.addOwned(perms[0]!.domid, 1);
    this.put(pathSegments(abs), { ...node, perms: [...perms], gen: this.nextGen() });
    return { change: { path: abs, perms: [node.perms, perms, ...this.parentPerms(abs)] } };
  }
}

/** A fresh store: `/`, `/local`, `/local/domain` owned by dom0, readable by nobody else. */
export function initialRoot(gen: GenCounter): { root: StoreNode; owned: Map<DomId, number> } {
  const perms: readonly XsPermission[] = [{ domid: 0, access: "n" }];
  const domain = newNode(perms, ++gen.value);
  const local: StoreNode = { ...newNode(perms, ++gen.value), children: new Map([["domain", domain]]) };
  const root: StoreNode = { ...newNode(perms, ++gen.value), children: new Map([["local", local]]) };
  return { root, owned: new Map([[0, 3]]) };
}
