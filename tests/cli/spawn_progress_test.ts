import assert from "node:assert/strict";
import { formatProgress } from "../../src/cli/spawn_progress.ts";

Deno.test("formatProgress() draws a copy as a ten-cell bar in MB", () => {
  assert.equal(
    formatProgress({ step: "copy", detail: "node1", bytes: 12_300_000, total: 56_000_000 }),
    "copy [##........] 12.3/56.0 MB",
  );
  assert.equal(
    formatProgress({ step: "copy", bytes: 56_000_000, total: 56_000_000 }),
    "copy [##########] 56.0/56.0 MB",
  );
});

Deno.test("formatProgress() names an SSH prepare connect and other steps by name", () => {
  assert.equal(formatProgress({ step: "prepare", detail: "ssh://node1" }), "connect ssh://node1");
  assert.equal(formatProgress({ step: "prepare", detail: "local://" }), "prepare local://");
  assert.equal(formatProgress({ step: "bootstrap", detail: "spw-1" }), "bootstrap spw-1");
});
