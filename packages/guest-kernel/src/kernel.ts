/**
 * The kernel of a native domain: what a TypeScript guest or driver domain runs on. It holds
 * the domain's Xen services (event channels, grants, xenstore, pages), its driver platform
 * when it is given hardware, xenbus (front- and back-end binding), and registries of the
 * block and net devices its drivers provide — the same shape whether the devices come from a
 * vanilla driver on real (emulated) hardware or from a front end.
 */
import type { BlockDevice, DriverPlatform, NetDevice, Port, XenServices } from "@paravirt/vm-interfaces";
import { XenstoreClient, evtchnPort } from "@paravirt/xenstore";
import { DeviceRegistry } from "./registry.ts";
import { XenbusBackends, XenbusFrontends } from "./xenbus.ts";

export interface NativeKernelOptions {
  /** A name for logs ("dom0", "domU1"). */
  name: string;
  xen: XenServices;
  /** The hardware access a privileged domain was given, if any. */
  platform?: DriverPlatform;
  /** Where kernel log lines go (a console ring writer, or the host's stdout). */
  log?: (line: string) => void;
}

/** What a native kernel boots from: its Xen services and the start_info fields it needs. */
export interface NativeBootOptions {
  name: string;
  /** Event channels, grant table and pages of the domain (xenstore is connected by boot). */
  services: Omit<XenServices, "xenstore">;
  /** start_info.store_mfn's page as the domain sees it (io/xs_wire.h ring page). */
  storePage: Uint8Array;
  /** start_info.store_evtchn. */
  storePort: Port;
  platform?: DriverPlatform;
  log?: (line: string) => void;
}

export class NativeKernel {
  /**
   * Boots a kernel from start_info: connects the xenstore client over the store page and
   * event channel the domain builder set up, then brings up xenbus and the registries.
   */
  static boot(o: NativeBootOptions): NativeKernel {
    const xenstore = new XenstoreClient(evtchnPort(o.services.evtchn, o.storePort, o.storePage));
    const xen: XenServices = { ...o.services, domid: o.services.domid, xenstore };
    return new NativeKernel({ name: o.name, xen, ...(o.platform ? { platform: o.platform } : {}), ...(o.log ? { log: o.log } : {}) });
  }

  readonly name: string;
  readonly xen: XenServices;
  readonly platform: DriverPlatform | undefined;
  readonly blockDevices = new DeviceRegistry<BlockDevice>();
  readonly netDevices = new DeviceRegistry<NetDevice>();
  readonly backends: XenbusBackends;
  readonly frontends: XenbusFrontends;
  private readonly sink: (line: string) => void;
  /** Every line logged, in order. */
  readonly dmesg: string[] = [];

  constructor(options: NativeKernelOptions) {
    this.name = options.name;
    this.xen = options.xen;
    this.platform = options.platform;
    this.sink = options.log ?? (() => {});
    const log = (line: string) => this.log(line);
    this.backends = new XenbusBackends(this.xen, log);
    this.frontends = new XenbusFrontends(this.xen, log);
  }

  /** The domain id. */
  get domid(): number {
    return this.xen.domid;
  }

  log(line: string): void {
    this.dmesg.push(line);
    this.sink(line);
  }

  /** Stops xenbus drivers (front ends close, back ends disconnect). */
  async shutdown(): Promise<void> {
    await this.frontends.shutdown();
    await this.backends.shutdown();
  }
}
