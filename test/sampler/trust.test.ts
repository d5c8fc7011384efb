/**
 * Sampler trust on real CPython processes (issue 12): whole stacks under frame churn, CPU
 * time that was really on a CPU with every CPU busy, no aliasing with periodic work, and
 * --blocking. The workloads are the benchmarks' (bench/workloads); the benchmarks print the
 * figures, these tests hold the lines.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { sampleProcess } from '../../src/capture/sampler/sampler.ts';
import { judgeOnCpu, parseSched, ranThenBlocked, TickStart } from '../../src/capture/sampler/session.ts';
import { syscalls } from '../../src/capture/sampler/syscalls.ts';
import { frameInfo, stackFrames, type Profile } from '../../src/model/profile.ts';
import { samplerQuality } from '../../src/render/page/quality.ts';
import { exclusive } from '../helpers/exclusive.ts';
import { apartImpossible, stackRoots } from '../helpers/roots.ts';
import { firstLine, installedPythons } from './pythons.ts';

const WORKLOADS = join(import.meta.dirname, '../../bench/workloads');
const CLI = join(import.meta.dirname, '../../src/cli/main.ts');
const pythons = installedPythons().filter((p) => p.minor >= 8 && p.minor <= 13 && p.label.startsWith('pyenv'));

/** CPU time of the process's only thread, ns (its schedstat) */
function threadCpuNs(pid: number): number {
  return Number(readFileSync(`/proc/${pid}/schedstat`, 'latin1').split(' ')[0]);
}

function killed(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  child.kill('SIGKILL');
  return new Promise((r) => child.once('exit', () => r()));
}

/**
 * `body` with the sampler (this process) on CPU 0 and the targets it spawns through `target`
 * on CPU 1 (taskset): the sampler's wake-ups never push a target's busy thread off its CPU.
 * `pinned` is false where that cannot be done (one CPU, no taskset): targets run anywhere.
 */
async function onTwoCpus(body: (target: (args: string[]) => ChildProcess, pinned: boolean) => Promise<void>): Promise<void> {
  const cpus = availableParallelism();
  const pinned = cpus >= 2 && spawnSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)]).status === 0;
  const target = (args: string[]) => (pinned ? spawn('taskset', ['-c', '1', ...args], { stdio: ['ignore', 'pipe', 'inherit'] }) : spawn(args[0]!, args.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] }));
  try {
    await body(target, pinned);
  } finally {
    if (pinned) spawnSync('taskset', ['-a', '-p', '-c', `0-${cpus - 1}`, String(process.pid)]);
  }
}

async function churn(exe: string, seconds: number): Promise<ChildProcess> {
  const child = spawn(exe, [join(WORKLOADS, 'churn.py'), String(seconds), '1'], { stdio: ['ignore', 'pipe', 'inherit'] });
  assert.equal(await firstLine(child, 'churn.py'), 'ready');
  return child;
}

for (const py of pythons) {
  // under the 'timing' lock: two busy threads and a 1 kHz sampler would disturb the timing tests of other files
  test(`${py.label}: generator churn at 1 kHz — every stack reaches its thread's base or is marked [truncated]`, (t) =>
    exclusive('timing', async () => {
    const child = await churn(py.exe, 6);
    try {
      const p = await sampleProcess(child.pid!, { rateHz: 1000, durationS: 1.5 });
      const r = stackRoots(p);
      const n = p.samples.length;
      t.diagnostic(`${n} samples: ${r.whole} whole, ${r.marked} marked, ${r.cut} cut; ${samplerQuality(p.meta)}`);
      assert.ok(n > 300, `${n} samples`);
      // the bench (bench/sampler-cuts.ts) measures 0 % unmarked and ≤ 2.5 % marked; a loaded CI machine gets slack on the marked share only:
      // 6 %, or 12 % when the load made the stops after torn reads slow enough to spend their 1 % budget (they are what keeps the share low)
      assert.ok(r.cut <= 0.005 * n, `${r.cut} of ${n} stacks cut without a mark, e.g. ${r.examples[0]}`);
      const budgetSpent = Number(p.meta.extra!.pauseBudgetSkips) > 0;
      assert.ok(r.marked <= (budgetSpent ? 0.12 : 0.06) * n, `${r.marked} of ${n} stacks marked [truncated]${budgetSpent ? ' (stop budget spent)' : ''}`);
      assert.equal(r.marked, Number(p.meta.extra!.truncatedSamples), 'the mark and the count agree');
      assert.ok(Number(p.meta.extra!.retriedWalks) > 0, 'churn tears some reads, and they are read again');
    } finally {
      await killed(child);
    }
  }));
}

const canPause = syscalls() !== undefined;

for (const py of pythons) {
  test(`${py.label}: two call chains that never meet, at 1 kHz — no stack mixes them (frames reused while the picture was copied are read again)`, (t) =>
    exclusive('timing', async () => {
      const child = spawn(py.exe, [join(WORKLOADS, 'apart.py'), '8'], { stdio: ['ignore', 'pipe', 'inherit'] });
      try {
        assert.match(await firstLine(child, 'apart.py'), /^apart\.py ready/);
        const p = await sampleProcess(child.pid!, { rateHz: 1000, durationS: 2 });
        const x = apartImpossible(p);
        const roots = stackRoots(p);
        t.diagnostic(`${p.samples.length} samples, ${x.impossible} never existed, ${roots.marked} marked; ${p.meta.extra?.retriedWalks} walks read again, ${p.meta.extra?.unsteadyStacks} unsteady given`);
        assert.ok(p.samples.length >= 500, `${p.samples.length} samples`);
        // before the pages were copied twice: 5–10 % on 3.8–3.10, 0.3–1.4 % on 3.11/3.12
        assert.ok(x.impossible <= 0.005 * p.samples.length, `${x.impossible} of ${p.samples.length} stacks never existed, e.g.\n${x.examples.join('\n')}`);
        assert.ok(roots.cut === 0 && roots.marked <= 0.02 * p.samples.length, `cut ${roots.cut}, marked ${roots.marked}`);
      } finally {
        await killed(child);
      }
    }),
  );
}

