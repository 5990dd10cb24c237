/**
 * The 82540EM's internal copper PHY (M88E1011-compatible) as software sees it through MDIC.
 *
 * References: [8254x SDM 8] PHY registers (table 8-1): 0 control, 1 status, 2/3 identifier,
 * 4 autoneg advertisement, 5 link partner ability, 6 autoneg expansion, 9 1000BASE-T control,
 * 10 1000BASE-T status, 0x10 port control, 0x11 port status, 0x14 extended control,
 * 0x15 receive error counter. Reset values as QEMU reports them (devices.md §1.4).
 * Only PHY address 1 answers [8254x SDM 13.4.7].
 */

/** MII register numbers [8254x SDM 8, table 8-1]. */
export const PHY_REG = {
  CTRL: 0x00, // PHY Control (BMCR)
  STATUS: 0x01, // PHY Status (BMSR)
  ID1: 0x02, // PHY Identifier 1
  ID2: 0x03, // PHY Identifier 2
  AUTONEG_ADV: 0x04, // Autonegotiation Advertisement
  LP_ABILITY: 0x05, // Link Partner Ability
  AUTONEG_EXP: 0x06, // Autonegotiation Expansion
  NEXT_PAGE_TX: 0x07, // Next Page Transmit
  LP_NEXT_PAGE: 0x08,
  GIG_CTRL: 0x09, // 1000BASE-T Control
  GIG_STATUS: 0x0a, // 1000BASE-T Status
  EXT_STATUS: 0x0f, // Extended Status
  SPEC_CTRL: 0x10, // PHY Specific Control
  SPEC_STATUS: 0x11, // PHY Specific Status
  INT_ENABLE: 0x12,
  INT_STATUS: 0x13,
  EXT_SPEC_CTRL: 0x14, // Extended PHY Specific Control
  RX_ERR_CNT: 0x15, // Receive Error Counter
} as const;

/** PHY address the 82540EM's internal PHY answers at [8254x SDM 13.4.7]. */
export const PHY_ADDRESS = 1;

/** PHY Control bits [8254x SDM 8.1.1, IEEE 802.3 22.2.4.1]. */
export const PHY_CTRL = {
  SPEED_MSB: 1 << 6,
  COLL_TEST: 1 << 7,
  FULL_DUPLEX: 1 << 8,
  RESTART_AN: 1 << 9, // self-clearing
  ISOLATE: 1 << 10,
  POWER_DOWN: 1 << 11,
  AN_ENABLE: 1 << 12,
  SPEED_LSB: 1 << 13,
  LOOPBACK: 1 << 14,
  RESET: 1 << 15, // self-clearing
} as const;

/** PHY Status bits [8254x SDM 8.1.2, IEEE 802.3 22.2.4.2]. */
export const PHY_STATUS = {
  EXT_CAPS: 1 << 0,
  LINK_UP: 1 << 2,
  AN_ABILITY: 1 << 3,
  REMOTE_FAULT: 1 << 4,
  AN_COMPLETE: 1 << 5,
  PREAMBLE_SUPPRESS: 1 << 6,
} as const;

/** Marvell PHY identifier: OUI 0x005043, model 0x02 (M88E1011) [8254x SDM 8.1.3/8.1.4]. */
export const PHY_ID = { ID1: 0x0141, ID2: 0x0c20 } as const;

/** M88 PHY Specific Status: speed and duplex resolved, link up (real time) [8254x SDM 8.1.13]. */
const PSSR_RESOLVED = 1 << 11;
const PSSR_LINK = 1 << 10;

/** Link partner "acknowledge" bit, set once autonegotiation completed [IEEE 802.3 28.2.4.1.3]. */
const LPA_ACK = 1 << 14;

type Access = 0 | 1 | 3; // none, read-only, read-write
const R = 1 as const;
const RW = 3 as const;

/** Which registers exist and which are writable (devices.md §1.4; other registers → MDIC.ERROR). */
const CAPS: readonly Access[] = (() => {
  const c: Access[] = new Array<Access>(32).fill(0);
  c[PHY_REG.CTRL] = RW;
  c[PHY_REG.STATUS] = R;
  c[PHY_REG.ID1] = R;
  c[PHY_REG.ID2] = R;
  c[PHY_REG.AUTONEG_ADV] = RW;
  c[PHY_REG.LP_ABILITY] = R;
  c[PHY_REG.AUTONEG_EXP] = R;
  c[PHY_REG.GIG_CTRL] = RW;
  c[PHY_REG.GIG_STATUS] = R;
  c[PHY_REG.SPEC_CTRL] = RW;
  c[PHY_REG.SPEC_STATUS] = R;
  c[PHY_REG.EXT_SPEC_CTRL] = RW;
  c[PHY_REG.RX_ERR_CNT] = R;
  return c;
})();

