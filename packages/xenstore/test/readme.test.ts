import { expect, it } from "vitest";
import { XENBUS_STATE } from "@paravirt/device-channel";
import { XenstoreServer, XenstoreClient, createLocalChannel, waitForState, switchState } from "../src/index.ts";

it("runs the README example", async () => {
  const xenstored = new XenstoreServer();
  const dom0 = new XenstoreClient(xenstored.connectLocal(0));
  const { guest, server } = createLocalChannel();
  xenstored.introduce(1, server);
  const dom1 = new XenstoreClient(guest);
  await dom1.write("device/vbd/51712/ring-ref", "8");
  await switchState(dom1, "device/vbd/51712", XENBUS_STATE.Initialised);
  await waitForState(dom0, "/local/domain/1/device/vbd/51712", [XENBUS_STATE.Initialised]);
  expect(await dom1.read("/local/domain/2/name").catch((e) => e.errno)).toBe(13);
  await dom0.transaction(async (tx) => tx.write("/counter", String(Number(await tx.read("/counter").catch(() => "0")) + 1)));
  expect(await dom0.read("/counter")).toBe("1");
  expect(await dom0.read("/local/domain/1/device/vbd/51712/ring-ref")).toBe("8");
});
