/**
 * `pylens agent`: always-on profiling of a host's Python processes. The sampling side
 * (../agent/agent.ts) cuts a window per process every `--window` seconds; each goes into an
 * on-disk queue (../agent/queue.ts) that a sender (../agent/sender.ts) drains to Grafana
 * Pyroscope, Parca and / or the local store of `pylens serve`. SIGTERM or Ctrl-C: the last
 * window is cut and queued, what is queued is tried once more for a few seconds, the rest
 * stays on disk for the next start. `/metrics` and `/healthz` on `--metrics`.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Server } from 'node:http';
import { Agent } from '../agent/agent.ts';
import { realClock, type SamplerClock } from '../capture/sampler/sampler.ts';
import { serveMetrics, type Metric } from '../agent/metrics.ts';
import { ParcaDestination } from '../agent/parca.ts';
import { PyroscopeDestination } from '../agent/pyroscope.ts';
import { WindowQueue } from '../agent/queue.ts';
import { Sender } from '../agent/sender.ts';
import { StoreDestination } from '../agent/store-destination.ts';
import type { TargetSpec } from '../agent/targets.ts';
import type { Destination } from '../agent/window.ts';
import { StoreError } from '../store/store.ts';
import { readAgentConfig, type AgentConfig } from './agent-config.ts';
import { UsageError, type Parsed } from './args.ts';
import { CliError } from './errors.ts';
import { parseAge } from './store.ts';

const DEFAULT_METRICS = '127.0.0.1:8375';

/**
 * The queue writes a window's file only when it is still waiting this long after it was cut
 * (queue.ts write-behind): windows a backend takes at once never touch the disk; while a
 * backend fails every window is written at once, and the agent's end writes what is left. A
 * kill -9 while every backend is up loses at most the windows of the last 2 s not yet
 * taken (in practice those in flight).
 */
export const WRITE_BEHIND_MS = 2000;

function defaultQueueDir(): string {
  const state = process.env.XDG_STATE_HOME || join(homedir(), '.local', 'state');
  return join(state, 'pylens', 'agent-queue');
}

