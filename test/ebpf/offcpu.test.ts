/**
 * `pylens offcpu` end to end: real bpftrace, the real sampler, real CPython 3.12, and a
 * workload that measures its own off-CPU time per function (wall time minus the thread's
 * CPU time). The attributed off-CPU time of each function must be within 10 % of the
 * workload's figure, with the right wait class; two CPU-bound threads show GIL waits; and
 * no probe is left behind.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../helpers/format-checks.ts';
import { exclusive } from '../helpers/exclusive.ts';
import { pyenvRoot } from '../sampler/pythons.ts';
import { decodePylens } from '../../src/formats/pylens.ts';
import { frameInfo, sampleState, stackFrames } from '../../src/model/profile.ts';
import type { OffCpuReport, WaitClass } from '../../src/analysis/offcpu.ts';

const MAIN = join(ROOT, 'src', 'cli', 'main.ts');
const WORKLOAD = join(ROOT, 'test', 'ebpf', 'scripts', 'offcpu_workload.py');
const PY = `${pyenvRoot() ?? '/root/.pyenv'}/versions/3.12.1/bin/python3.12`;
const haveBpftrace = spawnSync('bpftrace', ['--version']).status === 0;
const skip = !existsSync(PY) ? `no ${PY}` : !haveBpftrace ? 'no bpftrace' : process.getuid?.() !== 0 ? 'needs root' : false;

/** Resolve when `text()` matches `re` (polled), reject after `ms` or when `p` exits first. */
async function waitFor(text: () => string, re: RegExp, ms: number, p: ChildProcess, what: string): Promise<void> {
  const t0 = Date.now();
  while (!re.test(text())) {
    if (p.exitCode !== null || p.signalCode !== null) throw new Error(`${what} ended before ${re}: ${text().slice(-2000)}`);
    if (Date.now() - t0 > ms) throw new Error(`no ${re} from ${what} within ${ms} ms: ${text().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** bpf program ids held open by a process (its fdinfo), e.g. bpftrace's */
function progIdsOf(pid: number): number[] {
  const ids: number[] = [];
  try {
    for (const fd of readdirSync(`/proc/${pid}/fdinfo`)) {
      try {
        const m = /^prog_id:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
        if (m) ids.push(Number(m[1]));
      } catch {
        /* closed meanwhile */
      }
    }
  } catch {
    /* gone */
  }
  return ids;
}

/** bpftrace processes tracing `target` (whatever wrapper started them) */
function bpftracesOf(target: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const exe = readlinkSync(`/proc/${d}/exe`);
      const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      if (/bpftrace/.test(exe) && argv.includes(String(target))) out.push(Number(d));
    } catch {
      /* gone or not ours to read */
    }
  }
  return out;
}

const progLoaded = (id: number) => spawnSync('bpftool', ['prog', 'show', 'id', String(id)]).status === 0;

interface Run {
  report: OffCpuReport & { output: string; backend: string; gilProbe: boolean; gilMethod: string | null; lostEvents: number; warnings: string[] };
  measured: Record<string, { offcpu_ns: number; wall_ns: number; cpu_ns: number }>;
  stderr: string;
  dir: string;
  /** programs bpftrace held while recording */
  progIds: number[];
  tracerPids: number[];
}

/** Start the workload, attach `pylens offcpu -p` to it, let it run, collect both sides. */
async function record(t: TestContext, mode: 'waits' | 'gil' | 'mixed', seconds: number, extra: string[] = []): Promise<Run> {
  const dir = mkdtempSync(join('/var/tmp', 'pylens-offcpu-test-')); // the real disk, not a tmpfs
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const go = join(dir, 'go');
  const res = join(dir, 'result.json');
  const args = mode === 'waits' ? [WORKLOAD, 'waits', go, res, dir, String(seconds)] : [WORKLOAD, mode, go, res, String(seconds)];
  const w = spawn(PY, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => w.kill('SIGKILL'));
  let wout = '';
  w.stdout!.on('data', (d: Buffer) => (wout += d));
  await waitFor(() => wout, /ready/, 60_000, w, 'the workload');
  const out = join(dir, 'offcpu.pylens');
  const p = await attachOffcpu(t, w.pid!, ['--json', '-o', out, ...extra]);
  writeFileSync(go, '');
  const code = await p.exited;
  assert.equal(code, 0, p.stderr());
  return { report: JSON.parse(p.stdout()), measured: JSON.parse(readFileSync(res, 'utf8')), stderr: p.stderr(), dir, progIds: p.progIds, tracerPids: p.tracerPids };
}

/** `pylens offcpu -p PID ARGS`, once it says it is recording: its output so far, its exit, the bpftraces and programs it holds. */
async function attachOffcpu(t: TestContext, pid: number, args: string[]) {
  const p = spawn(process.execPath, [MAIN, 'offcpu', '-p', String(pid), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => p.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  p.stdout!.on('data', (d: Buffer) => (stdout += d));
  p.stderr!.on('data', (d: Buffer) => (stderr += d));
  const exited = new Promise<number | null>((r) => p.on('exit', (c) => r(c)));
  await waitFor(() => stderr, /recording off-CPU time of PID/, 120_000, p, 'pylens offcpu');
  const tracerPids = bpftracesOf(pid);
  return { child: p, exited, stdout: () => stdout, stderr: () => stderr, tracerPids, progIds: tracerPids.flatMap(progIdsOf) };
}

const share = (f: OffCpuReport['functions'][number], c: WaitClass) => (f.byClass[c]?.ns ?? 0) / f.totalNs;

test('off-CPU time per Python function matches the workload’s own, with the right wait class; probes gone after', { skip, timeout: 300_000 }, (t) =>
  exclusive('timing', async () => {
    const run = await record(t, 'waits', 4);
    const { report, measured } = run;
    assert.equal(report.backend, 'bpftrace');
    const expect: Record<string, WaitClass> = { sleep_a_lot: 'sleep', wait_for_lock: 'lock', read_socket: 'network', write_and_fsync: 'disk' };
    const lines: string[] = [];
    for (const [fn, cls] of Object.entries(expect)) {
      const got = report.functions.find((f) => f.name === fn);
      assert.ok(got, `${fn} not in the report: ${report.functions.map((f) => f.name).join(', ')}`);
      const want = measured[fn]!.offcpu_ns;
      const err = (got.totalNs - want) / want;
      lines.push(`${fn}: ${(got.totalNs / 1e6).toFixed(1)} ms attributed vs ${(want / 1e6).toFixed(1)} ms measured (${(100 * err).toFixed(1)} %), ${cls} ${(100 * share(got, cls)).toFixed(0)} %`);
      // on failure, what the capture said (lost events, warnings) and how records were matched
      assert.ok(Math.abs(err) <= 0.1, `${lines.at(-1)}; lost events ${report.lostEvents}; warnings ${JSON.stringify(report.warnings)}; matched ${JSON.stringify(report.matched)}`);
      assert.ok(share(got, cls) >= 0.8, `${fn}: ${cls} is only ${(100 * share(got, cls)).toFixed(0)} % of its off-CPU time: ${JSON.stringify(got.byClass)}`);
    }
    t.diagnostic(lines.join('; '));
    // the lock holder sleeps with the lock held: sleep, in its own function
    assert.ok(share(report.functions.find((f) => f.name === 'hold_the_lock')!, 'sleep') >= 0.8);
    assert.ok(report.matched.none <= 0.02 * (report.matched.inside + report.matched.near + report.matched.none), JSON.stringify(report.matched));

    // the profile: Python frames → [wait: class] → kernel frames, in ns, state off-cpu
    const p = decodePylens(new Uint8Array(readFileSync(report.output)));
    assert.equal(p.meta.lens, 'ebpf');
    assert.equal(p.valueTypes[0]!.unit, 'nanoseconds');
    let sleepNs = 0;
    for (let i = 0; i < p.samples.length; i++) {
      const fs = stackFrames(p, p.samples.stack[i]!).map((f) => frameInfo(p, f));
      const m = fs.findIndex((f) => f.kind === 'marker' && f.name.startsWith('[wait: '));
      assert.ok(m > 0, fs.map((f) => f.name).join(';'));
      assert.ok(fs.slice(m + 1).every((f) => f.kind === 'kernel'));
      if (fs[m - 1]!.name === 'sleep_a_lot' && fs[m]!.name === '[wait: sleep]') {
        assert.ok(fs.slice(m + 1).some((f) => /nanosleep/.test(f.name)), fs.map((f) => f.name).join(';'));
        assert.equal(sampleState(p, i), 'off-cpu');
        sleepNs += p.samples.values[0]![i]!;
      }
    }
    assert.ok(Math.abs(sleepNs - measured.sleep_a_lot!.offcpu_ns) <= 0.1 * measured.sleep_a_lot!.offcpu_ns);

    // nothing left attached: bpftrace's programs unloaded, bpftrace gone
    assert.ok(run.progIds.length > 0, `no bpf programs found in bpftrace ${run.tracerPids.join(',')} while recording`);
    for (const id of run.progIds) assert.equal(progLoaded(id), false, `bpf program ${id} still loaded`);
    for (const pid of run.tracerPids) assert.equal(existsSync(`/proc/${pid}`), false, `bpftrace ${pid} still running`);
  }));

for (const method of process.arch === 'x64' ? ['futex', 'uprobe'] : ['uprobe']) test(`two CPU-bound threads: their off-CPU time is GIL wait (--gil-method ${method})`, { skip, timeout: 300_000 }, (t) =>
  exclusive('timing', async () => {
    const { report, measured } = await record(t, 'gil', 3, ['--gil-method', method]);
    assert.equal(report.gilProbe, true);
    assert.equal(report.gilMethod, method);
    for (const fn of ['spin_a', 'spin_b']) {
      const got = report.functions.find((f) => f.name === fn);
      assert.ok(got, `${fn} not in the report`);
      const want = measured[fn]!.offcpu_ns;
      t.diagnostic(`${fn}: ${(got.totalNs / 1e6).toFixed(1)} ms attributed vs ${(want / 1e6).toFixed(1)} ms measured; GIL ${(100 * share(got, 'gil')).toFixed(0)} %`);
      assert.ok(want > 0.2 * measured[fn]!.wall_ns, `the threads did not contend: ${JSON.stringify(measured)}`);
      // On a busy machine the threads also wait for a CPU (preempted): of the rest, the GIL is
      // nearly all, and a good part of the whole.
      const gil = got.byClass.gil?.ns ?? 0;
      const notPreempted = got.totalNs - (got.byClass.preempted?.ns ?? 0);
      assert.ok(gil >= 0.8 * notPreempted && gil >= 0.25 * got.totalNs, `${fn}: GIL wait is only ${(100 * share(got, 'gil')).toFixed(0)} %: ${JSON.stringify(got.byClass)}`);
      assert.ok(Math.abs(got.totalNs - want) <= 0.1 * want, `${fn}: ${got.totalNs} vs ${want}`);
    }
  }));

test('--with-cpu: one profile with on-CPU samples and off-CPU waits of the same run', { skip, timeout: 300_000 }, (t) =>
  exclusive('timing', async () => {
    const { report, measured } = await record(t, 'mixed', 3, ['--with-cpu']);
    const p = decodePylens(new Uint8Array(readFileSync(report.output)));
    assert.equal(p.meta.mode, 'wall');
    const by = new Map<string, number>();
    for (let i = 0; i < p.samples.length; i++) {
      const fs = stackFrames(p, p.samples.stack[i]!).map((f) => frameInfo(p, f).name);
      if (!fs.includes('burn_and_sleep')) continue;
      const st = sampleState(p, i);
      // waits carry their class and kernel frames; CPU samples end in Python
      if (st === 'on-cpu') assert.ok(!fs.some((n) => n.startsWith('[wait: ')), fs.join(';'));
      else assert.ok(fs.some((n) => n.startsWith('[wait: ')), fs.join(';'));
      by.set(st, (by.get(st) ?? 0) + p.samples.values[0]![i]!);
    }
    const m = measured.burn_and_sleep!;
    const cpu = by.get('on-cpu') ?? 0;
    const wait = (by.get('off-cpu') ?? 0) + (by.get('gil') ?? 0);
    t.diagnostic(`burn_and_sleep: on-CPU ${(cpu / 1e6).toFixed(0)} ms (measured ${(m.cpu_ns / 1e6).toFixed(0)}), off-CPU ${(wait / 1e6).toFixed(0)} ms (measured ${(m.offcpu_ns / 1e6).toFixed(0)}); ${JSON.stringify(report.cpu)}`);
    // waits are measured; so is CPU time, spread over the on-CPU samples (3 s at 100 Hz, half of it running: ~150)
    assert.ok(Math.abs(wait - m.offcpu_ns) <= 0.1 * m.offcpu_ns, `off-CPU ${wait} vs ${m.offcpu_ns}`);
    // on-CPU time is the thread's watched span less its measured waits (preemptions included)
    assert.ok(Math.abs(cpu - m.cpu_ns) <= 0.2 * m.cpu_ns, `on-CPU ${cpu} vs ${m.cpu_ns}`);
    assert.ok(report.cpu && report.cpu.samples > 0);
  }));

test('Ctrl-C stops an attached recording: the profile is written, the target keeps running, no probe is left', { skip, timeout: 300_000 }, (t) =>
  exclusive('timing', async () => {
    const dir = mkdtempSync(join('/var/tmp', 'pylens-offcpu-test-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const go = join(dir, 'go');
    writeFileSync(go, '');
    const w = spawn(PY, [WORKLOAD, 'waits', go, join(dir, 'r.json'), dir, '600'], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.after(() => w.kill('SIGKILL'));
    let wout = '';
    w.stdout!.on('data', (d: Buffer) => (wout += d));
    await waitFor(() => wout, /ready/, 60_000, w, 'the workload');
    const out = join(dir, 'waits.html');
    const run = await attachOffcpu(t, w.pid!, ['-o', out]);
    const { exited, progIds } = run;
    const tracers = run.tracerPids;
    assert.ok(progIds.length > 0);
    await new Promise((r) => setTimeout(r, 1500));
    run.child.kill('SIGINT');
    assert.equal(await exited, 0, run.stderr());
    const stdout = run.stdout();
    assert.equal(w.exitCode, null, 'the target was stopped');
    for (const id of progIds) assert.equal(progLoaded(id), false, `bpf program ${id} still loaded`);
    for (const pid of tracers) assert.equal(existsSync(`/proc/${pid}`), false, `bpftrace ${pid} still running`);
    // the text report and an HTML flamegraph
    assert.match(stdout, /off-CPU time: [\d.]+ m?s in [\d,]+ switch-outs/);
    assert.match(stdout, /sleep_a_lot \(.*offcpu_workload\.py:\d+\) — sleep/);
    assert.match(stdout, /read_socket .* — network/);
    assert.match(stdout, /waiter \(tid \d+\) — lock/);
    assert.match(readFileSync(out, 'utf8').slice(0, 4000), /<html/i);
  }));

test('launch mode: the command runs under pylens offcpu, which ends with it', { skip, timeout: 300_000 }, (t) =>
  exclusive('timing', async () => {
    const dir = mkdtempSync(join('/var/tmp', 'pylens-offcpu-test-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const go = join(dir, 'go');
    writeFileSync(go, '');
    const out = join(dir, 'gil.speedscope.json');
    const r = spawnSync(process.execPath, [MAIN, 'offcpu', '--json', '-o', out, '--', PY, WORKLOAD, 'gil', go, join(dir, 'r.json'), '2'], { encoding: 'utf8', timeout: 240_000 });
    assert.equal(r.status, 0, r.stderr);
    // the launched workload's own output ("ready") comes first on the same stdout
    const rep = JSON.parse(r.stdout.slice(r.stdout.search(/^\{$/m))) as OffCpuReport;
    assert.ok(rep.functions.some((f) => f.name === 'spin_a' && (f.byClass.gil?.ns ?? 0) > 0), JSON.stringify(rep.functions.slice(0, 3)));
    assert.ok(JSON.parse(readFileSync(out, 'utf8')).profiles.length > 0);
  }));

test('usage errors exit 2 with the fix; --help has examples', () => {
  const run = (...a: string[]) => spawnSync(process.execPath, [MAIN, 'offcpu', ...a], { encoding: 'utf8' });
  for (const a of [[], ['-p', '1', '--', 'python3'], ['-p', '1', '--backend', 'dtrace'], ['-p', '1', '-d', '0'], ['-p', '1', '--min-block-us', '-5'], ['-p', '1', '-o', 'x.unknownext']]) {
    const r = run(...a);
    assert.equal(r.status, 2, `${a.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^pylens: error: offcpu: .*\n  fix: run 'pylens offcpu --help'/, a.join(' '));
  }
  const h = run('--help');
  assert.equal(h.status, 0);
  assert.match(h.stdout, /--with-cpu/);
  assert.match(h.stdout, /Examples:\n  pylens offcpu -p 4242 -d 10/);
  const gone = run('-p', '999999999');
  assert.equal(gone.status, 1, gone.stderr);
  assert.match(gone.stderr, /fix: /);
});
