import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { XEN_ERRNO, XenError, type XenStoreOps } from "@paravirt/vm-interfaces";
import { world } from "./harness.ts";

interface ModelNode {
  value: string;
  children: Map<string, ModelNode>;
}

function modelApply(root: ModelNode, op: { kind: "write" | "mkdir" | "rm"; path: string[]; value: string }): void {
  if (op.kind === "rm") {
    let n: ModelNode | undefined = root;
    for (const s of op.path.slice(0, -1)) n = n?.children.get(s);
    n?.children.delete(op.path[op.path.length - 1]!);
    return;
  }
  let n = root;
  op.path.forEach((s, i) => {
    let c = n.children.get(s);
    if (c === undefined) {
      c = { value: "", children: new Map() };
      n.children.set(s, c);
    }
    if (i === op.path.length - 1 && op.kind === "write") c.value = op.value;
    n = c;
  });
}

async function dump(xs: XenStoreOps, path: string): Promise<unknown> {
  const kids = await xs.directory(path);
  const out: Record<string, unknown> = { "=": await xs.read(path), "#": kids.join(",") };
  for (const k of kids) out[k] = await dump(xs, `${path}/${k}`);
  return out;
}

function modelDump(n: ModelNode): unknown {
  const out: Record<string, unknown> = { "=": n.value, "#": [...n.children.keys()].join(",") };
  for (const [k, c] of n.children) out[k] = modelDump(c);
  return out;
}

const segment = fc.constantFrom("a", "b", "c");
const op = fc.record({
  kind: fc.constantFrom("write" as const, "mkdir" as const, "rm" as const),
  path: fc.array(segment, { minLength: 1, maxLength: 3 }),
  value: fc.string({ maxLength: 8 }),
});

describe("properties", () => {
  it("the tree matches a plain model after any sequence of write/mkdir/rm, inside a transaction or not", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.record({ op, inTx: fc.boolean() }), { maxLength: 30 }), async (steps) => {
        const { dom0 } = world();
        await dom0.mkdir("/m");
        const model: ModelNode = { value: "", children: new Map() };
        for (const { op: o, inTx } of steps) {
          const path = `/m/${o.path.join("/")}`;
          const run = (xs: XenStoreOps) => (o.kind === "write" ? xs.write(path, o.value) : o.kind === "mkdir" ? xs.mkdir(path) : xs.rm(path));
          try {
            if (inTx) await dom0.transaction(run);
            else await run(dom0);
            modelApply(model, o);
          } catch (e) {
            // rm below a missing parent is the only refusal here
            expect(e).toBeInstanceOf(XenError);
            expect((e as XenError).errno).toBe(XEN_ERRNO.ENOENT);
            expect(o.kind).toBe("rm");
          }
        }
        expect(await dump(dom0, "/m")).toEqual(modelDump(model));
      }),
      { numRuns: 60 },
    );
  });

  it("concurrent transfers between accounts from several domains never create or lose money", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ who: fc.nat({ max: 2 }), from: fc.nat({ max: 3 }), to: fc.nat({ max: 3 }), amount: fc.nat({ max: 50 }) }), { minLength: 1, maxLength: 24 }),
        async (transfers) => {
          const { dom0, domU } = world();
          for (let i = 0; i < 4; i++) await dom0.write(`/bank/${i}`, "100");
          await dom0.setPermissions("/bank", [{ domid: 0, access: "b" }]);
          for (let i = 0; i < 4; i++) await dom0.setPermissions(`/bank/${i}`, [{ domid: 0, access: "b" }]);
          const clients = [dom0, domU(1), domU(2)];
          await Promise.all(
            transfers.map((t) =>
              clients[t.who]!.transaction(async (tx) => {
                const a = Number(await tx.read(`/bank/${t.from}`));
                const b = Number(await tx.read(`/bank/${t.to}`));
                if (t.from === t.to) return;
                await tx.write(`/bank/${t.from}`, String(a - t.amount));
                await tx.write(`/bank/${t.to}`, String(b + t.amount));
              }),
            ),
          );
          let sum = 0;
          for (let i = 0; i < 4; i++) sum += Number(await dom0.read(`/bank/${i}`));
          expect(sum).toBe(400);
          const expected = [100, 100, 100, 100];
          for (const t of transfers) if (t.from !== t.to) { expected[t.from]! -= t.amount; expected[t.to]! += t.amount; }
          for (let i = 0; i < 4; i++) expect(Number(await dom0.read(`/bank/${i}`))).toBe(expected[i]);
        },
      ),
      { numRuns: 40 },
    );
  });
});
