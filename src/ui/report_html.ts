/**
 * The HTML of `fabricd report` (issue 13): one static, self-contained file
 * (inline CSS and SVG, no script, a content security policy that forbids any
 * fetch) with a timeline of every service's states from the registry's
 * transitions and a plot of tasks finished per interval. A pure function of
 * its input, so it is tested without a fabric.
 * @module
 */
import type { ServiceRecord, Transition } from "../types/mod.ts";

/** One row of the timeline. */
export interface ReportService {
  record: ServiceRecord;
  /** Its transitions, any order. */
  transitions: Transition[];
  /** Set when the service is a pilot: its manager's view of it now. */
  pilot?: { manager: string; state: string; reason: string } | undefined;
}

/** Tasks an agent incarnation ended between `from` and `to` (ms since the epoch). */
export interface FinishedTasks {
  agent: string;
  incarnation: number;
  from: number;
  to: number;
  done: number;
  failed: number;
}

/** Everything the report shows. */
export interface ReportInput {
  /** When the data was taken, ms since the epoch: the right edge of both plots. */
  generatedAt: number;
  services: ReportService[];
  finished: FinishedTasks[];
  /** Sentences shown under the plots, e.g. which agents did not answer. */
  notes: string[];
}

/** Options of {@linkcode reportHtml}. */
export interface ReportHtmlOptions {
  /** Bars of the throughput plot. Default 60. */
  buckets?: number;
  /** Width of both plots, px. Default 1100. */
  width?: number;
  /** Heading and title. Default "fabricd report". */
  title?: string;
}

/** Colours of the states, as on the page of `fabricd ui`. */
export const STATE_COLOURS: Readonly<Record<string, string>> = {
  LAUNCHING: "#90caf9",
  BOOTSTRAPPING: "#64b5f6",
  CONFIGURING: "#42a5f5",
  ALIVE: "#2e7d32",
  SUSPECT: "#f9a825",
  DEAD: "#c62828",
  RESTARTING: "#1565c0",
  FAILED: "#6a1b9a",
  LOST: "#8e24aa",
  STOPPED: "#9e9e9e",
};

const LABEL_WIDTH = 260;
const ROW = 18;
const AXIS = 28;

/** The report as one HTML document. */
export function reportHtml(input: ReportInput, options: ReportHtmlOptions = {}): string {
  const title = options.title ?? "fabricd report";
  const width = options.width ?? 1100;
  const rows = inTreeOrder(input.services);
  const start = rows.reduce(
    (min, s) => s.transitions.reduce((m, t) => Math.min(m, t.at), min),
    input.generatedAt - 1000,
  );
  const span = { start, end: input.generatedAt };
  const transitions = rows.reduce((n, s) => n + s.transitions.length, 0);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>${esc(title)}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222 }
svg { font-size: 11px } svg text { fill: #444 } .note { color: #666; font-size: 13px }
.key { display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; vertical-align: -2px }
</style></head>
<body>
<h1>${esc(title)}</h1>
<p class="note">${rows.length} services, ${transitions} transitions, from ${clock(span.start, true)}
to ${clock(span.end, true)} UTC (taken at ${esc(new Date(input.generatedAt).toISOString())}).</p>
<h2>Service states</h2>
<p>${legend(rows)}</p>
${timelineSvg(rows, span, width)}
<h2>Tasks finished</h2>
${throughputSvg(input.finished, span, width, options.buckets ?? 60)}
${input.notes.map((n) => `<p class="note">${esc(n)}</p>`).join("\n")}
</body></html>
`;
}

/** Escapes text for HTML content and attribute values. */
export function esc(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

interface Span {
  start: number;
  end: number;
}

/** Parents before children, siblings by start time, as `fabricd status` draws the tree. */
function inTreeOrder(services: ReportService[]): ReportService[] {
  const byParent = new Map<string, ReportService[]>();
  const ids = new Set(services.map((s) => s.record.id));
  for (const s of services) {
    const parent = ids.has(s.record.parent) ? s.record.parent : "";
    byParent.set(parent, [...(byParent.get(parent) ?? []), s]);
  }
  const out: ReportService[] = [];
  const seen = new Set<string>();
  const visit = (parent: string): void => {
    const kids = (byParent.get(parent) ?? []).sort((a, b) => a.record.started - b.record.started);
    for (const s of kids) {
      if (seen.has(s.record.id)) continue;
      seen.add(s.record.id);
      out.push(s);
      visit(s.record.id);
    }
  };
  visit("");
  // A parent loop (a damaged registry) would hide its members: they go last.
  return [...out, ...services.filter((s) => !seen.has(s.record.id))];
}

function legend(rows: ReportService[]): string {
  const present = new Set(rows.flatMap((s) => s.transitions.map((t) => t.to)));
  return Object.entries(STATE_COLOURS).filter(([state]) => present.has(state as never))
    .map(([state, colour]) => `<span class="key" style="background:${colour}"></span>${state}`)
    .join(" ");
}

function timelineSvg(rows: ReportService[], span: Span, width: number): string {
  const plot = width - LABEL_WIDTH - 10;
  const x = (t: number): number => LABEL_WIDTH + (t - span.start) / (span.end - span.start) * plot;
  const height = rows.length * ROW + AXIS;
  const out: string[] = [
    `<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
  ];
  rows.forEach((service, i) => {
    const { record } = service;
    const y = i * ROW;
    const label = `${record.id} ${record.role}${
      service.pilot ? ` (pilot ${service.pilot.state})` : ""
    }`;
    out.push(
      `<g class="row" data-id="${esc(record.id)}" data-role="${esc(record.role)}"${
        service.pilot ? ` data-pilot="${esc(service.pilot.state)}"` : ""
      }>`,
      `<text x="4" y="${y + 13}">${esc(label)}</text>`,
    );
    const sorted = [...service.transitions].sort((a, b) => a.seq - b.seq);
    sorted.forEach((t, k) => {
      const until = Math.min(sorted[k + 1]?.at ?? span.end, span.end);
      const left = x(Math.max(t.at, span.start));
      const w = Math.max(1, x(until) - left);
      const tip = `${record.id} ${t.to} (incarnation ${t.incarnation}) ${clock(t.at)}-${
        clock(until)
      } UTC${t.reason ? `: ${t.reason}` : ""}`;
      out.push(
        `<rect x="${left.toFixed(1)}" y="${y + 2}" width="${w.toFixed(1)}" height="${
          ROW - 4
        }" fill="${STATE_COLOURS[t.to] ?? "#000"}" data-state="${esc(t.to)}"><title>${
          esc(tip)
        }</title></rect>`,
      );
    });
    out.push("</g>");
  });
  out.push(axis(span, x, rows.length * ROW), "</svg>");
  return out.join("\n");
}

