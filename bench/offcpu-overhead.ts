/**
 * Benchmark: what `pylens offcpu` costs the target, and how many events its pipeline takes.
 *
 * Two workloads (written to a temp dir; stdlib Python), each doing as much as it can for a
 * fixed time once told to start, and reporting its throughput:
 *   switch   two threads ping-pong one byte over a pair of pipes: every round trip is two
 *            blocking reads, four context switches — the worst case for a sched_switch probe
 *            (also with --no-gil: without the take_gil uprobe pair, fired at every GIL hand-over)
 *   cpu      one thread in a pure-Python loop: what the probes and the sampler cost a
 *            target that rarely switches
 * Each round runs the workload alone and with `pylens offcpu -p` attached (probes attached
 * before the workload starts its timed part), side by side as a pair, the order swapped
 * every round (this VM's speed drifts by ±20 %): the slowdown is the median over pairs of
 * 1 − throughput with / throughput alone, printed with the spread over pairs.
 * Pipeline: switch-outs per second that bpftrace aggregated and pylens attributed in the
 * switch run (from the report's counts), lost events, records, and the attribution alone
 * (buildOffCpu) on a synthetic 200,000 records.
 *
 *   node_modules/.bin/node bench/offcpu-overhead.ts [--quick] [--rounds N] [--seconds S] [--python 3.12]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildOffCpu, type WaitRecord } from '../src/analysis/offcpu.ts';
import { decodePylens } from '../src/formats/pylens.ts';
import { ProfileBuilder } from '../src/model/builder.ts';
import { argValue, busyWarning, CLI, machineLine, median, pct, python, QUICK } from './sampler-common.ts';

const ROUNDS = Number(argValue('--rounds') ?? (QUICK ? 1 : 3));
const SECONDS = Number(argValue('--seconds') ?? (QUICK ? 2 : 3));
const MINOR = Number((argValue('--python') ?? '3.12').split('.')[1]);
const py = python(MINOR);
if (!py) {
  console.log(`no pyenv CPython 3.${MINOR} installed`);
  process.exit(1);
}

const WORKLOAD = `
import json, os, sys, threading, time
mode, seconds = sys.argv[1], float(sys.argv[2])
print("ready", flush=True)
sys.stdin.readline()
t0 = time.perf_counter()
c0 = time.process_time()
deadline = t0 + seconds
n = 0
if mode == "switch":
    a_r, a_w = os.pipe()
    b_r, b_w = os.pipe()
    stop = []
    def echo():
        while True:
            c = os.read(a_r, 1)
            if c == b"q":
                return
            os.write(b_w, c)
    t = threading.Thread(target=echo)
    t.start()
    while time.perf_counter() < deadline:
        for _ in range(100):
            os.write(a_w, b"x")
            os.read(b_r, 1)
        n += 100
    os.write(a_w, b"q")
    t.join()
else:
    while time.perf_counter() < deadline:
        x = 0
        for i in range(10000):
            x += i * i
        n += 1
el = time.perf_counter() - t0
cpu = time.process_time() - c0
print(json.dumps({"rate": n / el, "n": n, "seconds": el, "cpu": cpu}), flush=True)
`;

const tmp = mkdtempSync(join(tmpdir(), 'pylens-bench-offcpu-'));
const script = join(tmp, 'offcpu_bench_workload.py');
writeFileSync(script, WORKLOAD);

console.log(`pylens offcpu overhead — target ${py.label}; ${machineLine()}`);
const busy = busyWarning();
if (busy) console.log(busy);

function collect(c: ChildProcess): { out: () => string; err: () => string; done: Promise<number | null> } {
  let out = '';
  let err = '';
  c.stdout?.on('data', (d: Buffer) => (out += d));
  c.stderr?.on('data', (d: Buffer) => (err += d));
  return { out: () => out, err: () => err, done: new Promise((r) => c.on('exit', (code) => r(code))) };
}

async function until(f: () => boolean, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!f()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Run {
  rate: number;
  /** work per CPU second of the target (all its threads, user + system) */
  perCpu: number;
  /** the sampler's CPU / wall time, from the profile */
  samplerShare?: number;
  switchOuts?: number;
  records?: number;
  lost?: number;
  /** from the target's exit to pylens's exit: stop, collect, attribute, write */
  finishMs?: number;
  seconds: number;
}

