/**
 * Runner for the SingleStepTests 80286 real-mode suite (see /work/shared/conformance/README.md):
 * loads each case's initial state into an X86Cpu in real mode, runs until the HLT that follows
 * the instruction has executed, and compares registers, undefined-flag-masked FLAGS and RAM.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import { FlatMemory } from "@paravirt/vm-interfaces/testing";
import { X86Cpu, SEG } from "../src/index.ts";

/**
 * Where the recorded cases are: `SST_80286_DIR`, else `shared/` beside the repository's clone
 * (as CI and the development machines lay it out), else /work/shared. Undefined when none exists.
 */
export const SST_DIR: string | undefined = [
  process.env["SST_80286_DIR"],
  fileURLToPath(new URL("../../../../shared/conformance/sst-80286-real", import.meta.url)),
  "/work/shared/conformance/sst-80286-real",
].find((d): d is string => d !== undefined && existsSync(d));

function sstDir(): string {
  if (SST_DIR === undefined) throw new Error("SingleStepTests 80286 cases not found (SST_80286_DIR)");
  return SST_DIR;
}

interface Regs {
  ax?: number; bx?: number; cx?: number; dx?: number; cs?: number; ss?: number; ds?: number; es?: number;
  sp?: number; bp?: number; si?: number; di?: number; ip?: number; flags?: number;
}
interface SstCase {
  name: string;
  bytes: number[];
  initial: { regs: Required<Regs>; ram: [number, number][] };
  final: { regs: Regs; ram: [number, number][] };
  exception?: { number: number; flag_address: number };
  hash: string;
  idx: number;
}

export interface CaseResult {
  readonly idx: number;
  readonly hash: string;
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
  /** Exception vector this CPU delivered, -1 for none. */
  readonly raised: number;
  /** Exception vector the 286 delivered, -1 for none. */
  readonly expected: number;
  readonly bytes: readonly number[];
}

/** The opcode files of the suite (names without `.json.gz`). */
export function sstFiles(): string[] {
  return readdirSync(sstDir())
    .filter((f) => f.endsWith(".json.gz"))
    .map((f) => f.slice(0, -".json.gz".length))
    .sort();
}

let metadata: { opcodes: Record<string, { "flags-mask"?: number; reg?: Record<string, { "flags-mask"?: number }> }> } | undefined;

/** The undefined-flags mask for an opcode file name like "80.4" or "27". */
export function flagsMask(file: string): number {
  metadata ??= JSON.parse(readFileSync(join(sstDir(), "metadata.json"), "utf8"));
  const [op, reg] = file.split(".");
  const m = metadata!.opcodes[op!];
  if (m === undefined) return 0xffff;
  if (reg !== undefined) return m.reg?.[reg]?.["flags-mask"] ?? 0xffff;
  return m["flags-mask"] ?? 0xffff;
}

// 16 MiB plus the 64 KiB a real-mode segment can reach above it.
const mem = new FlatMemory(0x1000000 + 0x10000);
const cpu = new X86Cpu({ memory: mem, ramSize: mem.bytes.length });

const REG16: [keyof Regs, number][] = [["ax", 0], ["cx", 1], ["dx", 2], ["bx", 3], ["sp", 4], ["bp", 5], ["si", 6], ["di", 7]];
const SEGS: [keyof Regs, number][] = [["es", SEG.ES], ["cs", SEG.CS], ["ss", SEG.SS], ["ds", SEG.DS]];

/** The 286 keeps FLAGS bits 12-15 clear in real mode; compare only bits 0-11. */
const FLAGS_286 = 0x0fff;

function runCase(t: SstCase, mask: number): CaseResult {
  const bytes = mem.bytes;
  for (const [a, v] of t.initial.ram) bytes[a] = v;
  cpu.reset();
  cpu.lastException = -1;
  const r = t.initial.regs;
  for (const [k, i] of REG16) cpu.regs[i] = r[k];
  for (const [k, s] of SEGS) cpu.setSegment(s, { selector: r[k], base: r[k] << 4, limit: 0xffff, attributes: s === SEG.CS ? 0x9b : 0x93 });
  cpu.setSegment(SEG.FS, { selector: 0, base: 0, limit: 0xffff, attributes: 0x93 });
  cpu.setSegment(SEG.GS, { selector: 0, base: 0, limit: 0xffff, attributes: 0x93 });
  cpu.eip = r.ip;
  cpu.writeFlags(r.flags & 0x0fd7, -1);
  const exit = cpu.run(64);
  const problems: string[] = [];
  if (exit.reason !== "halt") problems.push(`stopped: ${exit.reason}`);
  const f = t.final.regs;
  const expect = (k: keyof Regs, actual: number) => {
    const want = f[k] ?? r[k];
    if (k === "flags") {
      if (((want ^ actual) & mask & FLAGS_286) !== 0) problems.push(`flags ${hex(actual)} want ${hex(want)} (mask ${hex(mask)})`);
    } else if (want !== actual) {
      problems.push(`${k} ${hex(actual)} want ${hex(want)}`);
    }
  };
  for (const [k, i] of REG16) expect(k, cpu.r16[i << 1]!);
  for (const [k, s] of SEGS) expect(k, cpu.segSel[s]!);
  expect("ip", cpu.eip & 0xffff);
  expect("flags", cpu.getFlags() & 0xffff);
  // The FLAGS image an exception pushed: at SS:SP+4 after delivery (the suite's flag_address
  // can be off by one for odd stack pointers, so the position is computed from the final SS:SP).
  let flagAddr: number | undefined;
  if (t.exception !== undefined) {
    const ss = f.ss ?? r.ss;
    flagAddr = ss * 16 + (((f.sp ?? r.sp) + 4) & 0xffff);
  }
  for (const [a, v] of t.final.ram) {
    let m = 0xff;
    if (flagAddr !== undefined && a === flagAddr) m = mask & 0xff;
    if (flagAddr !== undefined && a === flagAddr + 1) m = (mask >> 8) & (FLAGS_286 >> 8);
    if (((bytes[a]! ^ v) & m) !== 0) problems.push(`ram[${hex(a)}] ${hex(bytes[a]!)} want ${hex(v)}`);
  }
  for (const [a] of t.initial.ram) bytes[a] = 0;
  for (const [a] of t.final.ram) bytes[a] = 0;
  return { idx: t.idx, hash: t.hash, name: t.name, ok: problems.length === 0, detail: problems.join("; "), raised: cpu.lastException, expected: t.exception?.number ?? -1, bytes: t.bytes };
}

function hex(n: number): string {
  return `0x${(n >>> 0).toString(16)}`;
}

/** Runs every case of one opcode file. */
export function runFile(file: string): CaseResult[] {
  const cases = JSON.parse(gunzipSync(readFileSync(join(sstDir(), `${file}.json.gz`))).toString("utf8")) as SstCase[];
  const mask = flagsMask(file);
  // Clear memory that an aborted previous case may have dirtied.
  return cases.map((t) => {
    try {
      return runCase(t, mask);
    } catch (e) {
      for (const [a] of t.initial.ram) mem.bytes[a] = 0;
      for (const [a] of t.final.ram) mem.bytes[a] = 0;
      return { idx: t.idx, hash: t.hash, name: t.name, ok: false, detail: `threw ${(e as Error).message}`, raised: -2, expected: t.exception?.number ?? -1, bytes: t.bytes };
    }
  });
}