test('--blocking: each running thread stopped while read — no stack cut or marked, and the stops are counted and costed', { skip: !canPause && 'no ptrace through koffi here' }, (t) =>
  exclusive('timing', async () => {
  for (const py of pythons.filter((p) => p.minor === 10 || p.minor === 12)) {
    const child = await churn(py.exe, 5);
    try {
      const p = await sampleProcess(child.pid!, { rateHz: 200, durationS: 1.5, blocking: true });
      const r = stackRoots(p);
      const x = p.meta.extra!;
      t.diagnostic(`${py.label}: ${p.samples.length} samples, ${r.marked} marked, ${r.cut} cut; ${samplerQuality(p.meta)}`);
      assert.equal(r.cut, 0, `cut without a mark: ${r.examples[0]}`);
      assert.ok(r.marked <= 0.005 * p.samples.length, `${r.marked} marked`);
      assert.ok(Number(x.pauses) >= 0.5 * p.samples.length, `${x.pauses} stops for ${p.samples.length} samples`);
      assert.ok(Number(x.pausedNs) > 0);
      assert.match(String(x.stackReads), /^blocking/);
    } finally {
      await killed(child);
    }
  }
  }));

test('record --blocking through the CLI prints the stops in its quality line', { skip: !canPause && 'no ptrace through koffi here' }, () => {
  const py = pythons.find((p) => p.minor === 12) ?? pythons[0]!;
  const r = spawnSync(process.execPath, [CLI, 'record', '--blocking', '-r', '200', '-o', '/dev/null', '-f', 'folded', '--', py.exe, join(WORKLOADS, 'churn.py'), '1', '0'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /quality: .*threads stopped \d+× for [\d.]+ ms \([\d.<]+ % of wall time\)/);
});

test('ranThenBlocked: runnable, then asleep, blocked or ended a moment later means it ran in between; still runnable, unreadable, or not runnable at first does not', () => {
  assert.equal(ranThenBlocked('R', 'S'), true);
  assert.equal(ranThenBlocked('R', 'D'), true);
  assert.equal(ranThenBlocked('R', 'X'), true);
  assert.equal(ranThenBlocked('R', 'R'), false);
  assert.equal(ranThenBlocked('R', undefined), false);
  assert.equal(ranThenBlocked('S', 'S'), false);
  assert.equal(ranThenBlocked('S', 'R'), false);
  assert.equal(ranThenBlocked(undefined, 'S'), false);
});

test('judgeOnCpu: moving is running; asleep is not; runnable counts when its task clock moves, when the tick pushed it off, or (no task clock) when it never left its CPU since the last tick', () => {
  const at = (execStartNs: number, sumNs: number, switches: number) => ({ execStartNs, sumNs, switches });
  assert.equal(judgeOnCpu(true, 'S', undefined, undefined, undefined, undefined), true);
  assert.equal(judgeOnCpu(false, 'S', true, at(100e6, 5e6, 3), undefined, 100e6), false);
  assert.equal(judgeOnCpu(false, 'D', undefined, at(100e6, 5e6, 3), undefined, 100e6), false);
  // its task clock moved between two reads: running (a long C call)
  assert.equal(judgeOnCpu(false, 'R', true, undefined, undefined, undefined), true);
  // pushed off by the sampler's own wake-up: it left at the moment the sampler got the CPU
  assert.equal(judgeOnCpu(false, 'R', false, at(100e6, 5e6, 3), undefined, 100e6), true);
  assert.equal(judgeOnCpu(false, 'R', undefined, at(100e6, 5e6, 3), undefined, 100e6), true);
  // left its CPU 2 ms into a long tick (hundreds of threads walked): it ran after the picture, not pushed off by the sampler
  assert.equal(judgeOnCpu(false, 'R', false, at(102e6, 5e6, 3), undefined, 100e6), false);
  assert.equal(judgeOnCpu(false, 'R', false, at(100.2e6, 5e6, 3), undefined, 100e6), true);
  // its accounting brought up to date by the wake-up that preempts it, a moment before the switch
  assert.equal(judgeOnCpu(false, 'R', false, at(99.8e6, 5e6, 3), undefined, 100e6), true);
  // on another CPU than the sampler: its se.exec_start is that CPU's clock, not comparable
  assert.equal(judgeOnCpu(false, 'R', false, at(100e6, 5e6, 3), undefined, 100e6, false), false);
  assert.equal(judgeOnCpu(false, 'R', false, at(100e6, 5e6, 3), undefined, 100e6, true), true);
  // task clock still, left before the tick: waiting in the run queue
  assert.equal(judgeOnCpu(false, 'R', false, at(99e6, 5e6, 3), { ...at(99e6, 5e6, 3), on: true }, 100e6), false);
  assert.equal(judgeOnCpu(false, 'R', false, undefined, undefined, 100e6), false, 'task clock still, no accounting: waiting');
  // --- without task clocks ---
  // woken from a 15 ms sleep, waiting in the run queue: it left its CPU 15 ms before the tick
  assert.equal(judgeOnCpu(false, 'R', undefined, at(85e6, 5e6, 4), { ...at(70e6, 5e6, 3), on: false }, 100e6), false);
  // preempted 3 ms before the tick, after running since the last one: it waits, it is not on a CPU
  // (the rule that let 2.5 scheduler ticks pass gave such waits to where the thread was preempted)
  assert.equal(judgeOnCpu(false, 'R', undefined, at(97e6, 12e6, 4), { ...at(88e6, 5e6, 3), on: true }, 100e6), false);
  // a long C call on another CPU: its accounting lags up to a scheduler tick behind, but it
  // has not left its CPU since the last tick, where it was on, or got it since (accounting moved)
  assert.equal(judgeOnCpu(false, 'R', undefined, at(96e6, 14e6, 3), { ...at(88e6, 6e6, 3), on: true }, 100e6), true);
  assert.equal(judgeOnCpu(false, 'R', undefined, at(96e6, 14e6, 3), { ...at(88e6, 6e6, 3), on: false }, 100e6), true);
  assert.equal(judgeOnCpu(false, 'R', undefined, at(96e6, 6e6, 3), { ...at(96e6, 6e6, 3), on: true }, 100e6), true, 'no new accounting yet (1 kHz ticks): still on since the last tick');
  // runnable and untouched since a tick where it was waiting: still waiting
  assert.equal(judgeOnCpu(false, 'R', undefined, at(80e6, 6e6, 3), { ...at(80e6, 6e6, 3), on: false }, 100e6), false);
  // first sight of a thread that left before the tick: nothing to tell a C call from a wait
  assert.equal(judgeOnCpu(false, 'R', undefined, at(96e6, 6e6, 3), undefined, 100e6), false);
  // without the scheduler's accounting either: state R alone
  assert.equal(judgeOnCpu(false, 'R', undefined, undefined, undefined, 100e6), true);
});

test('TickStart: the sampler\'s own se.exec_start is read at the start of each tick while ticks need it, else only on need', () => {
  const ts = new TickStart();
  for (let i = 0; i < 5; i++) ts.restart();
  assert.equal(ts.reads, 0, 'quiet ticks read nothing');
  const v = ts.ns();
  assert.equal(ts.reads, 1);
  if (v !== undefined) assert.ok(v > 0, 'a scheduler clock value');
  ts.ns();
  assert.equal(ts.reads, 1, 'once per tick');
  ts.restart();
  assert.equal(ts.reads, 2, 'a tick after one that needed it reads at its start');
  ts.ns();
  assert.equal(ts.reads, 2, 'and not again when needed');
  for (let i = 0; i < TickStart.EAGER_TICKS + 10; i++) ts.restart();
  const r = ts.reads;
  ts.restart();
  assert.equal(ts.reads, r, 'after EAGER_TICKS quiet ticks, back to reading on need');
});

test('parseSched reads se.exec_start, se.sum_exec_runtime (ms with six decimals) and nr_switches', () => {
  const text = Buffer.from('python3 (4242, #threads: 1)\n----\nse.exec_start                                :        264202.678602\nse.vruntime   :  1.0\nse.sum_exec_runtime   :   1234.500000\nse.nr_migrations : 7\nnr_switches   :   42\nnr_voluntary_switches : 40\n');
  assert.deepEqual(parseSched(text), { execStartNs: 264202678602, sumNs: 1234500000, switches: 42 });
  assert.equal(parseSched(Buffer.from('no such line\n')), undefined);
  const live = parseSched(Buffer.from(spawnSync('cat', [`/proc/${process.pid}/sched`], { encoding: 'latin1' }).stdout, 'latin1'));
  if (live !== undefined) {
    assert.ok(live.execStartNs > 0 && live.sumNs > 0);
    assert.ok(Number.isInteger(live.switches) && live.switches >= 0);
  }
});

// ---- every CPU busy: CPU attribution ---------------------------------------------------

interface Truth {
  total: number;
  funcs: Record<string, number>;
}

function shareOf(p: Profile, name: string): { share: number; n: number } {
  const perThread = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) perThread.set(p.samples.thread[i]!, (perThread.get(p.samples.thread[i]!) ?? 0) + 1);
  const main = [...perThread].sort((a, b) => b[1] - a[1])[0]![0];
  const onStack = new Map<number, boolean>();
  let n = 0;
  let k = 0;
  for (let i = 0; i < p.samples.length; i++) {
    if (p.samples.thread[i] !== main) continue;
    n++;
    const s = p.samples.stack[i]!;
    let has = onStack.get(s);
    if (has === undefined) onStack.set(s, (has = stackFrames(p, s).some((f) => frameInfo(p, f).name === name)));
    if (has) k++;
  }
  return { share: n ? k / n : NaN, n };
}

