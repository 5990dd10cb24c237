/**
 * Differential testing against QEMU 7.2 without qtest (Debian's build has no qtest accelerator,
 * devices.md §0): a register script runs both on our model and inside QEMU, where a tiny
 * multiboot "kernel" (hand-assembled 32-bit code, flat protected mode as the multiboot loader
 * leaves it) interprets the same script and writes every value it reads to the isa-debugcon
 * port; isa-debug-exit ends the run. Frames go through `-netdev dgram` to a DgramBackend.
 *
 * Script ops (three little-endian dwords each: op, a, b):
 *   1 CFGW  outl(0xCF8, a); outl(0xCFC, b)
 *   2 W32   [a] = b                        (RAM or MMIO)
 *   3 R32   emit [a]
 *   4 CFGR  outl(0xCF8, a); emit inl(0xCFC)
 *   5 POLL  spin while [a] == b (bounded)
 *   6 UNTIL spin while [a] != b (bounded)
 *   0 EXIT
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PCI_CONFIG } from "@paravirt/vm-interfaces";
import { DgramBackend } from "@paravirt/net-wire";
import type { Bench } from "./harness.ts";

export const OP = { EXIT: 0, CFGW: 1, W32: 2, R32: 3, CFGR: 4, POLL: 5, UNTIL: 6 } as const;

export interface Step {
  op: number;
  a: number;
  b: number;
  /** Label of the value an R32/CFGR emits. */
  label?: string;
}

/** Builds scripts with labelled reads. */
export class Script {
  readonly steps: Step[] = [];
  cfgw(reg: number, v: number): this {
    this.steps.push({ op: OP.CFGW, a: cfgAddr(reg), b: v >>> 0 });
    return this;
  }
  cfgr(reg: number, label: string): this {
    this.steps.push({ op: OP.CFGR, a: cfgAddr(reg), b: 0, label });
    return this;
  }
  w32(addr: number, v: number): this {
    this.steps.push({ op: OP.W32, a: addr >>> 0, b: v >>> 0 });
    return this;
  }
  r32(addr: number, label: string): this {
    this.steps.push({ op: OP.R32, a: addr >>> 0, b: 0, label });
    return this;
  }
  poll(addr: number, whileEquals: number): this {
    this.steps.push({ op: OP.POLL, a: addr >>> 0, b: whileEquals >>> 0 });
    return this;
  }
  until(addr: number, equals: number): this {
    this.steps.push({ op: OP.UNTIL, a: addr >>> 0, b: equals >>> 0 });
    return this;
  }
  /** Writes bytes to RAM as dwords (zero-padded). */
  bytes(addr: number, data: Uint8Array): this {
    for (let i = 0; i < data.length; i += 4) {
      this.w32(addr + i, (data[i] ?? 0) | ((data[i + 1] ?? 0) << 8) | ((data[i + 2] ?? 0) << 16) | ((data[i + 3] ?? 0) << 24));
    }
    return this;
  }
  get labels(): string[] {
    return this.steps.filter((s) => s.label !== undefined).map((s) => s.label!);
  }
}

/** PCI configuration address of 00:04.0 (QEMU `addr=04.0`). */
function cfgAddr(reg: number): number {
  return (0x80000000 | (4 << 11) | (reg & 0xfc)) >>> 0;
}

