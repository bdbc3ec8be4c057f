/**
 * A hostile local user for the bootstrap tests (issue 14): finds new fabricd
 * services' IDs in /proc/PID/cmdline (world-readable) and sends wrong
 * bootstrap proofs for them, and for the IDs given, at RATE per second to
 * every URL given (a parent directly, a bridge with the parent as
 * Fabric-Target). Both body shapes are sent: with a made-up handle, and
 * without one (as before handles). Each line on stdin adds an ID; prints
 * `SENT n IDS ...` when stdin closes.
 *
 * Every ID found gets RATE wrong proofs a second, split over the URLs.
 *
 * Usage: deno run -A _proof_flood.ts RATE TARGET_ID URL[,URL...] SKIP_ID[,SKIP_ID...] [ID...]
 */
const [rateText, targetId, urlList, skipList, ...fixed] = Deno.args;
const skip = new Set((skipList ?? "").split(","));
const rate = Number(rateText);
const urls = (urlList ?? "").split(",").filter(Boolean);
const ids = new Set<string>(fixed);
let sent = 0;
let stopped = false;

function random(bytes: number): string {
  const raw = crypto.getRandomValues(new Uint8Array(bytes));
  return btoa(String.fromCharCode(...raw)).replace(/=+$/, "").replaceAll("+", "-")
    .replaceAll("/", "_");
}

function scan(): void {
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const argv = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).split("\0");
      const at = argv.indexOf("--id");
      const id = argv[at + 1];
      if (at >= 0 && id && !skip.has(id)) ids.add(id);
    } catch {
      // Gone meanwhile.
    }
  }
}

async function shoot(url: string, id: string, withHandle: boolean): Promise<void> {
  const body = {
    id,
    ...(withHandle ? { handle: random(16) } : {}),
    publicKey: random(32),
    endpoint: "http://127.0.0.1:9",
    proof: random(32),
    host: "attacker",
    pid: 4242,
  };
  try {
    const answer = await fetch(new URL("/v1/bootstrap", url), {
      method: "POST",
      headers: { "content-type": "application/json", "fabric-target": targetId ?? "" },
      body: JSON.stringify(body),
    });
    await answer.body?.cancel();
  } catch {
    // The target may be restarting.
  }
  sent++;
}

void (async () => {
  const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
  for await (const chunk of lines) {
    for (const id of chunk.split("\n")) if (id.trim()) ids.add(id.trim());
  }
  stopped = true;
})();

let tick = 0;
while (!stopped) {
  if (tick++ % 2 === 0) scan();
  const batch: Promise<void>[] = [];
  const perTick = Math.max(1, Math.round(rate / 20));
  for (const id of ids) {
    for (let index = 0; index < perTick; index++) {
      batch.push(shoot(urls[index % urls.length]!, id, index % 2 === 0));
    }
  }
  await Promise.all([...batch, new Promise((resolve) => setTimeout(resolve, 50))]);
}
console.log(`SENT ${sent} IDS ${[...ids].join(",")}`);
