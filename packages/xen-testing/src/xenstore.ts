import {
  XEN_ERRNO, XenError,
  type DomId, type XenStore, type XenStoreOps, type XsPermission,
} from "@paravirt/vm-interfaces";
import type { XenScheduler } from "./scheduler.ts";

/** One xenstore node. */
interface XsNode {
  value: string;
  perms: XsPermission[];
  children: Map<string, XsNode>;
}

interface Watch {
  conn: InMemoryXenStore;
  /** Absolute path watched. */
  path: string;
  /** As registered (relative paths are reported relative). */
  token: string;
  relative: boolean;
  handler: (changedPath: string) => void;
  removed: boolean;
}

/** One change to report to watches; `node` is the removed subtree for removals. */
interface Change {
  path: string;
  removed: boolean;
  perms: XsPermission[];
  node?: XsNode;
}

/** Transactions retried this many times on EAGAIN before giving up with EAGAIN. */
export const XS_TRANSACTION_RETRIES = 64;

function cloneNode(n: XsNode): XsNode {
  const children = new Map<string, XsNode>();
  for (const [k, c] of n.children) children.set(k, cloneNode(c));
  return { value: n.value, perms: n.perms.map((p) => ({ ...p })), children };
}

function split(path: string): string[] {
  return path === "/" ? [] : path.slice(1).split("/");
}

/** The parts of every path up from `path` (itself first). */
function isAtOrBelow(path: string, ancestor: string): boolean {
  return ancestor === "/" || path === ancestor || path.startsWith(`${ancestor}/`);
}

const PATH_RE = /^\/([A-Za-z0-9_@\-.]+(\/[A-Za-z0-9_@\-.]+)*)?$/;

/**
 * The shared tree of the in-memory xenstore (docs/misc/xenstore.txt): nodes with values and
 * permissions, watches, and a generation that transactions compare at commit.
 */
export class XenStoreTree {
  root: XsNode = { value: "", perms: [{ domid: 0, access: "n" }], children: new Map() };
  /** Bumped by every committed change. */
  generation = 0;
  readonly watches: Watch[] = [];
  readonly scheduler: XenScheduler;

  constructor(scheduler: XenScheduler) {
    this.scheduler = scheduler;
  }

  /** Fires the special watches (`@introduceDomain`, `@releaseDomain`). */
  fireSpecial(name: string): void {
    for (const w of this.watches) {
      if (w.path !== name) continue;
      this.scheduler.post(() => {
        if (!w.removed) w.handler(name);
      });
    }
  }

  /** Removes the watches of a domain's connection. */
  dropWatches(domid: DomId): void {
    for (let i = this.watches.length - 1; i >= 0; i--) {
      const w = this.watches[i]!;
      if (w.conn.domid === domid) {
        w.removed = true;
        this.watches.splice(i, 1);
      }
    }
  }

  /** Queues watch events for changes to `paths` (`removed`: those subtrees were deleted). */
  fire(changes: readonly Change[]): void {
    for (const w of this.watches) {
      for (const c of changes) {
        let event: string | undefined;
        let perms = c.perms;
        if (isAtOrBelow(c.path, w.path)) event = c.path;
        else if (c.removed && isAtOrBelow(w.path, c.path)) {
          // A watched node inside a removed subtree: judged by its own (last) permissions.
          event = w.path;
          let n: XsNode | undefined = c.node;
          for (const part of split(w.path).slice(split(c.path).length)) {
            n = n?.children.get(part);
            if (n) perms = n.perms;
          }
        }
        if (event === undefined) continue;
        if (!w.conn.canAccess(perms, "r")) continue;
        const reported = w.relative ? w.conn.relativise(event) : event;
        this.scheduler.post(() => {
          if (!w.removed) w.handler(reported);
        });
      }
    }
  }
}

/** Read/write access on a tree (the live one or a transaction's copy), as one domain. */
class TreeOps implements XenStoreOps {
  private readonly conn: InMemoryXenStore;
  private readonly tree: () => XsNode;
  private readonly changed: (path: string, removed: boolean, perms: XsPermission[], node?: XsNode) => void;

