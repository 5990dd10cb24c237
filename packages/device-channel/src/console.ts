/**
 * The PV console page [xen/include/public/io/console.h `struct xencons_interface`]:
 * `char in[1024]; char out[2048]; XENCONS_RING_IDX in_cons, in_prod, out_cons, out_prod;`
 * The guest produces `out` and consumes `in`; the console backend does the opposite.
 */
import { ByteRing, type ByteRingLayout } from "./byteRing.ts";

export const XENCONS_INTERFACE = {
  IN: 0,
  IN_SIZE: 1024,
  OUT: 1024,
  OUT_SIZE: 2048,
  IN_CONS: 3072,
  IN_PROD: 3076,
  OUT_CONS: 3080,
  OUT_PROD: 3084,
  /** sizeof(struct xencons_interface) */
  SIZE: 3088,
} as const;

/** Guest output: guest → console backend. */
export const XENCONS_OUT: ByteRingLayout = {
  data: XENCONS_INTERFACE.OUT,
  size: XENCONS_INTERFACE.OUT_SIZE,
  cons: XENCONS_INTERFACE.OUT_CONS,
  prod: XENCONS_INTERFACE.OUT_PROD,
};

/** Guest input: console backend → guest. */
export const XENCONS_IN: ByteRingLayout = {
  data: XENCONS_INTERFACE.IN,
  size: XENCONS_INTERFACE.IN_SIZE,
  cons: XENCONS_INTERFACE.IN_CONS,
  prod: XENCONS_INTERFACE.IN_PROD,
};

/** The two directions of a console page. */
export function consoleRings(page: Uint8Array): { out: ByteRing; in: ByteRing } {
  return { out: new ByteRing(page, XENCONS_OUT), in: new ByteRing(page, XENCONS_IN) };
}
