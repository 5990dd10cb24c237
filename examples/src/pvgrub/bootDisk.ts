/**
 * A boot disk for PV GRUB, built on the host with Debian's e2fsprogs: a raw image with an MBR
 * partition table [the classic PC MBR: 4 entries of 16 bytes at 446, signature 0x55 0xAA at 510]
 * and one Linux (0x83) partition at 1 MiB holding an ext2 file system made by
 * `mke2fs -t ext2 -d <dir>` with `/boot/grub/grub.cfg`. GRUB's embedded configuration searches
 * for that file and runs it (pv-grub.md §5).
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

/** The grub.cfg of the demo: a marker, then `halt` (SCHEDOP_shutdown(poweroff)). */
export const MARKER_GRUB_CFG = "echo PVGRUB-MARKER-OK\nhalt\n";

export interface BootDiskOptions {
  /** Contents of /boot/grub/grub.cfg (default {@link MARKER_GRUB_CFG}); null: no grub.cfg (GRUB stops at its prompt). */
  grubCfg?: string | null;
  /** More files, by path relative to the file system's root (e.g. "boot/data.bin"). */
  files?: Readonly<Record<string, string | Uint8Array>>;
  /** Partition size in MiB (default 8). */
  partitionMiB?: number;
  /** mke2fs to run (default "mke2fs"). */
  mke2fs?: string;
}

/** First sector of the partition (1 MiB, as fdisk aligns). */
export const PARTITION_LBA = 2048;

/** Builds the disk image; throws if mke2fs fails. */
export function buildBootDisk(o: BootDiskOptions = {}): Uint8Array {
  const work = mkdtempSync(join(tmpdir(), "pvgrub-disk-"));
  try {
    const root = join(work, "root");
    mkdirSync(join(root, "boot", "grub"), { recursive: true });
    if (o.grubCfg !== null) writeFileSync(join(root, "boot", "grub", "grub.cfg"), o.grubCfg ?? MARKER_GRUB_CFG);
    for (const [path, data] of Object.entries(o.files ?? {})) {
      const at = join(root, ...path.split("/").filter((p) => p !== "" && p !== ".."));
      mkdirSync(dirname(at), { recursive: true });
      writeFileSync(at, data);
    }
    const partBytes = (o.partitionMiB ?? 8) << 20;
    const part = join(work, "part.img");
    writeFileSync(part, new Uint8Array(0));
    const r = spawnSync(o.mke2fs ?? "mke2fs", ["-q", "-F", "-t", "ext2", "-b", "1024", "-L", "PVGRUB", "-U", "5e2a9c3d-0000-4000-8000-000000000001", "-E", "root_owner=0:0", "-d", root, part, String(partBytes / 1024)], {
      stdio: "pipe",
      env: { ...process.env, E2FSPROGS_FAKE_TIME: "1700000000" },
    });
    if (r.status !== 0) throw new Error(`mke2fs failed: ${r.error?.message ?? r.stderr.toString()}`);
    const fs = readFileSync(part);
    const disk = new Uint8Array(PARTITION_LBA * 512 + fs.length);
    disk.set(fs, PARTITION_LBA * 512);
    writeMbr(disk, PARTITION_LBA, fs.length / 512, 0x83);
    return disk;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Writes an MBR with one active partition of `type` at `lba`, `sectors` long (LBA only; CHS fields say "use LBA"). */
export function writeMbr(disk: Uint8Array, lba: number, sectors: number, type: number): void {
  const dv = new DataView(disk.buffer, disk.byteOffset, 512);
  dv.setUint32(440, 0x50564752, true); // disk signature ("RGVP")
  const e = 446;
  disk[e] = 0x80; // active
  disk.set([0xfe, 0xff, 0xff], e + 1); // CHS start: beyond 1024 cylinders, use LBA
  disk[e + 4] = type;
  disk.set([0xfe, 0xff, 0xff], e + 5); // CHS end
  dv.setUint32(e + 8, lba, true);
  dv.setUint32(e + 12, sectors, true);
  disk[510] = 0x55;
  disk[511] = 0xaa;
}