/** The interpreter, hand-assembled (see the op list above); offsets in comments. */
const CODE = [
  0xbe, 0, 0, 0, 0, // 00 mov esi, SCRIPT (patched)
  0xad, // 05 loop: lodsd
  0x89, 0xc1, // 06 mov ecx, eax
  0xad, // 08 lodsd
  0x89, 0xc3, // 09 mov ebx, eax
  0xad, // 0b lodsd
  0x89, 0xc7, // 0c mov edi, eax
  0x83, 0xf9, 0x01, 0x74, 0x1b, // 0e cmp ecx,1 ; je 2e
  0x83, 0xf9, 0x02, 0x74, 0x26, // 13 cmp ecx,2 ; je 3e
  0x83, 0xf9, 0x03, 0x74, 0x25, // 18 cmp ecx,3 ; je 42
  0x83, 0xf9, 0x04, 0x74, 0x24, // 1d cmp ecx,4 ; je 46
  0x83, 0xf9, 0x05, 0x74, 0x2d, // 22 cmp ecx,5 ; je 54
  0x83, 0xf9, 0x06, 0x74, 0x4a, // 27 cmp ecx,6 ; je 76
  0xeb, 0x56, // 2c jmp 84 (exit)
  0x89, 0xd8, 0x66, 0xba, 0xf8, 0x0c, 0xef, // 2e cfgw: mov eax,ebx ; mov dx,0xcf8 ; out dx,eax
  0x89, 0xf8, 0x66, 0xba, 0xfc, 0x0c, 0xef, // 35 mov eax,edi ; mov dx,0xcfc ; out dx,eax
  0xeb, 0xc7, // 3c jmp 05
  0x89, 0x3b, 0xeb, 0xc3, // 3e w32: mov [ebx],edi ; jmp 05
  0x8b, 0x03, 0xeb, 0x1c, // 42 r32: mov eax,[ebx] ; jmp 62
  0x89, 0xd8, 0x66, 0xba, 0xf8, 0x0c, 0xef, // 46 cfgr: mov eax,ebx ; mov dx,0xcf8 ; out dx,eax
  0x66, 0xba, 0xfc, 0x0c, 0xed, // 4d mov dx,0xcfc ; in eax,dx
  0xeb, 0x0e, // 52 jmp 62
  0xb9, 0x00, 0x00, 0x00, 0x04, // 54 poll: mov ecx, 0x04000000
  0x39, 0x3b, 0x75, 0xa8, // 59 cmp [ebx],edi ; jne 05
  0x49, 0x75, 0xf9, // 5d dec ecx ; jne 59
  0xeb, 0xa3, // 60 jmp 05
  0xe6, 0xe9, 0xc1, 0xe8, 0x08, // 62 emit: out 0xe9,al ; shr eax,8
  0xe6, 0xe9, 0xc1, 0xe8, 0x08, // 67
  0xe6, 0xe9, 0xc1, 0xe8, 0x08, // 6c
  0xe6, 0xe9, // 71
  0xeb, 0x90, // 73 jmp 05
  0x00, // 75 (unused)
  0xb9, 0x00, 0x00, 0x00, 0x04, // 76 pollne: mov ecx, 0x04000000
  0x39, 0x3b, 0x74, 0x86, // 7b cmp [ebx],edi ; je 05
  0x49, 0x75, 0xf9, // 7f dec ecx ; jne 7b
  0xeb, 0x81, // 82 jmp 05
  0xb0, 0x00, 0xe6, 0xf4, // 84 exit: mov al,0 ; out 0xf4,al (isa-debug-exit)
  0xf4, 0xeb, 0xfd, // 88 hlt ; jmp 88
];

const LOAD = 0x100000;
const HEADER = 32;
const SCRIPT_AT = HEADER + 0x100;

/** A multiboot image (a.out kludge: flags bit 16) that runs `script`. */
export function multibootImage(script: Script): Uint8Array {
  const steps = [...script.steps, { op: OP.EXIT, a: 0, b: 0 }];
  const img = new Uint8Array(SCRIPT_AT + steps.length * 12);
  const dv = new DataView(img.buffer);
  const magic = 0x1badb002;
  const flags = 0x00010000;
  dv.setUint32(0, magic, true);
  dv.setUint32(4, flags, true);
  dv.setUint32(8, (-(magic + flags)) >>> 0, true);
  dv.setUint32(12, LOAD, true); // header_addr
  dv.setUint32(16, LOAD, true); // load_addr
  dv.setUint32(20, 0, true); // load_end_addr: whole file
  dv.setUint32(24, 0, true); // bss_end_addr
  dv.setUint32(28, LOAD + HEADER, true); // entry
  img.set(CODE, HEADER);
  dv.setUint32(HEADER + 1, LOAD + SCRIPT_AT, true);
  steps.forEach((s, i) => {
    dv.setUint32(SCRIPT_AT + i * 12, s.op, true);
    dv.setUint32(SCRIPT_AT + i * 12 + 4, s.a, true);
    dv.setUint32(SCRIPT_AT + i * 12 + 8, s.b, true);
  });
  return img;
}

export interface RunResult {
  values: Map<string, number>;
  frames: Uint8Array[];
}

/** Frames the far end sends back when it sees the `index`th frame from the NIC. */
export type Responder = (frame: Uint8Array, index: number) => Uint8Array[];

/**
 * Runs the script in QEMU with `-device e1000,addr=04.0`. Frames from `respond` are sent to
 * QEMU's e1000 when it transmits (so QEMU's socket exists and the guest decides when).
 */
