/**
 * PHY access through MDIC: write the opcode, PHY address and register, poll READY, check
 * ERROR [8254x SDM 13.4.7]; and the copper link setup Linux's e1000 does for the 82540EM's
 * internal PHY: advertise 10/100 half/full and 1000 full, automatic MDI/MDI-X, restart
 * autonegotiation [8254x SDM 8.1; IEEE 802.3 clause 28].
 */
import type { MmioWindow } from "@paravirt/vm-interfaces";
import type { Sleep } from "./eeprom.ts";
import { E1000_REG, MDIC, PHY_ADDR, PHY_ADVERTISE, PHY_CTRL, PHY_REG, PHY_SPEC_CTRL_AUTO_MDIX } from "./registers.ts";

/** MDIC polls: an MDI cycle takes about 64 µs at the MDC rate [8254x SDM 13.4.7]. */
const MDIC_POLLS = 64;
const MDIC_POLL_NS = 10_000;

/** Reads PHY register `reg`; undefined when READY never comes or ERROR is set. */
export async function phyRead(regs: MmioWindow, reg: number, sleep: Sleep): Promise<number | undefined> {
  regs.writel(E1000_REG.MDIC, ((reg << MDIC.REG_SHIFT) | (PHY_ADDR << MDIC.PHY_SHIFT) | MDIC.OP_READ) >>> 0);
  for (let i = 0; i < MDIC_POLLS; i++) {
    const v = regs.readl(E1000_REG.MDIC);
    if ((v & MDIC.READY) !== 0) return (v & MDIC.ERROR) !== 0 ? undefined : v & MDIC.DATA_MASK;
    await sleep(MDIC_POLL_NS);
  }
  return undefined;
}

/** Writes PHY register `reg`; false when READY never comes or ERROR is set. */
export async function phyWrite(regs: MmioWindow, reg: number, value: number, sleep: Sleep): Promise<boolean> {
  regs.writel(E1000_REG.MDIC, ((value & MDIC.DATA_MASK) | (reg << MDIC.REG_SHIFT) | (PHY_ADDR << MDIC.PHY_SHIFT) | MDIC.OP_WRITE) >>> 0);
  for (let i = 0; i < MDIC_POLLS; i++) {
    const v = regs.readl(E1000_REG.MDIC);
    if ((v & MDIC.READY) !== 0) return (v & MDIC.ERROR) === 0;
    await sleep(MDIC_POLL_NS);
  }
  return false;
}

/** What the PHY setup found. */
export interface PhyInfo {
  /** PHY ID1 << 16 | ID2, or undefined when the PHY did not answer. */
  readonly id: number | undefined;
  /** Whether autonegotiation was (re)started. */
  readonly autonegRestarted: boolean;
}

/**
 * Copper link setup: identify the PHY, power it up, program the advertisement and M88
 * crossover, then enable and restart autonegotiation. The link comes up later (LSC).
 */
export async function setupCopperPhy(regs: MmioWindow, sleep: Sleep, restartAutoneg: boolean): Promise<PhyInfo> {
  const id1 = await phyRead(regs, PHY_REG.ID1, sleep);
  const id2 = await phyRead(regs, PHY_REG.ID2, sleep);
  if (id1 === undefined || id2 === undefined) return { id: undefined, autonegRestarted: false };
  const id = ((id1 << 16) | id2) >>> 0;
  const ctrl = await phyRead(regs, PHY_REG.CTRL, sleep);
  if (ctrl === undefined) return { id, autonegRestarted: false };
  // Power up (clear POWER_DOWN) and leave loopback [8254x SDM 8.1.1].
  let bmcr = ctrl & ~(PHY_CTRL.POWER_DOWN | PHY_CTRL.LOOPBACK);
  if (!restartAutoneg) {
    if (bmcr !== ctrl) await phyWrite(regs, PHY_REG.CTRL, bmcr, sleep);
    return { id, autonegRestarted: false };
  }
  await phyWrite(regs, PHY_REG.SPEC_CTRL, ((await phyRead(regs, PHY_REG.SPEC_CTRL, sleep)) ?? 0) | PHY_SPEC_CTRL_AUTO_MDIX, sleep);
  await phyWrite(regs, PHY_REG.AUTONEG_ADV, PHY_ADVERTISE.AUTONEG_ADV, sleep);
  await phyWrite(regs, PHY_REG.GIG_CTRL, PHY_ADVERTISE.GIG_CTRL, sleep);
  bmcr |= PHY_CTRL.AN_ENABLE | PHY_CTRL.RESTART_AN;
  const ok = await phyWrite(regs, PHY_REG.CTRL, bmcr, sleep);
  return { id, autonegRestarted: ok };
}