  constructor(
    conn: InMemoryXenStore,
    tree: () => XsNode,
    changed: (path: string, removed: boolean, perms: XsPermission[], node?: XsNode) => void,
  ) {
    this.conn = conn;
    this.tree = tree;
    this.changed = changed;
  }

  private lookup(abs: string): XsNode | undefined {
    let n: XsNode | undefined = this.tree();
    for (const part of split(abs)) {
      n = n.children.get(part);
      if (n === undefined) return undefined;
    }
    return n;
  }

  private need(n: XsNode, want: "r" | "w", abs: string): void {
    if (!this.conn.canAccess(n.perms, want)) throw new XenError(XEN_ERRNO.EACCES, abs);
  }

  private existing(path: string, want: "r" | "w"): { abs: string; node: XsNode } {
    const abs = this.conn.absolute(path);
    const node = this.lookup(abs);
    if (node === undefined) throw new XenError(XEN_ERRNO.ENOENT, abs);
    this.need(node, want, abs);
    return { abs, node };
  }

  /** Finds or creates `abs` (and missing parents), checking write access where it creates. */
  private create(abs: string): XsNode {
    let n = this.tree();
    let at = "";
    for (const part of split(abs)) {
      at += `/${part}`;
      let c = n.children.get(part);
      if (c === undefined) {
        this.need(n, "w", at);
        const perms = n.perms.map((p) => ({ ...p }));
        if (!this.conn.privileged) perms[0] = { domid: this.conn.domid, access: perms[0]!.access };
        c = { value: "", perms, children: new Map() };
        n.children.set(part, c);
        this.changed(at, false, perms);
      }
      n = c;
    }
    return n;
  }

  async read(path: string): Promise<string> {
    return this.existing(path, "r").node.value;
  }

  async write(path: string, value: string): Promise<void> {
    const abs = this.conn.absolute(path);
    if (abs === "/") throw new XenError(XEN_ERRNO.EINVAL, abs);
    const existing = this.lookup(abs);
    if (existing) this.need(existing, "w", abs);
    const n = existing ?? this.create(abs);
    n.value = value;
    this.changed(abs, false, n.perms);
  }

  async mkdir(path: string): Promise<void> {
    const abs = this.conn.absolute(path);
    if (this.lookup(abs) === undefined) this.create(abs);
  }

  async rm(path: string): Promise<void> {
    const abs = this.conn.absolute(path);
    if (abs === "/") throw new XenError(XEN_ERRNO.EINVAL, "cannot remove /");
    const parts = split(abs);
    const parent = this.lookup(`/${parts.slice(0, -1).join("/")}`);
    if (parent === undefined) throw new XenError(XEN_ERRNO.ENOENT, abs);
    const node = parent.children.get(parts[parts.length - 1]!);
    if (node === undefined) return;
    this.need(node, "w", abs);
    parent.children.delete(parts[parts.length - 1]!);
    this.changed(abs, true, node.perms, node);
  }

  async directory(path: string): Promise<string[]> {
    return [...this.existing(path, "r").node.children.keys()];
  }

  async getPermissions(path: string): Promise<XsPermission[]> {
    return this.existing(path, "r").node.perms.map((p) => ({ ...p }));
  }

  async setPermissions(path: string, perms: readonly XsPermission[]): Promise<void> {
    const { abs, node } = this.existing(path, "w");
    if (perms.length === 0) throw new XenError(XEN_ERRNO.EINVAL, "empty permission list");
    for (const p of perms) {
      if (!Number.isInteger(p.domid) || p.domid < 0 || p.domid > 0xffff || !"nrwb".includes(p.access) || p.access.length !== 1) {
        throw new XenError(XEN_ERRNO.EINVAL, `bad permission ${JSON.stringify(p)}`);
      }
    }
    if (!this.conn.privileged && perms[0]!.domid !== node.perms[0]!.domid) throw new XenError(XEN_ERRNO.EPERM, "only dom0 changes owners");
    node.perms = perms.map((p) => ({ domid: p.domid, access: p.access }));
    this.changed(abs, false, node.perms);
  }
}