async function runOnce(mode: string, withOffcpu: boolean, extra: string[] = []): Promise<Run> {
  const w = spawn(py!.exe, [script, mode, String(SECONDS)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const wo = collect(w);
  await until(() => wo.out().includes('ready'), 60_000, 'the workload');
  let p: ChildProcess | undefined;
  let po: ReturnType<typeof collect> | undefined;
  if (withOffcpu) {
    p = spawn(process.execPath, [CLI, 'offcpu', '-p', String(w.pid), '--json', '-o', join(tmp, `o-${mode}.pylens`), ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
    po = collect(p);
    await until(() => /recording off-CPU time/.test(po!.err()) || p!.exitCode !== null, 120_000, 'pylens offcpu');
    if (p.exitCode !== null) throw new Error(`pylens offcpu failed: ${po.err()}`);
  }
  w.stdin!.write('go\n');
  await wo.done;
  const tExit = performance.now();
  const res = JSON.parse(wo.out().split('\n').find((l) => l.startsWith('{'))!) as { rate: number; seconds: number; cpu: number };
  const run: Run = { rate: res.rate, perCpu: (res.rate * res.seconds) / res.cpu, seconds: res.seconds };
  if (p && po) {
    await po.done;
    run.finishMs = performance.now() - tExit;
    const r = JSON.parse(po.out()) as { count: number; lostEvents: number; matched: { inside: number; near: number; none: number } };
    run.switchOuts = r.count;
    run.lost = r.lostEvents;
    run.records = r.matched.inside + r.matched.near + r.matched.none;
    const prof = decodePylens(readFileSync(join(tmp, `o-${mode}.pylens`)));
    run.samplerShare = prof.meta.overhead?.fraction;
  }
  return run;
}

const results = new Map<string, { slow: number[]; slowCpu: number[]; runs: Run[]; base: Run[] }>();
const configs: Array<{ label: string; mode: string; extra: string[] }> = [
  { label: 'switch', mode: 'switch', extra: [] },
  { label: 'switch, --no-gil', mode: 'switch', extra: ['--no-gil'] },
  { label: 'cpu', mode: 'cpu', extra: [] },
];
for (const { label, mode, extra } of configs) {
  const e = { slow: [] as number[], slowCpu: [] as number[], runs: [] as Run[], base: [] as Run[] };
  results.set(label, e);
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? [false, true] : [true, false];
    const got: Run[] = [];
    for (const o of order) got.push(await runOnce(mode, o, extra));
    const base = got[order.indexOf(false)]!;
    const withP = got[order.indexOf(true)]!;
    e.base.push(base);
    e.runs.push(withP);
    e.slow.push(1 - withP.rate / base.rate);
    e.slowCpu.push(1 - withP.perCpu / base.perCpu);
    process.stdout.write(`${label} round ${r + 1}/${ROUNDS}: alone ${base.rate.toFixed(0)}/s, with offcpu ${withP.rate.toFixed(0)}/s\n`);
  }
}

console.log(`\nworkload         | alone (median)         | with pylens offcpu     | slowdown wall (pairs)        | per target CPU s (pairs)     | sampler CPU | switch-outs/s | records | lost | stop→written`);
for (const [label, e] of results) {
  const unit = label.startsWith('switch') ? 'round trips/s' : 'loops/s';
  const sw = median(e.runs.map((x) => (x.switchOuts ?? 0) / x.seconds));
  console.log(
    `${label.padEnd(16)} | ${median(e.base.map((x) => x.rate)).toFixed(0).padStart(8)} ${unit} | ${median(e.runs.map((x) => x.rate)).toFixed(0).padStart(8)} ${unit} | ${pct(median(e.slow)).padStart(7)} (${pct(Math.min(...e.slow))}..${pct(Math.max(...e.slow))}) | ${pct(median(e.slowCpu)).padStart(7)} (${pct(Math.min(...e.slowCpu))}..${pct(Math.max(...e.slowCpu))}) | ${pct(median(e.runs.map((x) => x.samplerShare ?? 0))).padStart(10)} | ${sw.toFixed(0).padStart(8)} | ${median(e.runs.map((x) => x.records ?? 0)).toFixed(0)} | ${median(e.runs.map((x) => x.lost ?? 0))} | ${median(e.runs.map((x) => x.finishMs ?? 0)).toFixed(0)} ms`,
  );
}

// attribution alone: 200,000 records of 8 threads against a sampler profile of 100 Hz × 60 s
{
  const b = new ProfileBuilder({ unitValues: true });
  const frames = Array.from({ length: 20 }, (_, i) => b.frame({ name: `f${i}`, file: 'app.py', line: i }));
  const threads = Array.from({ length: 8 }, (_, i) => b.thread(1, 100 + i, `t${i}`));
  for (let t = 0; t < 60e9; t += 10e6) {
    for (let k = 0; k < threads.length; k++) b.sample(b.stackOf(frames.slice(0, 3 + ((t / 10e6 + k) % 15))), 1, threads[k]!, k % 2 ? 'idle' : 'on-cpu', t);
  }
  const py = b.build();
  const kstacks = [
    ['__schedule', 'schedule', 'futex_wait_queue', 'futex_wait', 'do_futex', '__x64_sys_futex', 'do_syscall_64'],
    ['__schedule', 'schedule', 'do_nanosleep', 'hrtimer_nanosleep', '__x64_sys_clock_nanosleep', 'do_syscall_64'],
    ['__schedule', 'schedule', 'schedule_timeout', 'sk_wait_data', 'tcp_recvmsg', 'inet_recvmsg', 'sock_recvmsg', '__sys_recvfrom'],
    ['__schedule', 'schedule', 'io_schedule', 'folio_wait_bit_common', 'file_write_and_wait_range', 'ext4_sync_file', 'do_fsync'],
  ];
  const records: WaitRecord[] = [];
  for (let i = 0; i < 200_000; i++) {
    const s = (i * 60e9) / 200_000;
    records.push({ pid: 1, tid: 100 + (i % 8), comm: 'python', kstack: kstacks[i % 4]!, startNs: s, endNs: s + 200e3, blockedNs: 150e3, count: 1 + (i % 3), gilWait: i % 17 === 0, state: 'S' });
  }
  const t0 = performance.now();
  buildOffCpu(py, records, { originNs: 0, withCpu: { periodNs: 10e6 } });
  const ms = performance.now() - t0;
  console.log(`\nattribution (buildOffCpu, with --with-cpu): 200,000 records against ${py.samples.length.toLocaleString('en-US')} samples in ${ms.toFixed(0)} ms = ${((200_000 / ms) * 1000).toFixed(0)} records/s`);
}
console.log('(slowdown = median over pairs of 1 − throughput with / alone, each pair side by side; per target CPU s: the same for the work');
console.log(' done per CPU second of the target — what the probes cost it, without the CPU pylens and bpftrace take from a 2-core box;');
console.log(' sampler CPU: the pylens sampler\'s CPU / wall time; switch-outs/s: the switch-outs of the target that bpftrace');
console.log(' aggregated in the kernel, over the timed part of the run; records: the aggregated rows read back)');
rmSync(tmp, { recursive: true, force: true });
