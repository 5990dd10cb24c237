/**
 * @paravirt/net-bridge: a learning Ethernet bridge.
 * @packageDocumentation
 */
export { Bridge, type BridgeOptions, type BridgePortStats } from "./bridge.ts";
