/**
 * The Prometheus gateway of `fabricd ui` (issue 13): Prometheus cannot sign
 * requests, so the UI scrapes every ALIVE service's signed `GET /v1/metrics`
 * through the bridges on its route, with bounded concurrency, a timeout per
 * service and a size limit, and merges the answers with `service`, `role` and
 * `host` labels.
 * @module
 */
import { readCapped } from "../base/read_capped.ts";
import { eachAtMost } from "../base/at_most.ts";
import { trustOf } from "../crypto/trust.ts";
import type { Target } from "../client/fabric_client.ts";
import { targetFor } from "../client/route.ts";
import type { FabricKeys } from "../crypto/keys.ts";
import { signRequest, verifyResponse } from "../crypto/signing.ts";
import type { ServiceRecord } from "../types/mod.ts";

/** Options of {@linkcode scrapeFabric}. */
export interface ScrapeOptions {
  /** Services scraped at once. Default 8. */
  concurrency?: number;
  /** Time for one service's answer, ms. Default 5000. */
  timeoutMs?: number;
  /** Largest exposition accepted from one service, bytes. Default 4 MiB. */
  maxBytes?: number;
  /** Scrapes only the ALIVE services this accepts. Default: every one. */
  only?: (record: ServiceRecord) => boolean;
}

/** One service's outcome. */
export interface ScrapeResult {
  record: ServiceRecord;
  text: string | null;
  error: string;
}

/**
 * Fetches one service's metrics text with a signed request and a verified answer.
 * @throws {Error} when the service does not answer, answers non-2xx, too much, or unsigned.
 */
export async function fetchMetrics(
  keys: FabricKeys,
  target: Target,
  options: ScrapeOptions = {},
): Promise<string> {
  const url = new URL("/v1/metrics", target.url);
  const headers = new Headers({ accept: "text/plain" });
  if (target.route && target.route.length > 0) headers.set("fabric-route", target.route.join(","));
  const signed = await signRequest(
    { method: "GET", url, headers, body: new Uint8Array() },
    keys,
    { target: target.id },
  );
  const answer = await fetch(url, {
    headers: signed.headers,
    signal: AbortSignal.timeout(options.timeoutMs ?? 5000),
  });
  const bytes = await readLimited(answer, options.maxBytes ?? 4 * 1024 * 1024);
  const verdict = await verifyResponse(
    { status: answer.status, headers: answer.headers, body: bytes },
    { trust: trustOf(keys), requestNonce: signed.nonce },
  );
  if (!verdict.ok) throw new Error(`answer not signed by this fabric (${verdict.reason})`);
  if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
  return new TextDecoder().decode(bytes);
}

/**
 * Scrapes every ALIVE service of `records` (or those `options.only` accepts);
 * the other records give the bridges on the way.
 */
export async function scrapeFabric(
  keys: FabricKeys,
  records: ServiceRecord[],
  options: ScrapeOptions = {},
): Promise<ScrapeResult[]> {
  const only = options.only ?? (() => true);
  const alive = records.filter((r) => r.state === "ALIVE" && r.endpoint && only(r));
  const results: ScrapeResult[] = [];
  await eachAtMost(alive, options.concurrency ?? 8, async (record) => {
    try {
      const text = await fetchMetrics(keys, targetFor(record, records), options);
      results.push({ record, text, error: "" });
    } catch (error) {
      results.push({
        record,
        text: null,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  });
  results.sort((a, b) => a.record.id.localeCompare(b.record.id));
  return results;
}

/**
 * One exposition from many: every sample gets `service`, `role` and `host`
 * labels, each family's HELP and TYPE appear once with all its samples
 * together, and `fabricd_ui_scrape_up` says which services answered.
 */
export function mergeExpositions(results: ScrapeResult[]): string {
  const families = new Map<string, { head: string[]; samples: string[] }>();
  const family = (name: string): { head: string[]; samples: string[] } => {
    let entry = families.get(name);
    if (!entry) families.set(name, entry = { head: [], samples: [] });
    return entry;
  };
  for (const result of results) {
    if (result.text === null) continue;
    const labels = `service="${escapeLabel(result.record.id)}",role="${
      escapeLabel(result.record.role)
    }",host="${escapeLabel(result.record.host)}"`;
    let current = "";
    for (const line of result.text.split("\n")) {
      if (line === "") continue;
      const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) /.exec(line);
      if (meta) {
        current = meta[2]!;
        const entry = family(current);
        if (!entry.head.some((h) => h.startsWith(`# ${meta[1]} `))) entry.head.push(line);
        continue;
      }
      if (line.startsWith("#")) continue;
      const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (.*)$/.exec(line);
      if (!sample) continue;
      // A service's own label named like ours is kept as exported_NAME, as Prometheus does.
      const inner = sample[2]
        ? sample[2].slice(1, -1).replace(/(^|,)(service|role|host)=/g, "$1exported_$2=")
        : "";
      const all = inner ? `${labels},${inner}` : labels;
      const name = current && sample[1]!.startsWith(current) ? current : sample[1]!;
      family(name).samples.push(`${sample[1]}{${all}} ${sample[3]}`);
    }
  }
  const up = family("fabricd_ui_scrape_up");
  up.head.push(
    "# HELP fabricd_ui_scrape_up Whether the UI could scrape the service (1) or not (0)",
  );
  up.head.push("# TYPE fabricd_ui_scrape_up gauge");
  for (const result of results) {
    up.samples.push(
      `fabricd_ui_scrape_up{service="${escapeLabel(result.record.id)}",role="${
        escapeLabel(result.record.role)
      }",host="${escapeLabel(result.record.host)}"} ${result.text === null ? 0 : 1}`,
    );
  }
  const out: string[] = [];
  for (const entry of families.values()) out.push(...entry.head, ...entry.samples);
  return out.join("\n") + "\n";
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

async function readLimited(answer: Response, maxBytes: number): Promise<Uint8Array> {
  const read = await readCapped(answer, maxBytes);
  if (!read.whole) throw new Error(`metrics larger than ${maxBytes} bytes`);
  return read.bytes;
}
