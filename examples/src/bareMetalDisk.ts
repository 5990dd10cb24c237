/**
 * Example: the ATA driver on bare metal. No hypervisor: the driver sees the board directly
 * (BareMetalPlatform) and drives hw-ide's PIIX function, whose disk is a raw image file.
 * The same driver package runs unchanged in dom0 in the Xen 2.0 example.
 */
import { PcBoard, BareMetalPlatform, trackBlockDevice } from "@paravirt/pc-board";
import { AtaDisk as IdeDisk, PiixIde } from "@paravirt/hw-ide";
import { probeAta, type AtaDisk } from "@paravirt/driver-ata";
import type { BlockDevice } from "@paravirt/vm-interfaces";

export interface BareMetalMachine {
  board: PcBoard;
  platform: BareMetalPlatform;
  ide: PiixIde;
  /** The disk as the driver serves it. */
  disk: AtaDisk;
  /** Runs the machine until `p` settles and returns its value. */
  run<T>(p: Promise<T>): Promise<T>;
}

/** Builds a PC with a PIIX IDE controller whose primary master is `image`, and probes it with the driver. */
export async function bootBareMetalDisk(image: BlockDevice, options: { ramBytes?: number } = {}): Promise<BareMetalMachine> {
  const board = new PcBoard({ ramBytes: options.ramBytes ?? 64 << 20 });
  const ide = new PiixIde({
    memory: board.memory,
    timers: board.clock,
    irq14: board.irqLine(14),
    irq15: board.irqLine(15),
    primary: { master: new IdeDisk(trackBlockDevice(image, board.hostIo)) },
  });
  ide.registerLegacyPorts(board.ports);
  board.plugPci(1, ide, 1);
  board.boot();
  const platform = new BareMetalPlatform(board);
  const run = async <T>(p: Promise<T>): Promise<T> => {
    let settled = false;
    const watched = p.finally(() => {
      settled = true;
    });
    await board.run(() => settled);
    return watched;
  };
  const [controller] = await run(probeAta(platform));
  const disk = controller?.disks[0];
  if (disk === undefined) throw new Error("the ATA driver found no disk");
  return { board, platform, ide, disk, run };
}