function readSecret(file: string | undefined, what: string): string | undefined {
  if (file === undefined) return undefined;
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (e) {
    throw new CliError(`${what}: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, 'give a readable file holding the secret');
  }
}

function parseLabels(items: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items.flatMap((x) => x.split(','))) {
    if (!item) continue;
    const eq = item.indexOf('=');
    const k = eq > 0 ? item.slice(0, eq) : '';
    if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(k)) throw new UsageError('agent', `--label '${item}' is not K=V with K made of letters, digits and _`);
    out[k] = item.slice(eq + 1);
  }
  return out;
}

/** the settings: config file first, flags over it */
async function settings(args: Parsed): Promise<AgentConfig & { duration?: number; quiet?: boolean }> {
  const o = args.options;
  const c: AgentConfig = o.config !== undefined ? await readAgentConfig(o.config as string) : {};
  const s: AgentConfig & { duration?: number; quiet?: boolean } = { ...c };
  if (o.pid !== undefined) {
    s.pid = (o.pid as string[]).flatMap((x) => x.split(',')).filter(Boolean).map((x) => {
      const n = Number(x);
      if (!(Number.isInteger(n) && n > 0)) throw new UsageError('agent', `--pid needs process ids, got '${x}'`);
      return n;
    });
  }
  for (const k of ['match', 'unit', 'cgroup', 'service', 'host', 'store', 'queue', 'metrics', 'queue-max-age'] as const) if (o[k] !== undefined) (s as Record<string, unknown>)[k] = o[k];
  if (o['all-python']) s['all-python'] = true;
  if (o.rate !== undefined) s.rate = o.rate as number;
  if (o.window !== undefined) s.window = o.window as number;
  if (o['queue-max-mb'] !== undefined) s['queue-max-mb'] = o['queue-max-mb'] as number;
  if (o.wall) s.mode = 'wall';
  if (o.gil) s.gil = true;
  if (o.label !== undefined) s.labels = { ...(c.labels ?? {}), ...parseLabels(o.label as string[]) };
  if (o.pyroscope !== undefined) s.pyroscope = { ...(c.pyroscope ?? {}), url: o.pyroscope as string };
  if (s.pyroscope) {
    if (o['pyroscope-org'] !== undefined) s.pyroscope['org-id'] = o['pyroscope-org'] as string;
    if (o['pyroscope-user'] !== undefined) s.pyroscope.user = o['pyroscope-user'] as string;
    if (o['pyroscope-token'] !== undefined) s.pyroscope.token = o['pyroscope-token'] as string;
  }
  if (o.parca !== undefined) s.parca = { ...(c.parca ?? {}), url: o.parca as string };
  if (s.parca) {
    if (o['parca-token'] !== undefined) s.parca.token = o['parca-token'] as string;
    if (o['parca-insecure']) s.parca.insecure = true;
  }
  if (o.duration !== undefined) s.duration = o.duration as number;
  if (o.quiet) s.quiet = true;
  return s;
}

export async function runAgent(args: Parsed): Promise<number> {
  const s = await settings(args);
  // what to sample
  let match: RegExp | undefined;
  if (s.match !== undefined) {
    try {
      match = new RegExp(s.match);
    } catch (e) {
      throw new UsageError('agent', `--match '${s.match}' is not a regular expression: ${(e as Error).message}`);
    }
  }
  const targets: TargetSpec = {
    ...(s.pid?.length ? { pids: s.pid } : {}),
    ...(match ? { match } : {}),
    ...(s.unit ? { unit: s.unit } : {}),
    ...(s.cgroup ? { cgroup: s.cgroup } : {}),
    ...(s['all-python'] ? { allPython: true } : {}),
  };
  if (Object.keys(targets).length === 0) throw new UsageError('agent', 'no targets: give --pid, --match, --unit, --cgroup or --all-python');
  const rate = s.rate ?? 19;
  if (!(rate > 0 && rate <= 1000)) throw new UsageError('agent', `--rate must be between 0 and 1000 Hz, got ${rate}`);
  const windowS = s.window ?? 10;
  if (!(windowS >= 1 && windowS <= 3600)) throw new UsageError('agent', `--window must be 1 to 3600 seconds, got ${windowS}`);
  if (s.duration !== undefined && !(s.duration > 0)) throw new UsageError('agent', `--duration must be > 0 seconds, got ${s.duration}`);
  const maxAge = parseAge(s['queue-max-age'] ?? '6h');
  if (maxAge === undefined) throw new UsageError('agent', `--queue-max-age '${s['queue-max-age']}' is not an age (6h, 30m, 2d)`);
  const maxMb = s['queue-max-mb'] ?? 256;
  if (!(maxMb > 0)) throw new UsageError('agent', `--queue-max-mb must be > 0, got ${maxMb}`);

  // where windows go
  const destinations: Destination[] = [];
  if (s.pyroscope) {
    const p = s.pyroscope;
    const password = p.password ?? readSecret(p['password-file'], 'pyroscope password') ?? process.env.PYLENS_PYROSCOPE_PASSWORD;
    const token = p.token ?? readSecret(p['token-file'], 'pyroscope token') ?? process.env.PYLENS_PYROSCOPE_TOKEN;
    try {
      new URL(p.url);
    } catch {
      throw new UsageError('agent', `--pyroscope '${p.url}' is not a URL (e.g. http://pyroscope:4040)`);
    }
    destinations.push(new PyroscopeDestination({ url: p.url, ...(p['org-id'] ? { orgId: p['org-id'] } : {}), ...(p.user ? { basicAuth: { user: p.user, password: password ?? '' } } : {}), ...(token ? { bearerToken: token } : {}) }));
  }
  if (s.parca) {
    const token = s.parca.token ?? readSecret(s.parca['token-file'], 'parca token') ?? process.env.PYLENS_PARCA_TOKEN;
    destinations.push(new ParcaDestination({ url: s.parca.url, ...(token ? { bearerToken: token } : {}), ...(s.parca.insecure ? { insecure: true } : {}) }));
  }
  if (s.store) {
    try {
      destinations.push(new StoreDestination(s.store));
    } catch (e) {
      if (e instanceof StoreError) throw new CliError(e.message, e.fix);
      throw e;
    }
  }
  if (destinations.length === 0) throw new UsageError('agent', 'nowhere to send windows: give --pyroscope URL, --parca URL or --store PATH');

  const quiet = s.quiet ?? false;
  const log = (line: string) => {
    if (!quiet) process.stderr.write(`pylens agent: ${new Date().toISOString().slice(0, 19)}Z ${line}\n`);
  };
  const queueDir = s.queue ?? defaultQueueDir();
  let queue: WindowQueue;
  try {
    queue = await WindowQueue.open(queueDir, { destinations: destinations.map((d) => d.name), maxBytes: maxMb * 1024 * 1024, maxAgeMs: maxAge, writeBehindMs: WRITE_BEHIND_MS });
  } catch (e) {
    throw new CliError(`cannot use the queue folder ${queueDir}: ${(e as Error).message}`, 'give a writable folder with --queue DIR');
  }
  const sender = new Sender(queue, destinations, { log });
  const ac = new AbortController();
  // the sampling loop sleeps in clock_nanosleep with an event-loop turn every 100 ms
  // (runSchedule's sync mode: one wake-up per tick) while nothing else has work, and on
  // timers (an event-loop turn at every tick) while windows are being queued or sent: the
  // sender and the queue's file I/O need many turns per window, and at one turn per 100 ms
  // the sender drained ~1 window/s per destination, less than 20 targets make with 10 s windows
  let queueing = 0;
  const clock: SamplerClock = {
    nowNs: realClock.nowNs,
    sleepUntilNs: realClock.sleepUntilNs,
    sleepUntilSyncNs: realClock.sleepUntilSyncNs!,
    preferAsync: () => queueing > 0 || sender.busy,
  };
  const agent = new Agent({ clock, targets, rateHz: rate, mode: s.mode ?? 'cpu', ...(s.gil ? { gilOnly: true } : {}), windowS, ...(s.service ? { service: s.service } : {}), ...(s.host ? { host: s.host } : {}), labels: s.labels ?? {}, signal: ac.signal, ...(s.duration !== undefined ? { durationS: s.duration } : {}), log, onWindow: (w) => {
      queueing++;
      void queue
        .put(w)
        .catch((e) => log(`window ${w.id} not queued: ${(e as Error).message}`))
        .finally(() => queueing--);
    } });

  // /metrics
  let metrics: Server | undefined;
  const metricsAddr = s.metrics ?? DEFAULT_METRICS;
  if (metricsAddr !== 'off') {
    const m = /^(.*):(\d+)$/.exec(metricsAddr);
    if (!m) throw new UsageError('agent', `--metrics '${metricsAddr}' is not HOST:PORT (or off)`);
    try {
      metrics = await serveMetrics(m[1]!.replace(/^\[|\]$/g, '') || '127.0.0.1', Number(m[2]), () => collect(agent, queue, sender));
    } catch (e) {
      throw new CliError(`cannot serve /metrics on ${metricsAddr}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 'pick another --metrics HOST:PORT, or --metrics off');
    }
    const a = metrics.address();
    if (a && typeof a === 'object') log(`metrics on http://${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}/metrics`);
  }

  const stop = () => ac.abort();
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  log(`sampling ${describe(targets)} at ${rate} Hz (${s.mode ?? 'cpu'}), ${windowS} s windows, to ${destinations.map((d) => d.name).join(', ')}; queue ${queueDir}`);
  sender.start();
  try {
    await agent.run();
  } finally {
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
  }
  await queue.settled();
  const left = await sender.flush(5000);
  await queue.close(); // what is left goes to disk, for the next start
  metrics?.close();
  const st = queue.stats();
  log(`stopped: ${agent.stats.windows} windows from ${agent.stats.attached} processes; sent ${Object.entries(st.sent).map(([d, n]) => `${n} to ${d}`).join(', ') || 'none'}; ${left} left queued in ${queueDir}${st.dropped.full + st.dropped.age ? `; dropped ${st.dropped.full} (queue full) + ${st.dropped.age} (too old)` : ''}`);
  return 0;
}

function describe(t: TargetSpec): string {
  const parts: string[] = [];
  if (t.pids) parts.push(`PID ${t.pids.join(', ')} and their Python children`);
  if (t.match) parts.push(`Python processes matching /${t.match.source}/`);
  if (t.unit) parts.push(`unit ${t.unit}`);
  if (t.cgroup) parts.push(`cgroup ${t.cgroup}*`);
  if (t.allPython) parts.push('every CPython');
  return parts.join(' + ');
}

/** the agent's /metrics, from the sampling side, the queue and the sender */
function collect(agent: Agent, queue: WindowQueue, sender: Sender): Metric[] {
  const a = agent.stats;
  const q = queue.stats();
  const lanes = sender.stats();
  const dests = Object.keys(lanes);
  return [
    { name: 'pylens_agent_targets', help: 'processes being sampled', type: 'gauge', values: [{ value: a.targets }] },
    { name: 'pylens_agent_unreadable_targets', help: 'processes that match but cannot be sampled (permissions, unsupported CPython)', type: 'gauge', values: [{ value: a.unreadable.size }] },
    { name: 'pylens_agent_windows_total', help: 'windows cut (one per process and window)', type: 'counter', values: [{ value: a.windows }] },
    { name: 'pylens_agent_samples_total', help: 'samples taken', type: 'counter', values: [{ value: a.samples }] },
    { name: 'pylens_agent_ticks_total', help: 'sampling ticks (one wake-up for every target; rate × seconds when none is missed)', type: 'counter', values: [{ value: a.ticks }] },
    { name: 'pylens_agent_ticks_missed_total', help: 'ticks the sampler could not keep (known at the end of the run)', type: 'counter', values: [{ value: a.missedTicks }] },
    { name: 'pylens_agent_read_errors_total', help: 'stack reads that failed, per target', type: 'counter', values: [{ value: a.errors }, ...[...a.errorsByPid].map(([pid, n]) => ({ labels: { pid: String(pid) }, value: n }))] },
    { name: 'pylens_agent_windows_queued', help: 'windows waiting in the on-disk queue', type: 'gauge', values: [{ value: q.queuedWindows }] },
    { name: 'pylens_agent_queue_bytes', help: 'bytes of the queued windows', type: 'gauge', values: [{ value: q.queuedBytes }] },
    { name: 'pylens_agent_windows_sent_total', help: 'windows a destination took', type: 'counter', values: dests.map((d) => ({ labels: { destination: d }, value: q.sent[d] ?? 0 })) },
    { name: 'pylens_agent_windows_failed_total', help: 'windows a destination refused for good', type: 'counter', values: dests.map((d) => ({ labels: { destination: d }, value: q.failed[d] ?? 0 })) },
    { name: 'pylens_agent_windows_dropped_total', help: 'windows dropped before every destination had them', type: 'counter', values: (['full', 'age', 'corrupt'] as const).map((r) => ({ labels: { reason: r }, value: q.dropped[r] })) },
    { name: 'pylens_agent_send_attempts_total', help: 'send calls per destination', type: 'counter', values: dests.map((d) => ({ labels: { destination: d }, value: lanes[d]!.attempts })) },
    { name: 'pylens_agent_destination_up', help: '1 when the destination took its last window, 0 while it fails', type: 'gauge', values: dests.map((d) => ({ labels: { destination: d }, value: lanes[d]!.consecutiveFailures === 0 ? 1 : 0 })) },
  ];
}
