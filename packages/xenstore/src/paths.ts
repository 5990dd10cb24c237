/**
 * xenstore path rules [docs/misc/xenstore.txt "Paths"]: absolute paths start with `/`,
 * relative ones are relative to the connection's home `/local/domain/<domid>`; names use
 * `[A-Za-z0-9_@-]`; no empty components, no trailing `/` (except the root); at most
 * XENSTORE_ABS_PATH_MAX bytes absolute, XENSTORE_REL_PATH_MAX relative [io/xs_wire.h].
 * Watch paths may also be the special `@` names.
 */
import { XENSTORE_ABS_PATH_MAX, XENSTORE_REL_PATH_MAX } from "@paravirt/device-channel";
import type { DomId } from "@paravirt/vm-interfaces";

const VALID = /^[A-Za-z0-9\-/_@]+$/;

/** The home of a domain: `/local/domain/<domid>`. */
export function domainPath(domid: DomId): string {
  return `/local/domain/${domid}`;
}

/** Special watch paths fired on domain introduction and release [xenstore.txt "WATCH"]. */
export const SPECIAL_WATCH = {
  INTRODUCE_DOMAIN: "@introduceDomain",
  RELEASE_DOMAIN: "@releaseDomain",
} as const;

/** Resolves `raw` against `home` into a canonical absolute path, or undefined when invalid. */
export function resolvePath(raw: string, home: string): string | undefined {
  if (raw.length === 0) return undefined;
  let abs: string;
  if (raw.charCodeAt(0) === 0x2f) {
    abs = raw;
  } else {
    if (raw.length > XENSTORE_REL_PATH_MAX) return undefined;
    abs = `${home}/${raw}`;
  }
  if (abs.length > XENSTORE_ABS_PATH_MAX) return undefined;
  if (!VALID.test(abs)) return undefined;
  if (abs !== "/" && abs.endsWith("/")) return undefined;
  if (abs.includes("//")) return undefined;
  return abs;
}

/** Components of a canonical absolute path (`/` → `[]`). */
export function pathSegments(abs: string): string[] {
  return abs === "/" ? [] : abs.slice(1).split("/");
}

/** The path of the first `n` components. */
export function joinSegments(segs: readonly string[], n: number = segs.length): string {
  return n === 0 ? "/" : `/${segs.slice(0, n).join("/")}`;
}

/** Whether `path` is `ancestor` or below it. */
export function isAtOrBelow(path: string, ancestor: string): boolean {
  if (ancestor === "/") return true;
  return path === ancestor || (path.startsWith(ancestor) && path.charCodeAt(ancestor.length) === 0x2f);
}
