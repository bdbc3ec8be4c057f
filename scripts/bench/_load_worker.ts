/**
 * A load generator in its own thread (a Web Worker), so that the client of
 * `signed-requests` does not share the server's event loop. It runs one
 * {@linkcode closedLoop} per job and posts back its report.
 * @module
 */
import { FabricClient } from "../../src/client/fabric_client.ts";
import { importFabricKeys } from "../../src/crypto/keys.ts";
import { closedLoop, type ClosedLoopOptions, type ClosedLoopReport } from "./_harness.ts";

/** One load run: `GET path` on `url`, signed for `target` or plain. */
export interface LoadJob extends ClosedLoopOptions {
  /** `mac`: signed in a MAC session after one Ed25519 handshake (docs/protocol.md 2.13). */
  mode: "signed" | "unsigned" | "mac";
  url: string;
  path: string;
  /** Service ID the signed requests are meant for. */
  target: string;
  /** The fabric key (private JWK), for the signed client. */
  jwk: JsonWebKey;
}

/** What the worker posts back: a report, or why it could not run. */
export type LoadAnswer = { ok: true; report: ClosedLoopReport } | { ok: false; error: string };

interface WorkerScope {
  onmessage: ((event: MessageEvent<LoadJob>) => void) | null;
  postMessage(message: LoadAnswer): void;
}

async function runJob(job: LoadJob): Promise<ClosedLoopReport> {
  const keys = await importFabricKeys(job.jwk);
  const client = new FabricClient(keys, { timeoutMs: 10_000, sessions: job.mode === "mac" });
  const target = { id: job.target, url: job.url };
  const url = new URL(job.path, job.url);
  const signed = async (): Promise<void> => {
    await client.call(target, { method: "GET", path: job.path });
  };
  const plain = async (): Promise<void> => {
    const answer = await fetch(url, { headers: { accept: "application/json" } });
    const body: unknown = await answer.json();
    if (!answer.ok || typeof body !== "object") throw new Error(`HTTP ${answer.status}`);
  };
  return await closedLoop(job, job.mode === "unsigned" ? plain : signed);
}

const scope = self as unknown as WorkerScope;
scope.onmessage = (event) => {
  runJob(event.data).then(
    (report) => scope.postMessage({ ok: true, report }),
    (error) => scope.postMessage({ ok: false, error: String(error) }),
  );
};
