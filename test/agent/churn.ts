/**
 * Process churn under `pylens agent` (issue 17: "200 processes starting and exiting over a
 * minute: no leak, no hang"): the agent as a child process (`--match`, Pyroscope and Parca of
 * servers.ts), short-lived CPythons started at an even pace with lifetimes drawn from a range,
 * each spinning in `work_churn` a fraction of the time and then exiting on its own. Measured
 * from outside: the agent's RSS (/proc/PID/status) once a second, its open file descriptors
 * (/proc/PID/fd) and ticks (/metrics) after a warm-up and after the churn, the targets gauge,
 * the windows each process got. Used by churn.test.ts (60 over 15 s) and bench/agent-churn.ts
 * (200 over 60 s).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fakeHttp, fakeParca, fetchMetrics, labelsOf, parsePyroscopeName, runAgent } from './servers.ts';

export interface ChurnOptions {
  python: string;
  /** how many processes, started evenly over `overS` seconds */
  processes: number;
  overS: number;
  /** each one's lifetime, s: uniform in [min, max] */
  lifeS: [number, number];
  /** the fraction of its time each spends on the CPU */
  duty?: number;
  windowS?: number;
  rateHz?: number;
  /** a line of progress (RSS, targets) every few seconds */
  log?: (line: string) => void;
  logEveryS?: number;
}

export interface ChurnProcess {
  pid: number;
  livedMs: number;
  pyroscopeWindows: number;
  parcaWindows: number;
}