test('every CPU busy: a function that only sleeps gets its CPU share, not the run-queue wait after each sleep', (t) =>
  exclusive('timing', async () => {
    const py = pythons.find((p) => p.minor === 12) ?? pythons.at(-1)!;
    const hogs = Array.from({ length: availableParallelism() }, () => spawn('python3', ['-c', 'while 1: pass'], { stdio: 'ignore' }));
    const child = spawn(py.exe, [join(WORKLOADS, 'sleepwork.py')], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const lines: string[] = [];
      let buf = '';
      const next = () =>
        new Promise<string>((resolve, reject) => {
          const poll = () => {
            const l = lines.shift();
            if (l !== undefined) return resolve(l);
            if (child.exitCode !== null) return reject(new Error('sleepwork.py ended'));
            setTimeout(poll, 20);
          };
          poll();
        });
      child.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          lines.push(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      });
      assert.match(await next(), /^ready/);
      child.kill('SIGUSR1');
      const p = await sampleProcess(child.pid!, { rateHz: 200, durationS: 6 });
      child.kill('SIGUSR2');
      const truth = JSON.parse(await next()) as Truth;
      const sum = Object.values(truth.funcs).reduce((a, b) => a + b, 0);
      const rows = ['nap', 'crunch', 'brief'].map((f) => {
        const got = shareOf(p, f);
        return { f, truth: truth.funcs[f]! / sum, got: got.share, n: got.n };
      });
      t.diagnostic(rows.map((r) => `${r.f} ${(100 * r.truth).toFixed(1)} % true, ${(100 * r.got).toFixed(1)} % sampled`).join('; ') + `; ${samplerQuality(p.meta)}`);
      const nap = rows[0]!;
      // runnable-as-running gave the sleeper 3–6 points here (bench/sampler-saturation.ts)
      assert.ok(nap.got - nap.truth <= 0.025, `nap got ${(100 * nap.got).toFixed(1)} % for ${(100 * nap.truth).toFixed(1)} % of the CPU`);
      // the others: within 3 points (the goal; bench/sampler-saturation.ts measures it with more
      // samples), allowing this run's sampling noise (2.5σ)
      for (const r of rows) {
        const sigma = Math.sqrt((r.truth * (1 - r.truth)) / r.n);
        assert.ok(Math.abs(r.got - r.truth) <= 0.03 + 2.5 * sigma, `${r.f}: ${(100 * r.got).toFixed(1)} % sampled, ${(100 * r.truth).toFixed(1)} % true (σ ${(100 * sigma).toFixed(1)})`);
      }
    } finally {
      await killed(child);
      await Promise.all(hogs.map(killed));
    }
  }));