function axis(span: Span, x: (t: number) => number, y: number): string {
  const out = [`<line x1="${LABEL_WIDTH}" y1="${y}" x2="${x(span.end)}" y2="${y}" stroke="#999"/>`];
  for (let i = 0; i <= 5; i++) {
    const t = span.start + (span.end - span.start) * i / 5;
    const anchor = i === 0 ? "start" : i === 5 ? "end" : "middle";
    out.push(
      `<line x1="${x(t).toFixed(1)}" y1="${y}" x2="${x(t).toFixed(1)}" y2="${
        y + 4
      }" stroke="#999"/>`,
      `<text x="${x(t).toFixed(1)}" y="${y + 16}" text-anchor="${anchor}">${clock(t)}</text>`,
    );
  }
  return out.join("\n");
}

/**
 * Tasks per bucket, each incarnation's counts spread evenly over its
 * interval: the counters say how many, not when.
 */
function bucketize(
  finished: FinishedTasks[],
  span: Span,
  count: number,
): { done: number; failed: number }[] {
  const size = (span.end - span.start) / count;
  const buckets = Array.from({ length: count }, () => ({ done: 0, failed: 0 }));
  for (const f of finished) {
    const from = Math.max(f.from, span.start);
    const to = Math.min(Math.max(f.to, from), span.end);
    const length = to - from;
    buckets.forEach((bucket, i) => {
      const lo = span.start + i * size;
      const overlap = Math.max(0, Math.min(to, lo + size) - Math.max(from, lo));
      // A zero-length interval lands whole in the bucket that holds it.
      const share = length > 0 ? overlap / length : from >= lo && from < lo + size ? 1 : 0;
      bucket.done += f.done * share;
      bucket.failed += f.failed * share;
    });
  }
  return buckets;
}

function throughputSvg(
  finished: FinishedTasks[],
  span: Span,
  width: number,
  count: number,
): string {
  const total = finished.reduce((n, f) => n + f.done + f.failed, 0);
  const seconds = (span.end - span.start) / count / 1000;
  const every = seconds >= 120 ? `${(seconds / 60).toFixed(1)} min` : `${seconds.toFixed(1)} s`;
  const caption = `<p class="note">Tasks ended per ${every} (DONE green, FAILED or CANCELED red), ${
    Math.round(total)
  } in all. Estimated: the fabric keeps no per-task history, so each ALIVE agent's counters are spread evenly over the ALIVE time of its current incarnation; agents that are gone and earlier incarnations are not counted.</p>`;
  if (finished.length === 0) {
    return `<svg id="throughput" xmlns="http://www.w3.org/2000/svg" width="${width}" height="24"><text x="${LABEL_WIDTH}" y="16">no agent answered: no task data</text></svg>\n${caption}`;
  }
  const buckets = bucketize(finished, span, count);
  const top = Math.max(1, ...buckets.map((b) => b.done + b.failed));
  const height = 140;
  const plot = height - AXIS;
  const barWidth = (width - LABEL_WIDTH - 10) / count;
  const x = (t: number): number =>
    LABEL_WIDTH + (t - span.start) / (span.end - span.start) * (width - LABEL_WIDTH - 10);
  const y = (v: number): number => plot - v / top * (plot - 6);
  const out = [
    `<svg id="throughput" xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<text x="${LABEL_WIDTH - 6}" y="12" text-anchor="end">${top.toFixed(top < 10 ? 1 : 0)}</text>`,
    `<text x="${LABEL_WIDTH - 6}" y="${plot}" text-anchor="end">0</text>`,
  ];
  buckets.forEach((b, i) => {
    const left = (LABEL_WIDTH + i * barWidth).toFixed(1);
    const w = Math.max(1, barWidth - 1).toFixed(1);
    const done = y(b.done);
    const failed = y(b.done + b.failed);
    out.push(
      `<rect class="done" x="${left}" y="${done.toFixed(1)}" width="${w}" height="${
        (plot - done).toFixed(1)
      }" fill="#2e7d32"><title>${b.done.toFixed(1)} DONE</title></rect>`,
      `<rect class="failed" x="${left}" y="${failed.toFixed(1)}" width="${w}" height="${
        (done - failed).toFixed(1)
      }" fill="#c62828"><title>${b.failed.toFixed(1)} FAILED or CANCELED</title></rect>`,
    );
  });
  out.push(axis(span, x, plot), "</svg>");
  return `${out.join("\n")}\n${caption}`;
}

/** `HH:MM:SS` in UTC, with the date when `date` is set. */
function clock(t: number, date = false): string {
  const iso = new Date(t).toISOString();
  return date ? `${iso.slice(0, 10)} ${iso.slice(11, 19)}` : iso.slice(11, 19);
}
