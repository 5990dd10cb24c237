/**
 * What the toolstack writes to xenstore to plug a split device (as libxl__device_generic_add):
 * the frontend directory `<fe home>/device/<kind>/<devid>` owned by the frontend and readable
 * by the backend, the backend directory `<be home>/backend/<kind>/<fe>/<devid>` owned by the
 * backend and readable by the frontend, each pointing at the other, both in XenbusState
 * Initialising [docs/misc/xenstore-paths.markdown, io/xenbus.h].
 */
import { XENBUS_STATE } from "@paravirt/device-channel";
import { XEN_ERRNO, XenError, type DomId, type XenStore, type XenStoreOps } from "@paravirt/vm-interfaces";
import { domainPath } from "./paths.ts";

/** A split device to plug. */
export interface XenbusDeviceSpec {
  /** Device kind as in the paths: "vbd", "vif", "console", ... */
  readonly kind: string;
  readonly frontendDomid: DomId;
  readonly backendDomid: DomId;
  /** Device id ("virtual-device" number for vbd, index for vif). */
  readonly devid: number;
  /** Extra frontend entries (libxl's `fents`), e.g. `{ "virtual-device": "51712" }`. */
  readonly frontend?: Readonly<Record<string, string>>;
  /** Extra backend entries (libxl's `bents`), e.g. `{ params: "disk.img", mode: "w" }`. */
  readonly backend?: Readonly<Record<string, string>>;
}

/** The frontend and backend directories of a device. */
export function xenbusDevicePaths(spec: Pick<XenbusDeviceSpec, "kind" | "frontendDomid" | "backendDomid" | "devid">): { frontend: string; backend: string } {
  return {
    frontend: `${domainPath(spec.frontendDomid)}/device/${spec.kind}/${spec.devid}`,
    backend: `${domainPath(spec.backendDomid)}/backend/${spec.kind}/${spec.frontendDomid}/${spec.devid}`,
  };
}

async function rmIfPresent(tx: XenStoreOps, path: string): Promise<void> {
  try {
    await tx.rm(path);
  } catch (e) {
    if (!(e instanceof XenError && e.errno === XEN_ERRNO.ENOENT)) throw e;
  }
}

/**
 * Creates both directories in one transaction (replacing leftovers), as a privileged
 * toolstack does. Returns their paths. **Errors:** XenError from xenstore (EACCES when `xs` is
 * not privileged enough).
 */
export async function addXenbusDevice(xs: XenStore, spec: XenbusDeviceSpec): Promise<{ frontend: string; backend: string }> {
  const paths = xenbusDevicePaths(spec);
  const fe = spec.frontendDomid;
  const be = spec.backendDomid;
  const initialising = String(XENBUS_STATE.Initialising);
  await xs.transaction(async (tx) => {
    await rmIfPresent(tx, paths.frontend);
    await tx.mkdir(paths.frontend);
    await tx.setPermissions(paths.frontend, [{ domid: fe, access: "n" }, { domid: be, access: "r" }]);
    const front: Record<string, string> = { backend: paths.backend, "backend-id": String(be), state: initialising, ...spec.frontend };
    for (const [k, v] of Object.entries(front)) await tx.write(`${paths.frontend}/${k}`, v);
    await rmIfPresent(tx, paths.backend);
    await tx.mkdir(paths.backend);
    await tx.setPermissions(paths.backend, [{ domid: be, access: "n" }, { domid: fe, access: "r" }]);
    const back: Record<string, string> = { frontend: paths.frontend, "frontend-id": String(fe), online: "1", state: initialising, ...spec.backend };
    for (const [k, v] of Object.entries(back)) await tx.write(`${paths.backend}/${k}`, v);
  });
  return paths;
}

/** Removes both directories of a device (libxl__device_destroy's xenstore part). */
export async function removeXenbusDevice(xs: XenStore, spec: Pick<XenbusDeviceSpec, "kind" | "frontendDomid" | "backendDomid" | "devid">): Promise<void> {
  const paths = xenbusDevicePaths(spec);
  await xs.transaction(async (tx) => {
    await rmIfPresent(tx, paths.frontend);
    await rmIfPresent(tx, paths.backend);
  });
}