test('periodic work: two 5 ms halves sampled at 100 Hz come out 50/50 within 3σ (random intervals)', (t) =>
  exclusive('timing', async () => {
    const py = pythons.find((p) => p.minor === 12) ?? pythons.at(-1)!;
    const child = spawn(py.exe, [join(WORKLOADS, 'periodic.py'), '5', '20'], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      assert.equal(await firstLine(child, 'periodic.py'), 'ready');
      const p = await sampleProcess(child.pid!, { rateHz: 100, durationS: 4 });
      const a = shareOf(p, 'a');
      const b = shareOf(p, 'b');
      const share = a.share / (a.share + b.share);
      const sigma = Math.sqrt(0.25 / a.n);
      t.diagnostic(`a() ${(100 * share).toFixed(1)} % of ${a.n} samples (σ ${(100 * sigma).toFixed(1)} points); ${p.meta.extra!.intervals}`);
      assert.ok(Math.abs(share - 0.5) <= 3 * sigma, `a() ${(100 * share).toFixed(1)} %`);
    } finally {
      await killed(child);
    }
  }));

test('a long C call is CPU: a thread inside one C call (its Python frame never moves) counts as on a CPU at 100 Hz and 1 kHz', (t) =>
  exclusive('timing', async () => {
    const py = pythons.find((p) => p.minor === 12) ?? pythons.at(-1)!;
    // pbkdf2_hmac: one C call of ~0.3–1 s per loop; the thread stays on its CPU the whole time
    const code = "import hashlib\nprint('ready', flush=True)\nwhile True:\n    hashlib.pbkdf2_hmac('sha256', b'k', b's', 3000000)\n";
    const child = spawn(py.exe, ['-c', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      assert.equal(await firstLine(child, 'pbkdf2 loop'), 'ready');
      for (const rateHz of [100, 1000]) {
        const cpu0 = threadCpuNs(child.pid!);
        const w0 = performance.now();
        const p = await sampleProcess(child.pid!, { rateHz, durationS: 1.5, idle: true });
        const truth = (threadCpuNs(child.pid!) - cpu0) / ((performance.now() - w0) * 1e6);
        let on = 0;
        for (let i = 0; i < p.samples.length; i++) if (p.samples.state[i] === 1) on++;
        const share = on / p.samples.length;
        t.diagnostic(`${rateHz} Hz: ${on} of ${p.samples.length} samples on a CPU (${(100 * share).toFixed(1)} %), the thread was on a CPU ${(100 * truth).toFixed(1)} % of the time; ${samplerQuality(p.meta)}`);
        // the waits between (something else preempted it) are rightly idle; the first tick
        // cannot tell a C call from a wait (nothing seen before). Samples are instants: on a
        // busy machine the share scatters around the truth by the binomial σ (150 samples at
        // 100 Hz: ~3 points), so the bound is 3σ, at least 6 points, plus that first tick
        const n = p.samples.length;
        const q = Math.min(1, Math.max(0, truth)); // schedstat over wall can read a hair above 1
        const slack = Math.max(0.06, 3 * Math.sqrt((q * (1 - q)) / n)) + 1 / n;
        assert.ok(share >= truth - slack, `${rateHz} Hz: only ${(100 * share).toFixed(1)} % of the samples of a thread in a C call were on a CPU, against ${(100 * truth).toFixed(1)} % of its time (allowed ${(100 * slack).toFixed(1)} points below)`);
      }
    } finally {
      await killed(child);
    }
  }));

/**
 * `sleepers` threads looping on time.sleep(`sleepS`) beside `spinners` busy ones for
 * `seconds`, recorded at 100 Hz: the sleepers' share of the CPU samples against their share
 * of thread CPU (thread_time, summed in the program), with σ of a perfect sampler.
 */
/**
 * `pylens record -r 100` of a `python -c` program (at a nice level: the program too), into a
 * folded file: its stderr, and the samples of the stacks a pattern matches.
 */
function recordFolded(py: (typeof pythons)[number], code: string, nice?: number): { stderr: string; samples: (re: RegExp) => number } {
  const out = join(mkdtempSync(join(tmpdir(), 'pylens-share-')), 'share.folded');
  const argv = [process.execPath, CLI, 'record', '-r', '100', '-o', out, '--', py.exe, '-c', code];
  if (nice !== undefined) argv.unshift('nice', '-n', String(nice));
  const p = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  assert.equal(p.status, 0, p.stderr);
  const lines = readFileSync(out, 'utf8').split('\n');
  return {
    stderr: p.stderr,
    samples: (re) => {
      let k = 0;
      for (const line of lines) {
        const m = /^(.*) (\d+)$/.exec(line);
        if (m && re.test(m[1]!)) k += Number(m[2]);
      }
      return k;
    },
  };
}

/**
 * Samples `a` against `b`, and the CPU time each had in truth: `a`'s share of the samples,
 * its share of the CPU time, and the sampling noise (σ) of a share of this many samples.
 */
function splitAgainstTruth(a: number, b: number, trueA: number, trueB: number): { n: number; share: number; trueShare: number; sigma: number } {
  const n = a + b;
  const trueShare = trueA / (trueA + trueB);
  return { n, share: a / Math.max(1, n), trueShare, sigma: Math.sqrt((trueShare * (1 - trueShare)) / Math.max(1, n)) };
}

function sleeperShare(py: (typeof pythons)[number], o: { sleepers: number; sleepS: number; spinners: number; seconds: number; nice?: number }) {
  const code = [
    'import threading, time, sys, json',
    `stop = time.time() + ${o.seconds}`,
    'cpu = {"sleeper": 0.0, "spinner": 0.0}',
    'lock = threading.Lock()',
    'def sleeper():',
    '    while time.time() < stop:',
    `        time.sleep(${o.sleepS})`,
    '    with lock: cpu["sleeper"] += time.thread_time()',
    'def spinner():',
    '    x = 0',
    '    while time.time() < stop:',
    '        x += 1',
    '    with lock: cpu["spinner"] += time.thread_time()',
    `ts = [threading.Thread(target=sleeper) for _ in range(${o.sleepers})] + [threading.Thread(target=spinner) for _ in range(${o.spinners})]`,
    'for t in ts: t.start()',
    'for t in ts: t.join()',
    'print(json.dumps(cpu), file=sys.stderr)',
  ].join('\n');
  const r = recordFolded(py, code, o.nice);
  const truth = JSON.parse(/\{"sleeper".*\}/.exec(r.stderr)![0]) as { sleeper: number; spinner: number };
  const sleeper = r.samples(/\bsleeper\b/);
  const spinner = r.samples(/\bspinner\b/);
  const { n, share, trueShare, sigma } = splitAgainstTruth(sleeper, spinner, truth.sleeper, truth.spinner);
  const said = `${py.label}: sleeper ${sleeper}, spinner ${spinner} samples (${(100 * share).toFixed(1)} % sleepers; their thread CPU ${(100 * trueShare).toFixed(1)} %)\n${r.stderr}`;
  return { sleeper, spinner, n, share, trueShare, sigma, said };
}

/**
 * A thread pool woken for bursts of work beside a busy thread: 200 workers blocked on a
 * queue, `perTurn` items of `iterations` additions put every 20 ms, for `seconds`. Truth: the
 * workers' thread_time inside work() and the busy thread's; record's CPU samples in work()
 * and busy() against it.
 */
function poolShare(py: (typeof pythons)[number], o: { workers: number; perTurn: number; iterations: number; seconds: number; nice?: number }) {
  const code = [
    'import threading, time, sys, json, queue',
    `stop = time.time() + ${o.seconds}`,
    'q = queue.Queue()',
    'cpu = {"work": 0.0, "busy": 0.0, "items": 0}',
    'lock = threading.Lock()',
    'def work():',
    '    s = 0',
    `    for i in range(${o.iterations}): s += i`,
    'def worker():',
    '    while q.get():',
    '        t0 = time.thread_time()',
    '        work()',
    '        t = time.thread_time() - t0',
    '        with lock:',
    '            cpu["work"] += t',
    '            cpu["items"] += 1',
    'def busy():',
    '    x = 0',
    '    while time.time() < stop:',
    '        x += 1',
    '    with lock: cpu["busy"] += time.thread_time()',
    `ws = [threading.Thread(target=worker) for _ in range(${o.workers})]`,
    'b = threading.Thread(target=busy)',
    'for t in ws + [b]: t.start()',
    'while time.time() < stop:',
    `    for _ in range(${o.perTurn}): q.put(1)`,
    '    time.sleep(0.02)',
    'for _ in ws: q.put(0)',
    'for t in ws + [b]: t.join()',
    'print(json.dumps(cpu), file=sys.stderr)',
  ].join('\n');
  const r = recordFolded(py, code, o.nice);
  const truth = JSON.parse(/\{"work".*\}/.exec(r.stderr)![0]) as { work: number; busy: number; items: number };
  const work = r.samples(/\bwork\b/);
  const busy = r.samples(/\bbusy\b/);
  const { n, share, trueShare, sigma } = splitAgainstTruth(work, busy, truth.work, truth.busy);
  const said = `${py.label}: work() ${work}, busy() ${busy} CPU samples (${(100 * share).toFixed(1)} % work; its thread CPU ${(100 * trueShare).toFixed(1)} % of the two, ${truth.items} items)`;
  return { work, busy, n, share, trueShare, sigma, said };
}

test('thread pool: 200 workers woken by a queue for ms bursts of work beside a busy thread — the work gets its CPU share, on CPython 3.9 and 3.12', (t) =>
  exclusive('timing', async () => {
    // a woken worker holds the GIL for its burst; the thread holding it in the picture has its
    // state read first, and its frames read at once (asleep at the last tick, they were not
    // fetched with the picture). Read after the states of 200 sleepers, the bursts were over:
    // 8.1–13.7 % of the samples for a true 14.0–20.1 % (this test, 3.9 and 3.12), and in
    // the samples that were kept, the worker was often back in its queue
    for (const minor of [9, 12]) {
      const py = pythons.find((p) => p.minor === minor) ?? pythons.at(-1)!;
      const r = poolShare(py, { workers: 200, perTurn: 4, iterations: 20000, seconds: 8, nice: -10 });
      t.diagnostic(r.said);
      assert.ok(r.n >= 400, `${r.n} CPU samples of ~800\n${r.said}`);
      // 3 points and 2.5σ either way (σ ≈ 1.3 points at 15 % of ~750): the code before gave
      // 4–6 points under alone; a full suite beside this test took 1–2 points more from both
      assert.ok(Math.abs(r.share - r.trueShare) <= 0.03 + 2.5 * r.sigma, r.said);
    }
  }));

test('CPU mode: threads asleep at the picture are not walked (50 sleepers beside a spinner), yet the spinner is sampled at every tick and the sleepers in wall mode', (t) =>
  exclusive('timing', async () => {
    const py = pythons.find((p) => p.minor === 12) ?? pythons.at(-1)!;
    const code = [
      'import threading, time',
      'def sleeper():',
      '    while True: time.sleep(0.5)',
      'def spinner():',
      '    x = 0',
      '    while True: x += 1',
      'for _ in range(50): threading.Thread(target=sleeper, daemon=True).start()',
      'threading.Thread(target=spinner, daemon=True).start()',
      'print("ready", flush=True)',
      'time.sleep(60)',
    ].join('\n');
    const child = spawn(py.exe, ['-c', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      assert.equal(await firstLine(child, 'sleepers'), 'ready');
      const cpu = await sampleProcess(child.pid!, { rateHz: 100, durationS: 1.5 });
      const ticks = Number(cpu.meta.extra!.ticks);
      const skipped = Number(cpu.meta.extra!.asleepNotWalked);
      const samplesIn = (p: Profile, name: string): number => {
        let k = 0;
        for (let i = 0; i < p.samples.length; i++) if (stackFrames(p, p.samples.stack[i]!).some((f) => frameInfo(p, f).name === name)) k++;
        return k;
      };
      const spinner = { n: samplesIn(cpu, 'spinner') };
      t.diagnostic(`${py.label}: ${ticks} ticks, ${skipped} thread samples not walked (of ${51 * ticks} threads × ticks), spinner in ${spinner.n} samples`);
      // the first two ticks walk everything (no state known yet); after that a sleeper is
      // walked only in the rare tick it is not asleep
      assert.ok(skipped >= 0.8 * 50 * (ticks - 2), `${skipped} thread samples not walked in ${ticks} ticks`);
      assert.ok(spinner.n >= 0.6 * ticks, `spinner sampled in ${spinner.n} of ${ticks} ticks`);
      const wall = await sampleProcess(child.pid!, { rateHz: 100, durationS: 0.5, idle: true });
      assert.equal(Number(wall.meta.extra!.asleepNotWalked), 0, 'wall mode reads every stack');
      const wallTicks = Number(wall.meta.extra!.ticks);
      assert.ok(samplesIn(wall, 'sleeper') >= 0.8 * 50 * wallTicks, `wall mode: ${samplesIn(wall, 'sleeper')} sleeper samples in ${wallTicks} ticks`);
    } finally {
      await killed(child);
    }
  }));

test('CPU mode: a busy thread is seen moving in the picture\'s own read (its leaf words read before and after the pages), and a sleeping one is not — on every CPython', { timeout: 120_000 }, (t) => exclusive('timing', async () => {
  const code = [
    'import threading, time',
    'def nap():',
    '    while True: time.sleep(0.005)',
    'def spin():',
    '    x = 0',
    '    while True:',
    '        for i in range(1000): x += i',
    'threading.Thread(target=nap, daemon=True).start()',
    'print("ready", flush=True)',
    'spin()',
  ].join('\n');
  // the sampler on one CPU, the target on the other: a spinner that runs is running during the picture
  let checked = 0;
  let pin = false;
  await onTwoCpus(async (target, pinned) => {
  pin = pinned;
  for (const py of pythons) {
    const child = target([py.exe, '-c', code]);
    try {
      assert.equal(await firstLine(child, 'spin'), 'ready');
      // the main thread spins: its CPU time over the run says how much of it it was running
      const c0 = threadCpuNs(child.pid!);
      const w0 = performance.now();
      const p = await sampleProcess(child.pid!, { rateHz: 100, durationS: 1 });
      const running = (threadCpuNs(child.pid!) - c0) / ((performance.now() - w0) * 1e6);
      const ticks = Number(p.meta.extra!.ticks);
      const inPicture = Number(p.meta.extra!.movedInPicture);
      let spin = 0;
      let nap = 0;
      for (let i = 0; i < p.samples.length; i++) {
        const names = stackFrames(p, p.samples.stack[i]!).map((f) => frameInfo(p, f).name);
        if (names.includes('spin')) spin++;
        if (names.includes('nap')) nap++;
      }
      t.diagnostic(`${py.label}: ${ticks} ticks, moved in the picture ${inPicture}, spin() ${spin} CPU samples, nap() ${nap}; the spinner ran ${(100 * running).toFixed(0)} % of the time`);
      assert.ok(inPicture <= ticks, `${py.label}: ${inPicture} moves in the picture for one busy thread in ${ticks} ticks`);
      // on a CPU about as often as it ran (a loaded machine gives it less of one)
      assert.ok(spin >= (Math.min(running, 1) - 0.15) * ticks, `${py.label}: spin() in ${spin} CPU samples of ${ticks} ticks, for a thread that ran ${(100 * running).toFixed(0)} % of the time`);
      // the bracket only adds positives: the sleeper (on a CPU µs per 5 ms) stays off
      assert.ok(nap <= 0.1 * ticks, `${py.label}: the sleeper in ${nap} CPU samples of ${ticks} ticks`);
      // a spinner that had a CPU to itself runs during the picture's read at nearly every
      // tick, and is seen moving there from its second tick on. On a loaded machine it shares
      // the sampler's CPU, which it leaves at each of the sampler's wake-ups (judged then by
      // its state, as before): no bound holds, and that run is not counted
      if (running < 0.9 || !pin) continue;
      checked++;
      assert.ok(inPicture >= 0.7 * (ticks - 2), `${py.label}: ${inPicture} threads seen moving in the picture in ${ticks} ticks (the spinner ran ${(100 * running).toFixed(0)} % of the time)`);
    } finally {
      await killed(child);
    }
  }
  });
  // on a machine this loaded (or with one CPU) the bound says nothing: the test says so
  if (checked === 0 && pythons.length > 0) t.diagnostic(`no run had its spinner on a CPU of its own 90 % of the time${pin ? '' : ' (one CPU, or taskset failed)'}: the bracket bound was not checked`);
}));

test('CPU mode, steady ticks: a busy thread whose stack changes tick to tick is sampled whole the short way, and a thread that starts meanwhile is found — on every CPython', { timeout: 120_000 }, (t) => exclusive('timing', async () => {
  const code = [
    'import signal, threading',
    'def late():',
    '    x = 0',
    '    while True:',
    '        for i in range(1000): x += i',
    'def leaf():',
    '    x = 0',
    '    for i in range(3000): x += i',
    'def a(n):',
    '    if n: return a(n - 1)',
    '    leaf()',
    'def b(n):',
    '    if n: return b(n - 1)',
    '    leaf()',
    'signal.signal(signal.SIGUSR1, lambda *_: threading.Thread(target=late, daemon=True).start())',
    'print("ready", flush=True)',
    'while True:',
    '    a(3)',
    '    b(8)',
  ].join('\n');
  await onTwoCpus(async (target, pin) => {
    for (const py of pythons) {
      const child = target([py.exe, '-c', code]);
      try {
        assert.equal(await firstLine(child, 'steady'), 'ready');
        // a second busy thread starts halfway: until then one thread, moving at every tick
        const c0 = threadCpuNs(child.pid!);
        const w0 = performance.now();
        let running = 0;
        const half = setTimeout(() => {
          running = (threadCpuNs(child.pid!) - c0) / ((performance.now() - w0) * 1e6);
          child.kill('SIGUSR1');
        }, 1000);
        const p = await sampleProcess(child.pid!, { rateHz: 100, durationS: 2 });
        clearTimeout(half);
        const ticks = Number(p.meta.extra!.ticks);
        const steady = Number(p.meta.extra!.steadyTicks);
        const n = p.samples.length;
        let inA = 0;
        let inB = 0;
        let inLate = 0;
        for (let i = 0; i < n; i++) {
          const names = stackFrames(p, p.samples.stack[i]!).map((f) => frameInfo(p, f).name);
          // whole: from the thread's base, a()/b() at their full depth under <module>
          const root = names[0]; // (root first)
          assert.ok(root === '<module>' || root === '_bootstrap', `${py.label}: a stack rooted at ${root}: ${names.join(' > ')}`);
          // (not checked here: that each stack is one that existed — a picture copied while the
          // thread calls and returns can mix a() and b() frames, with the steady tick or
          // without: see bench/README.md, sampler-cuts)
          if (names.includes('late')) inLate++;
          else if (names.includes('a')) inA++;
          else if (names.includes('b')) inB++;
        }
        t.diagnostic(`${py.label}: ${ticks} ticks, ${steady} steady; a ${inA}, b ${inB}, late ${inLate} of ${n} samples; the main thread ran ${(100 * running).toFixed(0)} % of the first second`);
        assert.ok(inA >= 0.1 * n && inB >= 0.2 * n, `${py.label}: a() in ${inA}, b() in ${inB} of ${n} samples`);
        // the thread started halfway shares the GIL for the second half: about a quarter of the ticks
        assert.ok(inLate >= 0.08 * ticks, `${py.label}: late() in ${inLate} samples of ${ticks} ticks`);
        // alone on its CPU, the busy thread makes some ticks of the first half steady ones (those
        // in which its last leaf's words move during the picture and it neither calls nor
        // returns while the picture is copied: 8–25 % of all ticks here; none in the second
        // half, where the two threads share the GIL)
        if (pin && running >= 0.9) assert.ok(steady >= 0.03 * ticks, `${py.label}: ${steady} steady ticks of ${ticks}`);
      } finally {
        await killed(child);
      }
    }
  });
}));

test('wall mode: a thread that has not run since its last read is not read again (its last stack is given), one that ran is read — 40 blocked threads beside one that sleeps in a() and b() in turn, on every CPython', async (t) => {
  const code = [
    'import threading, time',
    'ev = threading.Event()',
    'def blocked():',
    '    ev.wait()',
    'def a():',
    '    time.sleep(0.03)',
    'def b():',
    '    time.sleep(0.03)',
    'def alternate():',
    '    while True:',
    '        a()',
    '        b()',
    'for _ in range(40): threading.Thread(target=blocked, daemon=True).start()',
    'threading.Thread(target=alternate, daemon=True).start()',
    'print("ready", flush=True)',
    'time.sleep(60)',
  ].join('\n');
  for (const py of pythons) {
    const child = spawn(py.exe, ['-c', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      assert.equal(await firstLine(child, 'blocked threads'), 'ready');
      const wall = await sampleProcess(child.pid!, { rateHz: 100, durationS: 1.5, idle: true });
      const ticks = Number(wall.meta.extra!.ticks);
      const reused = Number(wall.meta.extra!.unrunReused);
      const count = (name: string): number => {
        let k = 0;
        for (let i = 0; i < wall.samples.length; i++) if (stackFrames(wall, wall.samples.stack[i]!).some((f) => frameInfo(wall, f).name === name)) k++;
        return k;
      };
      const blocked = count('blocked');
      const [inA, inB] = [count('a'), count('b')];
      t.diagnostic(`${py.label}: ${ticks} ticks, ${reused} stacks given again, blocked in ${blocked} samples, a ${inA} b ${inB}`);
      // every tick has the 40 blocked threads; after the first ticks (no clock known yet) none is read again
      assert.ok(blocked >= 0.95 * 40 * ticks, `${py.label}: ${blocked} samples of the blocked threads in ${ticks} ticks`);
      assert.ok(reused >= 0.8 * 40 * (ticks - 3), `${py.label}: ${reused} stacks given again in ${ticks} ticks`);
      // the alternating thread runs between a() and b(): read again each time, so each gets
      // about half of its samples (a stack given again after it ran would keep one of them)
      const share = inA / (inA + inB);
      assert.ok(inA + inB >= 0.9 * ticks && Math.abs(share - 0.5) <= 0.15, `${py.label}: a() in ${inA}, b() in ${inB} samples of ${ticks} ticks`);
      // the CPU-mode path is left as it was
      const cpu = await sampleProcess(child.pid!, { rateHz: 100, durationS: 0.3 });
      assert.equal(Number(cpu.meta.extra!.unrunReused), 0);
    } finally {
      await killed(child);
    }
  }
});

test('brief bursts: 200 threads sleeping 50 ms beside 2 busy ones — the sleepers, each on a CPU for µs at a time (taking the GIL), get their CPU share', (t) =>
  exclusive('timing', async () => {
    const py = pythons.find((p) => p.minor === 11) ?? pythons.at(-1)!;
    // 4,000 wake-ups a second, each a GIL hand-over of a few µs: 15–25 % of the process's CPU
    // (thread_time). A sleeper running at the picture has gone back to sleep before its task
    // clock is read; judged by the clock alone it was waiting: 2–9 % of the samples. Its
    // state read again says it ran in between (ranThenBlocked), and states read right after
    // the picture, not after a walk of 200 threads, keep that moment short
    // at nice -10 (the program too): in a full suite, a test beside it once took the CPUs
    // from the sampler's reads and the sleepers alike (6.0 % for a true 16.5 %)
    const r = sleeperShare(py, { sleepers: 200, sleepS: 0.05, spinners: 2, seconds: 3, nice: -10 });
    t.diagnostic(r.said);
    assert.ok(r.n >= 150, `${r.n} CPU samples of ~300\n${r.said}`);
    // 5 points and 2.5σ of ~300 samples (σ ≈ 2.3 points at 20 %): on 3.11 the sleepers are
    // still under-counted by 4–5 points on average (much of their CPU is the GIL's hand-over
    // in the kernel, a few µs each), and with 3 points a run alone failed 1 in ~20 (15.7 % for
    // 25.0 %); the bug this guards against gave 2–9 % for 15–21 %
    assert.ok(Math.abs(r.share - r.trueShare) <= 0.05 + 2.5 * r.sigma, `the sleepers got ${(100 * r.share).toFixed(1)} % of the CPU samples (${r.sleeper} of ${r.n}), their CPU share is ${(100 * r.trueShare).toFixed(1)} %\n${r.said}`);
  }));

test('many threads: 150 sleeping threads and one busy one, ending together — the sleepers get their CPU share, and no sample comes of threads that have ended', (t) =>
  exclusive('timing', async () => {
    const py = pythons.find((p) => p.minor === 12) ?? pythons.at(-1)!;
    // the sleepers wake 5×/s each (750 wake-ups/s), each taking the GIL from the spinner: a
    // few % of the CPU in all, which they report (thread_time). Before: a walk of 150 threads
    // took ms, and a sleeper that woke during it counted as "moved" or "pushed off by the
    // sampler"; every thread's last tick, after it had ended, counted as CPU (its state
    // unreadable): 33.7 % of the samples
    const r = sleeperShare(py, { sleepers: 150, sleepS: 0.2, spinners: 1, seconds: 2.0 });
    t.diagnostic(r.said);
    assert.ok(r.spinner >= 100, `spinner: ${r.spinner} samples of ~200\n${r.said}`);
    // 3σ of ~200 samples, and 3 points
    assert.ok(Math.abs(r.share - r.trueShare) <= 0.03 + 3 * r.sigma, `the sleepers got ${(100 * r.share).toFixed(1)} % of the CPU samples (${r.sleeper} of ${r.n}), their CPU share is ${(100 * r.trueShare).toFixed(1)} %\n${r.said}`);
  }));