export async function runInQemu(script: Script, respond: Responder, timeoutMs = 90_000): Promise<RunResult> {
  const dir = mkdtempSync(join(tmpdir(), "e1000-diff-"));
  const kernel = join(dir, "script.mb");
  const out = join(dir, "out.bin");
  writeFileSync(kernel, multibootImage(script));
  const ours = await DgramBackend.open();
  const reserve = await DgramBackend.open();
  const qemuPort = reserve.local.port;
  await reserve.close();
  ours.setRemote({ host: "127.0.0.1", port: qemuPort });
  const frames: Uint8Array[] = [];
  ours.onReceive((f) => {
    frames.push(f);
    for (const x of respond(f, frames.length - 1)) ours.send(x);
  });
  const args = [
    "-M", "pc", "-accel", "tcg", "-nodefaults", "-display", "none", "-m", "64",
    "-kernel", kernel,
    "-chardev", `file,id=dbg,path=${out}`, "-device", "isa-debugcon,iobase=0xe9,chardev=dbg",
    "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
    "-netdev", `dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=${qemuPort},remote.type=inet,remote.host=127.0.0.1,remote.port=${ours.local.port}`,
    "-device", "e1000,netdev=n0,addr=04.0,mac=52:54:00:12:34:56,romfile=",
  ];
  try {
    await new Promise<void>((resolve, reject) => {
      const p = spawn("qemu-system-x86_64", args, { stdio: ["ignore", "ignore", "pipe"] });
      let err = "";
      p.stderr!.on("data", (d: Buffer) => (err += d.toString()));
      const t = setTimeout(() => {
        p.kill("SIGKILL");
        reject(new Error(`QEMU did not finish the script: ${err}`));
      }, timeoutMs);
      p.on("exit", (code) => {
        clearTimeout(t);
        // isa-debug-exit: status (0 << 1) | 1
        if (code === 1) resolve();
        else reject(new Error(`QEMU exited with ${code}: ${err}`));
      });
    });
    await new Promise((r) => setTimeout(r, 100)); // let the last datagrams arrive
    const bytes = new Uint8Array(readFileSync(out));
    const labels = script.labels;
    if (bytes.length !== labels.length * 4) throw new Error(`expected ${labels.length} values from QEMU, got ${bytes.length / 4}`);
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const values = new Map<string, number>();
    labels.forEach((l, i) => values.set(l, dv.getUint32(i * 4, true)));
    return { values, frames };
  } finally {
    await ours.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Runs the script on our model (Bench with BAR0 at `mmioBase`). Responses to transmitted frames
 * are queued and delivered at the next POLL/UNTIL, as QEMU delivers them while the guest spins.
 */
export function runOnModel(bench: Bench, script: Script, mmioBase: number, respond: Responder): RunResult {
  const values = new Map<string, number>();
  let cf8 = 0;
  const queued: Uint8Array[] = [];
  const frames: Uint8Array[] = [];
  bench.wire.onReceive((f) => {
    frames.push(f);
    queued.push(...respond(f, frames.length - 1));
  });
  const inMmio = (a: number) => a >= mmioBase && a < mmioBase + 0x20000;
  const read = (a: number) => (inMmio(a) ? bench.rd(a - mmioBase) : bench.memory.readU32(a));
  for (const s of script.steps) {
    switch (s.op) {
      case OP.CFGW:
        cf8 = s.a;
        // The bench maps BAR0 at its MMIO_BASE; scripts program the same address.
        if ((cf8 & 0xfc) === PCI_CONFIG.BAR0 && ((s.b & ~0xf) >>> 0) !== mmioBase) throw new Error("script must place BAR0 at the bench's MMIO_BASE");
        bench.nic.configWrite(cf8 & 0xfc, 4, s.b);
        break;
      case OP.CFGR:
        values.set(s.label!, bench.nic.configRead(s.a & 0xfc, 4));
        break;
      case OP.W32:
        if (inMmio(s.a)) bench.wr(s.a - mmioBase, s.b);
        else bench.memory.writeU32(s.a, s.b);
        break;
      case OP.R32:
        values.set(s.label!, read(s.a));
        break;
      case OP.POLL:
      case OP.UNTIL: {
        for (const f of queued.splice(0)) bench.wire.send(f);
        // Spinning costs the guest time: let virtual time run (1 ms steps, at most 10 s).
        const waiting = () => (s.op === OP.POLL ? read(s.a) === s.b : read(s.a) !== s.b);
        for (let t = 0; waiting() && t < 10_000; t++) bench.clock.advanceBy(1_000_000);
        break;
      }
      default:
        break;
    }
  }
  return { values, frames };
}