/** Reset values (devices.md §1.4, QEMU observed; STATUS gets link/AN bits from the link state). */
const RESET: readonly [number, number][] = [
  [PHY_REG.CTRL, 0x1140],
  [PHY_REG.STATUS, 0x7949], // 10/100/1000 capable, AN able, preamble suppression, ext caps
  [PHY_REG.ID1, PHY_ID.ID1],
  [PHY_REG.ID2, PHY_ID.ID2],
  [PHY_REG.AUTONEG_ADV, 0x0de1],
  [PHY_REG.LP_ABILITY, 0x01e0],
  [PHY_REG.GIG_CTRL, 0x0e00],
  [PHY_REG.GIG_STATUS, 0x3c00],
  [PHY_REG.SPEC_CTRL, 0x0360],
  [PHY_REG.SPEC_STATUS, 0xac00],
  [PHY_REG.EXT_SPEC_CTRL, 0x0d60],
];

/** Saved PHY state. */
export interface PhyState {
  regs: number[];
  autonegDone: boolean;
}

/**
 * PHY register file plus autonegotiation state. `onRestartAutoneg` is called when software
 * restarts autonegotiation or resets the PHY; the core decides when it completes.
 */
export class Phy {
  readonly regs = new Uint16Array(32);
  /** Autonegotiation finished with the link partner (BMSR.AN_COMPLETE). */
  autonegDone = false;
  private readonly onRestart: () => void;

  constructor(onRestartAutoneg: () => void) {
    this.onRestart = onRestartAutoneg;
    this.reset();
  }

  reset(): void {
    this.regs.fill(0);
    for (const [r, v] of RESET) this.regs[r] = v;
    this.autonegDone = false;
  }

  /** Whether the PHY is powered down (BMCR.PDOWN): no link then. */
  get poweredDown(): boolean {
    return (this.regs[PHY_REG.CTRL]! & PHY_CTRL.POWER_DOWN) !== 0;
  }

  /** Link partner settled: autonegotiation complete, or autonegotiation disabled (forced speed). */
  get negotiated(): boolean {
    return this.autonegDone || (this.regs[PHY_REG.CTRL]! & PHY_CTRL.AN_ENABLE) === 0;
  }

  /** Whether frames transmitted loop back to the receiver (BMCR.LOOPBACK). */
  get loopback(): boolean {
    return (this.regs[PHY_REG.CTRL]! & PHY_CTRL.LOOPBACK) !== 0;
  }

  /** Updates the link-dependent status bits. */
  setLink(up: boolean): void {
    let st = this.regs[PHY_REG.STATUS]! & ~(PHY_STATUS.LINK_UP | PHY_STATUS.AN_COMPLETE);
    let lpa = this.regs[PHY_REG.LP_ABILITY]! & ~LPA_ACK;
    if (up) st |= PHY_STATUS.LINK_UP;
    if (up && this.autonegDone) {
      st |= PHY_STATUS.AN_COMPLETE;
      lpa |= LPA_ACK;
    }
    this.regs[PHY_REG.STATUS] = st;
    this.regs[PHY_REG.LP_ABILITY] = lpa;
    // M88 PHY specific status: speed/duplex resolved (bit 11) and real-time link (bit 10)
    // follow the link [8254x SDM 8.1.13]; speed 1000 and full duplex stay as negotiated.
    const pssr = this.regs[PHY_REG.SPEC_STATUS]! & ~(PSSR_RESOLVED | PSSR_LINK);
    this.regs[PHY_REG.SPEC_STATUS] = up ? pssr | PSSR_RESOLVED | PSSR_LINK : pssr;
  }

  /** MDIC read; `undefined` for a register that does not exist (MDIC.ERROR). */
  read(reg: number): number | undefined {
    if ((CAPS[reg & 31]! & R) === 0) return undefined;
    return this.regs[reg & 31]!;
  }

  /** MDIC write; false for a register that is not writable (MDIC.ERROR). */
  write(reg: number, value: number): boolean {
    reg &= 31;
    if (CAPS[reg] !== RW) return false;
    if (reg === PHY_REG.CTRL) {
      if ((value & PHY_CTRL.RESET) !== 0) {
        // Software reset: registers keep their configuration bits, autonegotiation restarts
        // when enabled [IEEE 802.3 22.2.4.1.1].
        this.regs[reg] = value & ~(PHY_CTRL.RESET | PHY_CTRL.RESTART_AN | 0x3f);
        if ((value & PHY_CTRL.AN_ENABLE) !== 0) this.onRestart();
        return true;
      }
      this.regs[reg] = value & ~(PHY_CTRL.RESTART_AN | 0x3f);
      if ((value & (PHY_CTRL.RESTART_AN)) !== 0 && (value & PHY_CTRL.AN_ENABLE) !== 0) this.onRestart();
      return true;
    }
    this.regs[reg] = value & 0xffff;
    return true;
  }

  saveState(): PhyState {
    return { regs: Array.from(this.regs), autonegDone: this.autonegDone };
  }

  restoreState(s: PhyState): void {
    if (!Array.isArray(s.regs) || s.regs.length !== 32) throw new TypeError("bad PHY state");
    this.regs.set(s.regs);
    this.autonegDone = s.autonegDone;
  }
}