/**
 * One domain's connection to the in-memory xenstore, implementing `XenStore` exactly.
 *
 * Permissions as xenstored applies them: a privileged domain (dom0) may do anything; the owner
 * (first entry) may do anything; another domain gets its own entry's access if listed, else the
 * first entry's. Nodes a domain creates inherit the parent's permissions with that domain as
 * owner (unless privileged). Watches fire once when set and on every change at or below their
 * path, only for nodes the watcher can read. Transactions work on a copy of the tree and
 * commit only if nothing was committed meanwhile (else EAGAIN, and `transaction` retries).
 */
export class InMemoryXenStore implements XenStore {
  readonly domid: DomId;
  readonly privileged: boolean;
  readonly home: string;
  private readonly tree: XenStoreTree;
  private readonly live: TreeOps;
  /** Transactions that ended in EAGAIN (for tests). */
  retries = 0;

  constructor(tree: XenStoreTree, domid: DomId, privileged: boolean) {
    this.tree = tree;
    this.domid = domid;
    this.privileged = privileged;
    this.home = `/local/domain/${domid}`;
    this.live = new TreeOps(this, () => tree.root, (path, removed, perms, node) => {
      tree.generation++;
      tree.fire([{ path, removed, perms, node }]);
    });
  }

  /** Whether this domain has `want` access to a node with `perms`. */
  canAccess(perms: readonly XsPermission[], want: "r" | "w"): boolean {
    if (this.privileged || perms[0]?.domid === this.domid) return true;
    const own = perms.slice(1).find((p) => p.domid === this.domid) ?? perms[0];
    const a = own?.access ?? "n";
    return a === "b" || a === want;
  }

  /** The absolute form of `path`. **Errors:** XenError EINVAL for a malformed path. */
  absolute(path: string): string {
    const abs = path.startsWith("/") ? path : `${this.home}/${path}`;
    if (!PATH_RE.test(abs) || abs.length > 3072) throw new XenError(XEN_ERRNO.EINVAL, `bad path ${JSON.stringify(path)}`);
    return abs;
  }

  /** `abs` relative to the home directory when it is below it. */
  relativise(abs: string): string {
    return abs.startsWith(`${this.home}/`) ? abs.slice(this.home.length + 1) : abs;
  }

  read(path: string): Promise<string> {
    return this.live.read(path);
  }
  write(path: string, value: string): Promise<void> {
    return this.live.write(path, value);
  }
  mkdir(path: string): Promise<void> {
    return this.live.mkdir(path);
  }
  rm(path: string): Promise<void> {
    return this.live.rm(path);
  }
  directory(path: string): Promise<string[]> {
    return this.live.directory(path);
  }
  getPermissions(path: string): Promise<XsPermission[]> {
    return this.live.getPermissions(path);
  }
  setPermissions(path: string, perms: readonly XsPermission[]): Promise<void> {
    return this.live.setPermissions(path, perms);
  }

  async watch(path: string, handler: (changedPath: string) => void): Promise<() => Promise<void>> {
    const special = path.startsWith("@");
    const abs = special ? path : this.absolute(path);
    const w: Watch = { conn: this, path: abs, token: path, relative: !special && !path.startsWith("/"), handler, removed: false };
    this.tree.watches.push(w);
    this.tree.scheduler.post(() => {
      if (!w.removed) w.handler(path);
    });
    return async () => {
      w.removed = true;
      const i = this.tree.watches.indexOf(w);
      if (i >= 0) this.tree.watches.splice(i, 1);
    };
  }

  async transaction<T>(body: (tx: XenStoreOps) => Promise<T>): Promise<T> {
    for (let attempt = 0; attempt < XS_TRANSACTION_RETRIES; attempt++) {
      const start = this.tree.generation;
      const copy = cloneNode(this.tree.root);
      const changes: Change[] = [];
      const tx = new TreeOps(this, () => copy, (path, removed, perms, node) => changes.push({ path, removed, perms, node }));
      const result = await body(tx);
      if (this.tree.generation !== start) {
        this.retries++;
        continue;
      }
      if (changes.length > 0) {
        this.tree.root = copy;
        this.tree.generation++;
        this.tree.fire(changes);
      }
      return result;
    }
    throw new XenError(XEN_ERRNO.EAGAIN, "transaction kept conflicting");
  }
}