export interface ChurnResult {
  processes: ChurnProcess[];
  /** the agent's RSS over time: s since the agent started, MB, targets */
  rss: Array<{ s: number; mb: number; targets: number }>;
  /** after the warm-up (its first processes come and go) and after the churn, once the targets are back to 0 */
  rssStartMb: number;
  rssEndMb: number;
  rssMaxMb: number;
  fdStart: number;
  fdEnd: number;
  /** the descriptors by kind at those two points */
  fdKindsStart: Record<string, number>;
  fdKindsEnd: Record<string, number>;
  /** ticks between those two points, and rate × seconds */
  ticks: number;
  ticksExpected: number;
  /** the targets gauge: highest seen, and at the end */
  targetsMax: number;
  targetsEnd: number;
  /** seconds from the last process's exit to the targets gauge at 0 */
  drainS: number;
  /** then seconds until the queue was empty (Infinity: not within 30 s) */
  queueDrainS: number;
  windows: number;
  unreadable: number;
  exitCode: number | string;
  stopped: string;
  agentCpuS: number;
  /** the agent's log lines */
  log: string[];
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

const fdCount = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

/** what the open descriptors are: socket, pipe, anon_inode:[eventpoll], a path */
function fdKinds(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let k: string;
    try {
      k = readlinkSync(`/proc/${pid}/fd/${fd}`).replace(/:\[\d+\]$/, '');
    } catch {
      continue;
    }
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

/** a tiny deterministic generator (mulberry32): the same lifetimes every run */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function churn(o: ChurnOptions): Promise<ChurnResult> {
  const windowS = o.windowS ?? 2;
  const rate = o.rateHz ?? 50;
  const duty = o.duty ?? 0.1;
  const tag = `pylens-churn-${process.pid}`;
  const dir = mkdtempSync(join(tmpdir(), 'pylens-churn-'));
  const pyro = await fakeHttp();
  const parca = await fakeParca();
  const children = new Set<ChildProcess>();
  const lived = new Map<number, number>();
  const agent = runAgent(['--match', `${tag}-\\d+$`, '--pyroscope', `http://127.0.0.1:${pyro.port}`, '--parca', `127.0.0.1:${parca.port}`, '--parca-insecure', '--queue', join(dir, 'queue'), '--metrics', '127.0.0.1:0', '-w', String(windowS), '--rate', String(rate)]);
  const t0 = Date.now();
  const rss: ChurnResult['rss'] = [];
  let targets = 0;
  let targetsMax = 0;
  let stopWatch = false;
  try {
    const url = await agent.metricsUrl();
    // the agent watched once a second
    const watch = (async () => {
      let lastLog = 0;
      while (!stopWatch) {
        const m = await fetchMetrics(url).catch(() => undefined);
        if (m) targets = m.get('pylens_agent_targets') ?? 0;
        targetsMax = Math.max(targetsMax, targets);
        const mb = rssMb(agent.pid);
        const s = (Date.now() - t0) / 1000;
        rss.push({ s, mb, targets });
        if (o.log && s - lastLog >= (o.logEveryS ?? 5)) {
          lastLog = s;
          o.log(`t=${s.toFixed(0).padStart(3)} s  agent RSS ${mb.toFixed(1)} MB  targets ${targets}  fds ${fdCount(agent.pid)}  windows ${m?.get('pylens_agent_windows_total') ?? '?'} cut, ${m?.get('pylens_agent_windows_queued') ?? '?'} queued, sent ${m?.get('pylens_agent_windows_sent_total{destination="pyroscope"}') ?? '?'} / ${m?.get('pylens_agent_windows_sent_total{destination="parca"}') ?? '?'} (Pyroscope / Parca)`);
        }
        await sleep(1000);
      }
    })();

    const code = (life: number) =>
      [
        'import time, sys',
        `end = time.monotonic() + ${life.toFixed(3)}`,
        'def work_churn():',
        '    while time.monotonic() < end:',
        '        t = time.monotonic()',
        `        while time.monotonic() - t < ${(0.05 * duty).toFixed(4)}: sum(range(300))`,
        `        time.sleep(${(0.05 * (1 - duty)).toFixed(4)})`,
        'work_churn()',
      ].join('\n');
    const launch = (i: number, life: number): Promise<void> =>
      new Promise((resolve) => {
        const started = Date.now();
        const c = spawn(o.python, ['-c', code(life), `${tag}-${i}`], { stdio: 'ignore' });
        children.add(c);
        c.once('exit', () => {
          children.delete(c);
          if (i < 100_000) lived.set(c.pid!, Date.now() - started);
          resolve();
        });
        c.once('error', () => resolve());
      });
    const random = rng(17);
    const lifeOf = () => o.lifeS[0] + (o.lifeS[1] - o.lifeS[0]) * random();
    const backToZero = async (what: string, ms: number): Promise<number> => {
      const from = Date.now();
      while (targets !== 0) {
        if (Date.now() - from > ms) throw new Error(`${what}: the targets gauge is still ${targets} ${ms / 1000} s after the last process exited`);
        await sleep(100);
      }
      return (Date.now() - from) / 1000;
    };

    // warm-up: a few processes come and go, then the baseline
    const warm = Math.max(3, Math.round(o.processes / 20));
    await Promise.all(Array.from({ length: warm }, (_, i) => sleep(i * 300).then(() => launch(100_000 + i, 2 * windowS + 1))));
    await sleep(1500);
    await backToZero('warm-up', (windowS + 5) * 1000);
    await sleep(windowS * 1000);
    const rssStartMb = rssMb(agent.pid);
    const fdStart = fdCount(agent.pid);
    const fdKindsStart = fdKinds(agent.pid);
    const m0 = await fetchMetrics(url);
    const tStart = Date.now();

    // the churn
    const runs: Array<Promise<void>> = [];
    const pace = (o.overS * 1000) / o.processes;
    for (let i = 0; i < o.processes; i++) {
      const at = tStart + i * pace;
      if (at > Date.now()) await sleep(at - Date.now());
      runs.push(launch(i, lifeOf()));
    }
    await Promise.all(runs);
    await sleep(1500); // the scan sees them gone
    const drainS = await backToZero('churn', (2 * windowS + 10) * 1000);
    // their last windows sent
    const qFrom = Date.now();
    let queueDrainS = Infinity;
    for (const end = Date.now() + 30_000; Date.now() < end; await sleep(200)) {
      const m = await fetchMetrics(url);
      if (m.get('pylens_agent_windows_queued') === 0) {
        queueDrainS = (Date.now() - qFrom) / 1000;
        break;
      }
    }
    await sleep(windowS * 1000);
    const m1 = await fetchMetrics(url);
    const tEnd = Date.now();
    const rssEndMb = rssMb(agent.pid);
    const fdEnd = fdCount(agent.pid);
    const fdKindsEnd = fdKinds(agent.pid);
    stopWatch = true;
    await watch;

    agent.child.kill('SIGTERM');
    const exitCode = await agent.exit;
    const stopped = agent.lines.find((l) => l.includes('stopped: ')) ?? '';

    const pyroCount = new Map<string, number>();
    for (const g of pyro.got) {
      const pid = parsePyroscopeName(g.url.searchParams.get('name')!).get('pid')!;
      pyroCount.set(pid, (pyroCount.get(pid) ?? 0) + 1);
    }
    const parcaCount = new Map<string, number>();
    for (const g of parca.got) {
      const pid = labelsOf(g).pid!;
      parcaCount.set(pid, (parcaCount.get(pid) ?? 0) + 1);
    }
    return {
      processes: [...lived].map(([pid, livedMs]) => ({ pid, livedMs, pyroscopeWindows: pyroCount.get(String(pid)) ?? 0, parcaWindows: parcaCount.get(String(pid)) ?? 0 })),
      rss,
      rssStartMb,
      rssEndMb,
      rssMaxMb: Math.max(...rss.map((r) => r.mb)),
      fdStart,
      fdEnd,
      fdKindsStart,
      fdKindsEnd,
      ticks: m1.get('pylens_agent_ticks_total')! - m0.get('pylens_agent_ticks_total')!,
      ticksExpected: ((tEnd - tStart) / 1000) * rate,
      targetsMax,
      targetsEnd: m1.get('pylens_agent_targets')!,
      drainS,
      queueDrainS,
      windows: m1.get('pylens_agent_windows_total')!,
      unreadable: m1.get('pylens_agent_unreadable_targets')!,
      exitCode,
      stopped,
      agentCpuS: m1.get('pylens_agent_cpu_seconds_total')!,
      log: agent.lines,
    };
  } finally {
    stopWatch = true;
    if (agent.child.exitCode === null) agent.child.kill('SIGKILL');
    for (const c of children) c.kill('SIGKILL');
    await pyro.close();
    await parca.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
