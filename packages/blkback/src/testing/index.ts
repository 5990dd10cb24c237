/**
 * Test doubles for blkif backends: a raw frontend that can write anything on the ring.
 * @packageDocumentation
 */
export { RawBlkifFrontend, type RawBlkifFrontendOptions } from "./rawFrontend.ts";
