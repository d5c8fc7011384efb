/**
 * Benchmark (issue 17): what `pylens agent` costs with many targets, side by side with the
 * floor any sampler of N processes pays (bench/floor/floor-multi.c, built here with gcc: one
 * wake-up per tick at absolute deadlines, then 6 preads of /proc/PID/mem per target).
 *
 * Targets: N copies (default 20) of bench/workloads/service.py on CPython 3.12 — 30 frames
 * deep, 1 ms of work every 100 ms, like lightly loaded web workers. For each rate (19 Hz, the
 * default, and 100 Hz), alternating floor and agent: the CPU time of all the runner's threads
 * (schedstat) over a window after a warm-up, as a share of one core, and the agent's RSS.
 * The agent ships 10 s windows to a Pyroscope-like HTTP server in this process (the sends
 * are part of its cost). Goals: at 19 Hz ≤ 2 % of a core and ≤ 150 MB; at 100 Hz ≤ 1.5× the floor.
 *
 *   node_modules/.bin/node bench/agent-cost.ts [--targets 20] [--window 20] [--warmup 15] [--rounds 1] [--rates 19,100] [--installed]
 *
 * `--installed` runs the agent from the compiled package (npm run build → dist/) instead of
 * the TypeScript sources.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { locateRuntime } from '../src/capture/sampler/runtime.ts';
import { processCpuNs } from './sampler-floor.ts';
import { argValue, argv, CLI, DIST_CLI, exited, killChild, LineReader, machineLine, median, procStatusKb, python, ROOT, sleep, WORKLOADS } from './sampler-common.ts';

const N = Number(argValue('--targets') ?? 20);
const WINDOW_S = Number(argValue('--window') ?? 20);
const WARMUP_S = Number(argValue('--warmup') ?? 15);
const ROUNDS = Number(argValue('--rounds') ?? 1);
const RATES = (argValue('--rates') ?? '19,100').split(',').map(Number);
const cli = argv.includes('--installed') ? DIST_CLI : CLI;

async function steady(pid: number): Promise<{ cpu: number; rss: number }> {
  await sleep(WARMUP_S * 1000);
  const c0 = processCpuNs(pid);
  const t0 = performance.now();
  await sleep(WINDOW_S * 1000);
  const cpu = (processCpuNs(pid) - c0) / ((performance.now() - t0) * 1e6);
  return { cpu, rss: (procStatusKb(pid)?.VmRSS ?? NaN) / 1024 };
}

const py = python(12);
if (!py) throw new Error('no pyenv CPython 3.12');
const tmp = mkdtempSync(join(tmpdir(), 'pylens-agent-cost-'));
const floorBin = join(tmp, 'floor-multi');
execFileSync('gcc', ['-O2', '-o', floorBin, join(ROOT, 'bench/floor/floor-multi.c')]);
let received = 0;
const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    received++;
    res.end('ok');
  });
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const port = (server.address() as { port: number }).port;
const targets: ChildProcess[] = [];
let runner: ChildProcess | undefined;
try {
  for (let i = 0; i < N; i++) {
    const t = spawn(py.exe, [join(WORKLOADS, 'service.py'), '30', '1', '100'], { stdio: ['ignore', 'pipe', 'inherit'] });
    targets.push(t);
    await new LineReader(t).next('service.py');
  }
  const pids = targets.map((t) => t.pid!);
  const addrs = pids.map((pid) => locateRuntime(pid).runtimeAddress);
  console.log(`agent cost — ${N} targets (${py.label} service.py: 30 frames, 1 ms of work every 100 ms); window ${WINDOW_S} s after ${WARMUP_S} s, ${ROUNDS} round(s); agent from ${cli === CLI ? 'the sources' : 'dist/'}; ${machineLine()}`);
  console.log('rate    floor CPU   agent CPU   ratio    agent RSS   goal');
  for (const rate of RATES) {
    const floors: number[] = [];
    const ours: number[] = [];
    const rss: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      for (const which of r % 2 ? (['agent', 'floor'] as const) : (['floor', 'agent'] as const)) {
        if (which === 'floor') {
          runner = spawn(floorBin, [String(rate), String(WARMUP_S + WINDOW_S + 2), ...pids.flatMap((p, i) => [String(p), `0x${addrs[i]!.toString(16)}`])], { stdio: 'inherit' });
          floors.push((await steady(runner.pid!)).cpu);
        } else {
          runner = spawn(process.execPath, [cli, 'agent', '--pid', pids.join(','), '-r', String(rate), '-w', '10', '--pyroscope', `http://127.0.0.1:${port}`, '--queue', join(tmp, `q${rate}-${r}`), '--metrics', 'off', '-q'], { stdio: 'inherit' });
          const s = await steady(runner.pid!);
          ours.push(s.cpu);
          rss.push(s.rss);
        }
        killChild(runner);
        await exited(runner);
      }
    }
    const f = median(floors);
    const o = median(ours);
    const goal = rate <= 19 ? `≤ 2 % and ≤ 150 MB: ${o <= 0.02 && median(rss) <= 150 ? 'met' : 'MISSED'}` : `≤ 1.5× the floor: ${o <= 1.5 * f ? 'met' : 'MISSED'}`;
    console.log(`${String(rate).padEnd(8)}${(100 * f).toFixed(2).padStart(7)} %   ${(100 * o).toFixed(2).padStart(7)} %   ${(o / f).toFixed(2).padStart(5)}×   ${median(rss).toFixed(0).padStart(6)} MB   ${goal}`);
  }
  console.log(`windows received by the Pyroscope-like server: ${received}`);
} finally {
  killChild(runner);
  for (const t of targets) killChild(t);
  server.close();
  rmSync(tmp, { recursive: true, force: true });
}
