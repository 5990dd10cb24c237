import type { DomId } from "@paravirt/vm-interfaces";
import type { InMemoryXen } from "./inMemoryXen.ts";

export interface AddDeviceOptions {
  /** Device class: `vbd`, `vif`, `console`, ... */
  readonly kind: string;
  readonly frontendDomid: DomId;
  readonly backendDomid: DomId;
  /** Device id: for a vbd the virtual-device number (51712 = xvda). */
  readonly devid: number;
  /** Extra keys of the frontend directory. */
  readonly frontend?: Readonly<Record<string, string>>;
  /** Extra keys of the backend directory (`mode`, `params`, `dev`, ...). */
  readonly backend?: Readonly<Record<string, string>>;
}

export interface DevicePaths {
  readonly frontendPath: string;
  readonly backendPath: string;
}

/**
 * Does what libxl does to plug a PV device: creates the frontend directory
 * `/local/domain/<F>/device/<kind>/<devid>` (owned by the frontend, readable by the backend)
 * and the backend directory `/local/domain/<B>/backend/<kind>/<F>/<devid>` (owned by the
 * backend, readable by the frontend), cross-linked with `backend`/`backend-id` and
 * `frontend`/`frontend-id`, both in state 1 (Initialising) and the backend `online`.
 */
export async function addDevice(xen: InMemoryXen, o: AddDeviceOptions): Promise<DevicePaths> {
  const xs = xen.toolstackStore();
  const frontendPath = `/local/domain/${o.frontendDomid}/device/${o.kind}/${o.devid}`;
  const backendPath = `/local/domain/${o.backendDomid}/backend/${o.kind}/${o.frontendDomid}/${o.devid}`;
  await xs.transaction(async (tx) => {
    await tx.rm(frontendPath).catch(() => {});
    await tx.rm(backendPath).catch(() => {});
    const front: Record<string, string> = {
      backend: backendPath, "backend-id": String(o.backendDomid), state: "1", "virtual-device": String(o.devid), ...o.frontend,
    };
    const back: Record<string, string> = {
      frontend: frontendPath, "frontend-id": String(o.frontendDomid), online: "1", state: "1", ...o.backend,
    };
    await tx.mkdir(frontendPath);
    await tx.setPermissions(frontendPath, [{ domid: o.frontendDomid, access: "n" }, { domid: o.backendDomid, access: "r" }]);
    for (const [k, v] of Object.entries(front)) await tx.write(`${frontendPath}/${k}`, v);
    await tx.mkdir(backendPath);
    await tx.setPermissions(backendPath, [{ domid: o.backendDomid, access: "n" }, { domid: o.frontendDomid, access: "r" }]);
    for (const [k, v] of Object.entries(back)) await tx.write(`${backendPath}/${k}`, v);
  });
  return { frontendPath, backendPath };
}

/** What libxl does to unplug: the backend goes offline and is asked to close (state 5). */
export async function removeDevice(xen: InMemoryXen, paths: DevicePaths): Promise<void> {
  const xs = xen.toolstackStore();
  await xs.write(`${paths.backendPath}/online`, "0");
  await xs.write(`${paths.backendPath}/state`, "5");
}
