/**
 * The agent's shipping side through a Pyroscope outage (issue 17: "a 30 s backend outage
 * loses no window"), with the sender's real backoff (1 s → 60 s, jitter).
 *
 * A window a second goes into the queue; Pyroscope (node:http here) is down for the first
 * PYLENS_OUTAGE_MS (default 30000) ms, Parca (its grpc-gateway JSON, node:http) is up the
 * whole time. The queue writes behind as the agent's does (WRITE_BEHIND_MS: in memory first;
 * written at once while a destination fails). Halfway through the outage the agent
 * "restarts" as a kill would leave it: the queue and the sender are dropped without a flush
 * or a write of what waits in memory, and opened again over the same directory. Then Pyroscope comes
 * back and the bench waits until the queue is empty.
 *
 *   node_modules/.bin/node bench/agent-outage.ts
 *   PYLENS_OUTAGE_MS=60000 node_modules/.bin/node bench/agent-outage.ts
 *
 * Goal: no window lost at either backend, Pyroscope's in order; attempts during the outage
 * a handful (backoff), not a loop. Prints one JSON line; `MISSES` when the goal is missed.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProfileBuilder } from '../src/model/builder.ts';
import { pprofExporter } from '../src/formats/pprof.ts';
import { PyroscopeDestination } from '../src/agent/pyroscope.ts';
import { ParcaDestination } from '../src/agent/parca.ts';
import { WindowQueue } from '../src/agent/queue.ts';
import { Sender } from '../src/agent/sender.ts';
import type { AgentWindow } from '../src/agent/window.ts';
import { WRITE_BEHIND_MS } from '../src/cli/agent.ts';

const OUTAGE_MS = Number(process.env.PYLENS_OUTAGE_MS ?? 30_000);
const EVERY_MS = 1000;

function windowOf(i: number, fromMs: number): AgentWindow {
  const b = new ProfileBuilder({
    meta: { backend: 'pylens', mode: 'cpu', rateHz: 100, startTime: new Date(fromMs).toISOString(), durationNs: EVERY_MS * 1e6 },
    valueTypes: [{ name: 'samples', unit: 'samples' }, { name: 'cpu', unit: 'nanoseconds' }],
    defaultValue: 1,
  });
  const main = b.frame({ name: 'main', file: '/app/shop.py', line: 3 });
  const handle = b.frame({ name: 'handle', file: '/app/shop.py', line: 10 + (i % 7) });
  b.sample(b.stackOf([main, handle]), [90, 9e8], b.thread(7, 7, 'MainThread'), 'on-cpu', 1);
  return {
    id: `${String(fromMs).padStart(15, '0')}-0000007-cpu`,
    service: 'shop',
    type: 'cpu',
    fromMs,
    untilMs: fromMs + EVERY_MS,
    sampleRateHz: 100,
    labels: { service_name: 'shop', host: 'bench', pid: '7', win: String(i) },
    pprof: pprofExporter.write(b.build()) as Uint8Array,
    quality: { samples: 90, errors: 0, truncated: 0, samplerCpuNs: 0 },
  };
}

/** an HTTP server that keeps each request's `win` label, in arrival order */
async function server(port: number, winOf: (req: http.IncomingMessage, body: Buffer) => string): Promise<{ got: string[]; port: number; close: () => Promise<void> }> {
  const got: string[] = [];
  const s = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      got.push(winOf(req, Buffer.concat(chunks)));
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => s.listen(port, '127.0.0.1', r));
  return {
    got,
    port: (s.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        s.closeAllConnections();
        s.close(() => r());
      }),
  };
}

const pyroWin = (req: http.IncomingMessage) => /[{,]win=(\d+)/.exec(new URL(req.url!, 'http://x').searchParams.get('name') ?? '')?.[1] ?? '?';
const parcaWin = (_: http.IncomingMessage, body: Buffer) => (JSON.parse(body.toString()).series[0].labels.labels as Array<{ name: string; value: string }>).find((l) => l.name === 'win')?.value ?? '?';

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'pylens-outage-'));
  const probe = await server(0, () => '');
  const pyroPort = probe.port;
  await probe.close();
  const parca = await server(0, parcaWin);
  const destinations = () => [new PyroscopeDestination({ url: `http://127.0.0.1:${pyroPort}`, timeoutMs: 5000 }), new ParcaDestination({ url: `http://127.0.0.1:${parca.port}`, transport: 'json' })];
  const opts = { destinations: ['pyroscope', 'parca'], maxBytes: 64 << 20, maxAgeMs: 3600_000, writeBehindMs: WRITE_BEHIND_MS };
  const log: string[] = [];
  const logLine = (l: string) => log.push(`${((Date.now() - t0) / 1000).toFixed(1)}s ${l}`);

  const t0 = Date.now();
  let q = await WindowQueue.open(dir, opts);
  let s = new Sender(q, destinations(), { log: logLine });
  s.start();
  let attempts = 0;
  let i = 0;
  let restarted = false;
  while (Date.now() - t0 < OUTAGE_MS) {
    await q.put(windowOf(i, t0 + i * EVERY_MS));
    i++;
    if (!restarted && Date.now() - t0 >= OUTAGE_MS / 2) {
      restarted = true;
      attempts += s.stats().pyroscope!.attempts;
      await s.stop(); // no flush: what a kill would leave
      q.drop(); // nor what waits in memory
      q = await WindowQueue.open(dir, opts);
      s = new Sender(q, destinations(), { log: logLine });
      s.start();
      logLine(`restart: ${q.size} window(s) found on disk`);
    }
    await new Promise((r) => setTimeout(r, EVERY_MS - ((Date.now() - t0) % EVERY_MS)));
  }
  attempts += s.stats().pyroscope!.attempts;
  const put = i;
  const pyro = await server(pyroPort, pyroWin);
  const back = Date.now();
  logLine('pyroscope is back');
  while (q.size > 0 && Date.now() - back < 120_000) await new Promise((r) => setTimeout(r, 50));
  const drainMs = Date.now() - back;
  await s.stop();
  await pyro.close();
  await parca.close();
  const left = readdirSync(dir).length;
  rmSync(dir, { recursive: true, force: true });

  const expect = Array.from({ length: put }, (_, k) => String(k));
  const pyroOrdered = pyro.got.join() === expect.join();
  const lostPyro = expect.filter((w) => !pyro.got.includes(w)).length;
  const lostParca = expect.filter((w) => !parca.got.includes(w)).length;
  const ok = lostPyro === 0 && lostParca === 0 && pyroOrdered && left === 0;
  for (const l of log) console.error(l);
  console.log(
    JSON.stringify({
      outageMs: OUTAGE_MS,
      windowsPut: put,
      pyroscopeGot: pyro.got.length,
      pyroscopeInOrder: pyroOrdered,
      parcaGot: parca.got.length,
      lost: { pyroscope: lostPyro, parca: lostParca },
      duplicates: { pyroscope: pyro.got.length - new Set(pyro.got).size, parca: parca.got.length - new Set(parca.got).size },
      pyroscopeAttemptsDuringOutage: attempts,
      drainAfterBackMs: drainMs,
      filesLeft: left,
      result: ok ? 'ok' : 'MISSES',
    }),
  );
  if (!ok) process.exitCode = 1;
}

await main();
