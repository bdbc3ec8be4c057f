import assert from "node:assert/strict";
import { join } from "node:path";
import {
  FabricFileError,
  loadFabricFile,
  parseFabricFile,
  resolveFabricPath,
  saveFabricFile,
} from "../../src/config/fabric_file.ts";

const FINGERPRINT = `sha256:${"ab".repeat(32)}`;

function env(vars: Record<string, string>) {
  return { get: (name: string) => vars[name] };
}

Deno.test("resolveFabricPath() prefers --fabric, then FABRIC_FILE, then ~/.fabric/fabric.yaml", () => {
  const both = env({ FABRIC_FILE: "/e/f.yaml", HOME: "/home/u" });
  assert.equal(resolveFabricPath("/flag/f.yaml", { env: both }), "/flag/f.yaml");
  assert.equal(resolveFabricPath(undefined, { env: both }), "/e/f.yaml");
  assert.equal(
    resolveFabricPath(undefined, { env: env({ HOME: "/home/u" }) }),
    "/home/u/.fabric/fabric.yaml",
  );
});

Deno.test("parseFabricFile() reports a YAML syntax error with file, line and column", () => {
  try {
    parseFabricFile(`version: 1\nkey: fabric.key\nfingerprint: [oops\n`, "f.yaml");
    assert.fail("expected an error");
  } catch (caught) {
    assert.ok(caught instanceof FabricFileError);
    assert.match(caught.message, /^f\.yaml:\d+:\d+: /);
    assert.ok(caught.line >= 3);
  }
});

Deno.test("parseFabricFile() points at the invalid field's line and column", () => {
  const text =
    `version: 1\nkey: fabric.key\nfingerprint: ${FINGERPRINT}\nregistries:\n  - id: reg-1\n    url: not a url\n`;
  try {
    parseFabricFile(text, "f.yaml");
    assert.fail("expected an error");
  } catch (caught) {
    assert.ok(caught instanceof FabricFileError);
    assert.equal(caught.line, 6);
    assert.equal(caught.column, 10);
    assert.match(caught.message, /field "registries\.0\.url"/);
  }
});

Deno.test("loadFabricFile() reports a missing file as missing, naming what to run", async () => {
  try {
    await loadFabricFile("/nonexistent/fabric.yaml");
    assert.fail("expected an error");
  } catch (caught) {
    assert.ok(caught instanceof FabricFileError);
    assert.ok(caught.missing);
    assert.match(caught.message, /fabricd init/);
  }
});

Deno.test("saveFabricFile() writes a file that loads back, with mode 0600", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "sub", "fabric.yaml");
    const fabric = {
      version: 1 as const,
      key: "fabric.key",
      fingerprint: FINGERPRINT,
      registries: [{ id: "reg-1", url: "http://127.0.0.1:1" }],
      sessions: ["s1"],
    };
    await saveFabricFile(path, fabric);
    assert.deepEqual(await loadFabricFile(path), fabric);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseFabricFile() refuses a YAML alias bomb with a FabricFileError that says what to do", () => {
  const lines = [`a0: &a0 [${Array(9).fill("x").join(", ")}]`];
  for (let i = 1; i < 10; i++) {
    lines.push(`a${i}: &a${i} [${Array(9).fill(`*a${i - 1}`).join(", ")}]`);
  }
  assert.throws(() => parseFabricFile(`${lines.join("\n")}\n`, "f.yaml"), (caught: unknown) => {
    assert.ok(caught instanceof FabricFileError);
    assert.ok(!caught.missing);
    assert.match(caught.message, /^f\.yaml: cannot expand its YAML \(Excessive alias count/);
    assert.match(
      caught.message,
      /needs no anchors or aliases .*: write the values out, or restore the file$/,
    );
    return true;
  });
});

Deno.test("loadFabricFile() refuses a directory and a file over 1 MiB, and loads one of 1 MiB", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const refused = async (path: string, message: RegExp): Promise<void> => {
      await assert.rejects(loadFabricFile(path), (caught: unknown) => {
        assert.ok(caught instanceof FabricFileError);
        assert.ok(!caught.missing);
        assert.equal(caught.path, path);
        assert.match(caught.message, message);
        return true;
      });
    };
    await refused(
      dir,
      /^Fabric file ".*" is a directory: give the fabric file itself, e\.g\. --fabric ".*fabric\.yaml"$/,
    );
    const fabric = `version: 1\nkey: fabric.key\nfingerprint: ${FINGERPRINT}\n`;
    const full = join(dir, "full.yaml");
    await Deno.writeTextFile(full, `${fabric}#${"x".repeat(1024 * 1024 - fabric.length - 2)}\n`);
    assert.equal((await Deno.stat(full)).size, 1024 * 1024);
    assert.equal((await loadFabricFile(full)).fingerprint, FINGERPRINT);
    const over = join(dir, "over.yaml");
    await Deno.writeTextFile(over, `${fabric}#${"x".repeat(1024 * 1024 - fabric.length - 1)}\n`);
    await refused(
      over,
      /^Fabric file ".*over\.yaml" is larger than 1 MiB, .*: give the right file with --fabric FILE, or restore it$/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
