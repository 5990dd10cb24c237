/**
 * @paravirt/netback: the netif back end.
 * @packageDocumentation
 */
export { Netback, fillChecksum, type NetbackOptions, type NetbackStats } from "./netback.ts";
export { peekPacketSlots, takePacket, ETH_HLEN, type TxPacket } from "./txPacket.ts";
