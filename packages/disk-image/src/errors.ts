/** Why an image could not be opened or created. */
export type DiskImageErrorKind =
  /** The file does not exist (and `create` was not given). */
  | "not-found"
  /** `create` was given but the path already exists. */
  | "exists"
  /** The process may not open the file in the requested mode (EACCES, EPERM, EROFS). */
  | "permission"
  /** The path names a directory or something else that is not a regular file. */
  | "not-a-file"
  /** The file is empty or not a whole number of sectors. */
  | "size"
  /** Any other failure of the operating system while opening or creating. */
  | "io";

/**
 * An image file that cannot be used. Thrown by `RawImageFile.open`; requests on an open
 * device reject with the vm-interfaces `BlockError` instead.
 */
export class DiskImageError extends Error {
  override readonly name = "DiskImageError";
  readonly kind: DiskImageErrorKind;
  readonly path: string;
  constructor(kind: DiskImageErrorKind, path: string, message: string, options?: { cause?: unknown }) {
    super(`${path}: ${message}`, options);
    this.kind = kind;
    this.path = path;
  }
}

/** The `code` of a Node.js system error, if `e` is one. */
export function errnoCode(e: unknown): string | undefined {
  if (typeof e === "object" && e !== null && "code" in e && typeof (e as { code: unknown }).code === "string") {
    return (e as { code: string }).code;
  }
  return undefined;
}
