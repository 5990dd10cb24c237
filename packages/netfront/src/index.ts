/**
 * @paravirt/netfront: the netif front end, a net device for its guest.
 * @packageDocumentation
 */
export { Netfront, type NetfrontOptions, type NetfrontStats } from "./netfront.ts";
