import assert from "node:assert/strict";
import { posix } from "node:path";
import { fileURLToPath } from "node:url";
import {
  basename,
  dirname,
  fromFileUrl,
  isAbsolute,
  join,
  relative,
  resolve,
} from "../../src/base/paths.ts";

/** Paths with roots, `.` and `..`, trailing and repeated slashes, and nothing. */
const PATHS = [
  "",
  "/",
  "//",
  "///",
  ".",
  "..",
  "./",
  "../",
  "a",
  "a/",
  "a//",
  "/a",
  "//a",
  "///a",
  "/a/",
  "a/b",
  "a//b",
  "/a//b",
  "a/b/",
  "/a/b/c",
  "a/./b",
  "a/../b",
  "a/b/..",
  "a/b/../",
  "../a",
  "../../a/b",
  "/..",
  "/../a",
  "/a/../..",
  "a/../..",
  "...",
  "..a",
  "a..",
  "./.a/.b.",
  "/tmp/fabric dir/x.yaml",
];

Deno.test("isAbsolute(), dirname() and basename() answer as Node's path.posix for every path", () => {
  for (const path of PATHS) {
    assert.equal(isAbsolute(path), posix.isAbsolute(path), `isAbsolute(${JSON.stringify(path)})`);
    assert.equal(dirname(path), posix.dirname(path), `dirname(${JSON.stringify(path)})`);
    assert.equal(basename(path), posix.basename(path), `basename(${JSON.stringify(path)})`);
  }
});

Deno.test("join() answers as Node's path.posix for one, two and three parts and for none", () => {
  assert.equal(join(), posix.join());
  for (const a of PATHS) {
    assert.equal(join(a), posix.join(a), `join(${JSON.stringify(a)})`);
    for (const b of PATHS) {
      const pair = JSON.stringify([a, b]);
      assert.equal(join(a, b), posix.join(a, b), `join(...${pair})`);
      assert.equal(join(a, "x", b), posix.join(a, "x", b), `join(a, "x", b) of ${pair}`);
    }
  }
});

Deno.test("resolve() answers as Node's path.posix, against Deno.cwd() when no part is absolute", () => {
  assert.equal(resolve(), posix.resolve());
  assert.equal(resolve(), Deno.cwd());
  assert.equal(resolve("a/b", "/c", "d/"), "/c/d");
  for (const a of PATHS) {
    assert.equal(resolve(a), posix.resolve(a), `resolve(${JSON.stringify(a)})`);
    for (const b of PATHS) {
      const pair = JSON.stringify([a, b]);
      assert.equal(resolve(a, b), posix.resolve(a, b), `resolve(...${pair})`);
    }
  }
});

Deno.test('relative() answers as Node\'s path.posix, "" for the same place', () => {
  assert.equal(relative("/a/b/", "/a//b"), "");
  assert.equal(relative("/a/b", "/a/bc"), "../bc");
  for (const from of PATHS) {
    for (const to of PATHS) {
      const pair = JSON.stringify([from, to]);
      assert.equal(relative(from, to), posix.relative(from, to), `relative(...${pair})`);
    }
  }
});

Deno.test("fromFileUrl() decodes a file: URL to the path Node's fileURLToPath gives", () => {
  const urls = [
    "file:///",
    "file:///a/b",
    "file:///a/b/",
    "file:///tmp/fabric%20dir/x.yaml",
    "file:///tmp/%E2%82%AC/%25",
    "file://localhost/etc/hosts",
    "file:///a/../b/./c",
  ];
  for (const url of urls) {
    assert.equal(fromFileUrl(url), fileURLToPath(url), url);
    assert.equal(fromFileUrl(new URL(url)), fileURLToPath(url), `new URL(${url})`);
  }
  assert.equal(fromFileUrl("file:///tmp/fabric%20dir/x.yaml"), "/tmp/fabric dir/x.yaml");
  assert.equal(fromFileUrl(new URL("../x.ts", "file:///a/b/c.ts")), "/a/x.ts");
});

Deno.test("fromFileUrl() throws a TypeError naming the URL when it names no local file path", () => {
  const refused: [string, RegExp][] = [
    ["https://example.com/a", /give a file: URL/],
    ["/a/b", /not a URL/],
    ["", /not a URL/],
    ["file://example.com/a", /names host "example\.com"/],
    ["file:///a%2Fb", /encodes "\/" as %2F/],
    ["file:///a%2fb", /encodes "\/" as %2F/],
    ["file:///a%E0", /bad percent escape/],
  ];
  for (const [url, message] of refused) {
    assert.throws(() => fromFileUrl(url), (error: unknown) => {
      assert.ok(error instanceof TypeError, `${url}: ${error}`);
      assert.match(error.message, message);
      assert.ok(error.message.includes(`"${url}"`), error.message);
      return true;
    });
  }
});
