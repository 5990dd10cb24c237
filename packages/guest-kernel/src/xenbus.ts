/**
 * xenbus, the split-driver bus of a Xen kernel [Linux drivers/xen/xenbus/xenbus_probe_*.c]:
 * a back-end domain watches `backend/<type>` in its xenstore home and binds a back-end driver
 * to every `<frontend-domid>/<devid>` the toolstack creates there; a front-end domain lists
 * `device/<type>` and binds a front-end driver to each device. Drivers register by device
 * type (`vbd`, `vif`).
 */
import { XENBUS_STATE } from "@paravirt/device-channel";
import { xsReadOptional, XenError, XEN_ERRNO, type DomId, type XenServices } from "@paravirt/vm-interfaces";
import { readState } from "@paravirt/xenstore";

/** What a back-end driver is given for one device. */
export interface BackendDevice {
  xen: XenServices;
  frontendDomid: DomId;
  devid: number;
  /** Absolute xenstore path of the back-end directory. */
  backendPath: string;
  /** The front end's directory, from the `frontend` key. */
  frontendPath: string;
}

/** A bound back-end instance. */
export interface BackendInstance {
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** What a front-end driver is given for one device. */
export interface FrontendDevice {
  xen: XenServices;
  devid: number;
  /** Absolute xenstore path of the device directory. */
  devicePath: string;
}

/** A bound front-end instance. */
export interface FrontendInstance {
  connect(): Promise<void>;
  close(): Promise<void>;
}

export type BackendDriver = (dev: BackendDevice) => BackendInstance;
export type FrontendDriver = (dev: FrontendDevice) => FrontendInstance;

async function directory(xen: XenServices, path: string): Promise<string[]> {
  try {
    return await xen.xenstore.directory(path);
  } catch (e) {
    if (e instanceof XenError && (e.errno === XEN_ERRNO.ENOENT || e.errno === XEN_ERRNO.EACCES)) return [];
    throw e;
  }
}

/** The back-end half of xenbus for one domain. */
export class XenbusBackends {
  private readonly xen: XenServices;
  private readonly home: string;
  private readonly drivers = new Map<string, BackendDriver>();
  private readonly bound = new Map<string, BackendInstance>();
  private readonly unwatch: (() => Promise<void>)[] = [];
  private readonly log: (line: string) => void;
  /** Scans run one after another, so a device is never bound twice. */
  private scanning: Promise<void> = Promise.resolve();
  /** Errors of drivers that failed to start, by back-end path. */
  readonly failures = new Map<string, unknown>();

  constructor(xen: XenServices, log: (line: string) => void = () => {}) {
    this.xen = xen;
    this.home = `/local/domain/${xen.domid}`;
    this.log = log;
  }

  /** Binds `driver` to every `backend/<type>` device, present and future. */
  async register(type: string, driver: BackendDriver): Promise<void> {
    this.drivers.set(type, driver);
    const root = `${this.home}/backend/${type}`;
    this.unwatch.push(await this.xen.xenstore.watch(root, () => void this.scan(type)));
    await this.scan(type);
  }

  private scan(type: string): Promise<void> {
    this.scanning = this.scanning.then(() => this.scanOnce(type)).catch((e: unknown) => {
      this.log(`xenbus: scanning backend/${type}: ${e instanceof Error ? e.message : String(e)}`);
    });
    return this.scanning;
  }

  /** The bound instance for `backendPath`. */
  instance(backendPath: string): BackendInstance | undefined {
    return this.bound.get(backendPath);
  }

  private async scanOnce(type: string): Promise<void> {
    const driver = this.drivers.get(type)!;
    const root = `${this.home}/backend/${type}`;
    for (const fe of await directory(this.xen, root)) {
      if (!/^\d+$/.test(fe)) continue;
      for (const dev of await directory(this.xen, `${root}/${fe}`)) {
        if (!/^\d+$/.test(dev)) continue;
        const backendPath = `${root}/${fe}/${dev}`;
        if (this.bound.has(backendPath) || this.failures.has(backendPath)) continue;
        const frontendPath = await xsReadOptional(this.xen.xenstore, `${backendPath}/frontend`);
        const online = await xsReadOptional(this.xen.xenstore, `${backendPath}/online`);
        if (frontendPath === undefined || online === "0") continue;
        if ((await readState(this.xen.xenstore, backendPath)) >= XENBUS_STATE.Closing) continue;
        const inst = driver({ xen: this.xen, frontendDomid: Number(fe), devid: Number(dev), backendPath, frontendPath });
        this.bound.set(backendPath, inst);
        this.log(`xenbus: ${type} back end for domain ${fe} device ${dev} bound`);
        try {
          await inst.start();
        } catch (e) {
          this.bound.delete(backendPath);
          this.failures.set(backendPath, e);
          this.log(`xenbus: ${backendPath}: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
    }
  }

  /** Stops every bound back end. */
  async shutdown(): Promise<void> {
    for (const u of this.unwatch.splice(0)) await u().catch(() => {});
    for (const inst of this.bound.values()) await inst.stop().catch(() => {});
    this.bound.clear();
  }
}

/** The front-end half of xenbus for one domain. */
export class XenbusFrontends {
  private readonly xen: XenServices;
  private readonly home: string;
  private readonly bound = new Map<string, FrontendInstance>();
  private readonly log: (line: string) => void;

  constructor(xen: XenServices, log: (line: string) => void = () => {}) {
    this.xen = xen;
    this.home = `/local/domain/${xen.domid}`;
    this.log = log;
  }

  /** Binds `driver` to every `device/<type>` device present now and connects each; returns them. */
  async probe(type: string, driver: FrontendDriver): Promise<{ devid: number; instance: FrontendInstance }[]> {
    const root = `${this.home}/device/${type}`;
    const out: { devid: number; instance: FrontendInstance }[] = [];
    for (const dev of await directory(this.xen, root)) {
      if (!/^\d+$/.test(dev)) continue;
      const devicePath = `${root}/${dev}`;
      if (this.bound.has(devicePath)) continue;
      const instance = driver({ xen: this.xen, devid: Number(dev), devicePath });
      this.bound.set(devicePath, instance);
      this.log(`xenbus: ${type} front end ${dev} bound`);
      await instance.connect();
      out.push({ devid: Number(dev), instance });
    }
    return out;
  }

  async shutdown(): Promise<void> {
    for (const inst of this.bound.values()) await inst.close().catch(() => {});
    this.bound.clear();
  }
}
