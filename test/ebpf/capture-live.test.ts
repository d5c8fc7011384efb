/**
 * eBPF capture against the real kernel: real bpftrace on real CPython workloads
 * (test/ebpf/scripts/capture_workload.py) that time their own waits. Checks the blocked
 * time against the workload's own measurement (10 %), the kernel frames, GIL waits, and
 * that no probe and no bpftrace is left after stop() or after the target dies.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ROOT } from '../helpers/format-checks.ts';
import { exclusive } from '../helpers/exclusive.ts';
import { installedPythons } from '../sampler/pythons.ts';
import { startOffCpu, type OffCpuResult } from '../../src/capture/ebpf/offcpu.ts';
import { NO_STACK, startCpuSampling } from '../../src/capture/ebpf/cpu.ts';

const WORKLOAD = join(ROOT, 'test', 'ebpf', 'scripts', 'capture_workload.py');
const py312 = installedPythons().find((p) => p.minor === 12 && p.lib);
const bpftraceOk = spawnSync('bpftrace', ['--version'], { encoding: 'utf8' }).status === 0 && process.getuid?.() === 0 && existsSync('/sys/kernel/tracing/events/sched');
const skip = !bpftraceOk ? 'needs bpftrace, root and tracefs' : !py312 ? 'needs pyenv CPython 3.12 with libpython' : false;

/** Our own bpftrace processes: children of this test process named bpftrace. */
function myTracers(): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (comm === 'bpftrace' && ppid === process.pid) out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** BPF program ids a process holds (its fds' fdinfo says `prog_id:`). */
function progIdsOf(pid: number): number[] {
  const ids = new Set<number>();
  let fds: string[] = [];
  try {
    fds = readdirSync(`/proc/${pid}/fdinfo`);
  } catch {
    return [];
  }
  for (const fd of fds) {
    try {
      const m = /^prog_id:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
      if (m) ids.add(Number(m[1]));
    } catch {
      /* closed */
    }
  }
  return [...ids];
}

/** Which of `ids` the kernel still has loaded, per `bpftool prog show`. */
function stillLoaded(ids: number[]): number[] {
  const r = spawnSync('bpftool', ['prog', 'show', '-j'], { encoding: 'utf8', maxBuffer: 1 << 26 });
  assert.equal(r.status, 0, r.stderr);
  const loaded = new Set((JSON.parse(r.stdout) as Array<{ id: number }>).map((p) => p.id));
  return ids.filter((id) => loaded.has(id));
}

interface Workload {
  child: ChildProcess;
  pid: number;
  next(): Promise<string>;
}

async function launch(mode: string): Promise<Workload> {
  const child = spawn(py312!.exe, [WORKLOAD, mode], { stdio: ['pipe', 'pipe', 'inherit'] });
  const it = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async () => {
    const r = await it.next();
    if (r.done) throw new Error(`workload ${mode} ended early`);
    return r.value as string;
  };
  const { pid } = JSON.parse(await next()) as { pid: number };
  return { child, pid, next };
}

/** Record `mode` from before it starts to after it reports; its own timing and ours. */
async function recordWorkload(mode: string): Promise<{ own: { threads: Record<string, { tid: number } & Record<string, number>> }; result: OffCpuResult; progs: number[] }> {
  const w = await launch(mode);
  try {
    const rec = await startOffCpu({ pid: w.pid, backend: 'bpftrace' });
    assert.equal(rec.backend, 'bpftrace');
    const tracers = myTracers();
    assert.equal(tracers.length, 1, 'one bpftrace of ours runs');
    const progs = progIdsOf(tracers[0]!);
    assert.ok(stillLoaded(progs).length >= 2, 'its programs are loaded');
    w.child.stdin!.write('go\n');
    const own = JSON.parse(await w.next());
    const result = await rec.stop();
    return { own, result, progs };
  } finally {
    w.child.stdin!.end();
    w.child.kill();
  }
}

const blocked = (r: OffCpuResult, tid: number, frame: string) => r.intervals.filter((i) => i.tid === tid && i.kstack.includes(frame)).reduce((a, i) => a + i.blockedNs, 0);

test('sleep: 20 x 50 ms in time.sleep is ~1 s off-CPU in hrtimer/nanosleep frames, within 10 %', { skip }, () =>
  exclusive('timing', async () => {
    const { own, result, progs } = await recordWorkload('sleep');
    const t = own.threads.sleeper!;
    const ns = blocked(result, t.tid, 'do_nanosleep');
    assert.ok(Math.abs(ns / 1e9 - t.sleep_s!) <= 0.1 * t.sleep_s!, `bpftrace ${ns / 1e9} s vs the workload's ${t.sleep_s} s`);
    // each sleep that blocked is one interval asleep (on a loaded machine a sleep may not
    // block, and a thread woken may be preempted before it leaves do_nanosleep: state R)
    assert.ok(t.blocked_sleeps! >= 18, `only ${t.blocked_sleeps} of the 20 sleeps blocked`);
    const mine = result.intervals.filter((i) => i.tid === t.tid && i.kstack.includes('do_nanosleep') && i.state === 'S');
    // (the workload counts a sleep as blocked by its voluntary context switches, which on a
    // loaded machine may also come of retaking the GIL after a sleep that did not block: one
    // such was seen in a fresh-clone suite, 19 intervals for 20; never more asleep than blocked)
    const asleepCount = mine.reduce((a, i) => a + i.count, 0);
    assert.ok(asleepCount <= t.blocked_sleeps! && asleepCount >= t.blocked_sleeps! - 1, `${asleepCount} intervals asleep in do_nanosleep for ${t.blocked_sleeps} sleeps that blocked`);
    for (const i of mine) {
      assert.ok(i.kstack.includes('hrtimer_nanosleep'));
      assert.ok(i.kstack.every((f) => !f.includes('+')));
      // 50 ms each, less the time a thread preempted on its way into the sleep spent runnable
      assert.ok(i.endNs - i.startNs >= i.blockedNs && i.blockedNs >= 25e6 * i.count, `${i.blockedNs} ns in ${i.count}`);
    }
    assert.equal(result.gilProbe, true);
    assert.equal(result.lostEvents, 0);
    assert.match(result.warnings[0]!, /backend: bpftrace/);
    // detached: no bpftrace of ours, none of its programs
    assert.deepEqual(myTracers(), []);
    assert.deepEqual(stillLoaded(progs), []);
  }));

test('lock: a thread blocked on a threading.Lock waits in futex frames, within 10 %', { skip }, () =>
  exclusive('timing', async () => {
    const { own, result } = await recordWorkload('lock');
    const t = own.threads.waiter!;
    const ns = blocked(result, t.tid, 'futex_wait');
    assert.ok(Math.abs(ns / 1e9 - t.wait_s!) <= 0.1 * t.wait_s!, `bpftrace ${ns / 1e9} s vs the workload's ${t.wait_s} s`);
  }));

test('GIL: two CPU-bound threads wait for the GIL in take_gil', { skip }, () =>
  exclusive('timing', async () => {
    const { own, result } = await recordWorkload('gil');
    for (const name of ['spin0', 'spin1']) {
      const t = own.threads[name]!;
      const gil = result.intervals.filter((i) => i.tid === t.tid && i.gilWait);
      const gilNs = gil.reduce((a, i) => a + i.blockedNs, 0);
      // each holds the GIL about half the time: it waits for it a good share of its wall time
      assert.ok(gilNs > 0.1 * t.wall_s! * 1e9, `${name}: ${gilNs / 1e9} s of GIL wait in ${t.wall_s} s`);
      // waiting on the GIL's condition variable (a preemption inside take_gil is the rest)
      const futexNs = gil.filter((i) => i.kstack.some((f) => f.includes('futex'))).reduce((a, i) => a + i.blockedNs, 0);
      assert.ok(futexNs > 0.5 * gilNs, `${name}: ${futexNs / 1e9} s of ${gilNs / 1e9} s in futex frames`);
    }
  }));

/** perf processes started by this test process */
const myPerfs = () => spawnSync('pgrep', ['-P', String(process.pid), '-x', 'perf'], { encoding: 'utf8' }).stdout.trim();

test('perf-sched fallback: the same sleeps from perf record of sched_switch, within 10 %, no perf left running', { skip }, () =>
  exclusive('timing', async () => {
    const w = await launch('sleep');
    let result: OffCpuResult;
    try {
      const rec = await startOffCpu({ pid: w.pid, backend: 'perf-sched' });
      assert.equal(rec.backend, 'perf-sched');
      assert.notEqual(myPerfs(), '', 'perf record runs while recording');
      w.child.stdin!.write('go\n');
      const own = JSON.parse(await w.next());
      result = await rec.stop();
      const t = own.threads.sleeper!;
      const mine = result.intervals.filter((i) => i.tid === t.tid && i.kstack.includes('do_nanosleep'));
      const ns = mine.reduce((a, i) => a + i.blockedNs, 0);
      assert.ok(Math.abs(ns / 1e9 - t.sleep_s!) <= 0.1 * t.sleep_s!, `perf sched ${ns / 1e9} s vs the workload's ${t.sleep_s} s`);
      // each sleep that blocked is one interval asleep (on a loaded machine a sleep may not
      // block, and a thread woken may be preempted before it leaves do_nanosleep: state R)
      assert.ok(t.blocked_sleeps! >= 18, `only ${t.blocked_sleeps} of the 20 sleeps blocked`);
      const asleep = mine.filter((i) => i.state === 'S');
      // (as above: a voluntary switch may be the GIL's, not the sleep's)
      const asleepCount = asleep.reduce((a, i) => a + i.count, 0);
      assert.ok(asleepCount <= t.blocked_sleeps! && asleepCount >= t.blocked_sleeps! - 1, `${asleepCount} intervals asleep for ${t.blocked_sleeps} sleeps that blocked`);
      assert.ok(mine.every((i) => i.state === 'S' || i.state === 'R'), mine.map((i) => i.state).join(' '));
      assert.equal(result.gilProbe, false);
      assert.match(result.warnings[0]!, /backend: perf-sched/);
    } finally {
      w.child.stdin!.end();
      w.child.kill();
    }
    assert.equal(myPerfs(), '', 'perf record still running');
  }));

test('target killed mid-recording: the tracer ends by itself, stop() returns what it had, nothing left attached', { skip }, () =>
  exclusive('timing', async () => {
    const w = await launch('sleep');
    const rec = await startOffCpu({ pid: w.pid, backend: 'bpftrace' });
    const progs = progIdsOf(myTracers()[0]!);
    assert.ok(stillLoaded(progs).length >= 2);
    w.child.stdin!.write('go\n');
    await new Promise((r) => setTimeout(r, 1500));
    w.child.kill('SIGKILL');
    const timeout = new Promise<string>((r) => setTimeout(() => r('timeout'), 20_000).unref());
    assert.equal(await Promise.race([rec.ended.then(() => 'ended'), timeout]), 'ended');
    const result = await rec.stop();
    assert.ok(result.intervals.some((i) => i.kstack.includes('do_nanosleep') && i.count >= 1), 'intervals from before the kill');
    assert.ok(result.warnings.some((x) => /ended before stop/.test(x)));
    assert.deepEqual(myTracers(), []);
    assert.deepEqual(stillLoaded(progs), []);
  }));

test('CPU sampling: a spinning thread is sampled near the rate, with kernel/user stacks and CLOCK_MONOTONIC times', { skip }, () =>
  exclusive('timing', async () => {
    const w = await launch('gil');
    try {
      const s = await startCpuSampling({ pid: w.pid, hz: 49 });
      const t0 = Number(process.hrtime.bigint());
      w.child.stdin!.write('go\n');
      const own = JSON.parse(await w.next());
      const t1 = Number(process.hrtime.bigint());
      const { samples, warnings } = await s.stop();
      assert.ok(!warnings.some((x) => /did not understand/.test(x)), warnings.join('; '));
      assert.ok(samples.every((x) => x.pid === w.pid && x.ustack.length + x.kstack.length > 0));
      // a stack-map collision now and then loses a stack (0.6 % over 20 s, 1.0 % over 60 s at
      // 999 Hz here, rising as the map fills); the
      // sample stays, under NO_STACK, and is counted in a warning
      const unknown = samples.filter((x) => x.ustack[0] === NO_STACK).length;
      assert.ok(unknown <= Math.max(2, samples.length * 0.05), `${unknown} of ${samples.length} samples without a stack`);
      if (unknown) assert.ok(warnings.some((x) => x.startsWith(`${unknown} of ${samples.length} samples came without a stack`)), `${unknown}: ${warnings.join('; ')}`);
      const tids = [own.threads.spin0.tid, own.threads.spin1.tid];
      const n = samples.filter((x) => tids.includes(x.tid) && x.timeNs >= t0 && x.timeNs <= t1).reduce((a, x) => a + x.count, 0);
      const cpuS = own.threads.spin0.cpu_s + own.threads.spin1.cpu_s;
      // 49 Hz of the CPU time they had (timer sampling in a VM: generous bounds)
      assert.ok(n >= 49 * cpuS * 0.5 && n <= 49 * cpuS * 2, `${n} samples for ${cpuS} s of CPU`);
      assert.deepEqual(myTracers(), []);
    } finally {
      w.child.stdin!.end();
      w.child.kill();
    }
  }));
