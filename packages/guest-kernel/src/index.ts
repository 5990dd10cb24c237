/**
 * @paravirt/guest-kernel: the kernel of a native Xen domain.
 * @packageDocumentation
 */
export { NativeKernel, type NativeBootOptions, type NativeKernelOptions } from "./kernel.ts";
export { DeviceRegistry } from "./registry.ts";
export {
  XenbusBackends, XenbusFrontends, type BackendDevice, type BackendDriver, type BackendInstance, type FrontendDevice,
  type FrontendDriver, type FrontendInstance,
} from "./xenbus.ts";
