/**
 * Benchmark: what `pylens offcpu` costs the target, and how many events its pipeline takes.
 *
 * Workloads (written to a temp dir; stdlib Python), each doing as much as it can for a
 * fixed time once told to start, and reporting its throughput:
 *   pingpong  two threads pass one byte back and forth over a pair of pipes: nothing but
 *             blocking reads and context switches — the worst case for a sched_switch probe
 *             (also with --no-gil, and with --gil-method uprobe: the take_gil uprobe pair
 *             instead of the futex address, fired at every GIL acquisition)
 *   request   a client thread sends a small JSON request over a socketpair, a server thread
 *             parses it, does a little work and answers: a service-like switch rate
 *   cpu       one thread in a pure-Python loop: what the probes and the sampler cost a
 *             target that rarely switches
 * The target is pinned to CPU 0 and pylens (with bpftrace and the sampler, which inherit
 * the mask) to CPU 1 (`taskset`). Unpinned on a 2-core machine, a ping-pong's throughput
 * depends mostly on whether its two threads share a CPU, which any extra process changes
 * (one unpinned run went 57 % *faster* with pylens attached); pinned, the slowdown is what
 * the in-kernel probes cost the target's CPU, and pylens's own CPU is shown apart.
 * Each round runs the workload alone and with `pylens offcpu -p` attached (probes attached
 * before the workload starts its timed part), side by side as a pair, the order swapped
 * every round (this VM's speed drifts by ±20 %): the slowdown is the median over pairs of
 * 1 − throughput with / throughput alone, printed with the spread over pairs; the cost per
 * switch-out is the time the target lost divided by its switch-outs.
 * Pipeline: switch-outs per second that bpftrace aggregated and pylens attributed (from the
 * report's counts), lost events, records, and the attribution alone (buildOffCpu) on a
 * synthetic 200,000 records.
 *
 *   node_modules/.bin/node bench/offcpu-overhead.ts [--quick] [--rounds N] [--seconds S] [--python 3.12]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
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
if mode == "pingpong":
    a_r, a_w = os.pipe()
    b_r, b_w = os.pipe()
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
elif mode == "request":
    import socket
    cs, ss = socket.socketpair()
    def serve():
        f = ss.makefile("rb")
        while True:
            line = f.readline()
            if not line or line == b"q\\n":
                return
            req = json.loads(line)
            body = {"id": req["id"], "items": sorted(str(i * 7919 % 1000) for i in range(req["n"]))}
            ss.sendall(json.dumps(body).encode() + b"\\n")
    t = threading.Thread(target=serve)
    t.start()
    f = cs.makefile("rb")
    while time.perf_counter() < deadline:
        for _ in range(20):
            cs.sendall(json.dumps({"id": n, "n": 20}).encode() + b"\\n")
            json.loads(f.readline())
            n += 1
    cs.sendall(b"q\\n")
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

const CPUS = availableParallelism();
// target on CPU 0, pylens on the others (on a 1-CPU machine both share it)
const TARGET_CPU = '0';
const PYLENS_CPU = CPUS > 1 ? `1-${CPUS - 1}` : '0';

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
  const w = spawn('taskset', ['-c', TARGET_CPU, py!.exe, script, mode, String(SECONDS)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const wo = collect(w);
  await until(() => wo.out().includes('ready'), 60_000, 'the workload');
  let p: ChildProcess | undefined;
  let po: ReturnType<typeof collect> | undefined;
  if (withOffcpu) {
    p = spawn('taskset', ['-c', PYLENS_CPU, process.execPath, CLI, 'offcpu', '-p', String(w.pid), '--json', '-o', join(tmp, `o-${mode}.pylens`), ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
    po = collect(p);
    await until(() => /recording off-CPU time/.test(po!.err()) || p!.exitCode !== null, 120_000, 'pylens offcpu');
    if (p.exitCode !== null) throw new Error(`pylens offcpu failed: ${po.err()}`);
  }
  w.stdin!.write('go\n');
  await wo.done;
  const tExit = performance.now();
  const res = JSON.parse(wo.out().split('\n').find((l) => l.startsWith('{'))!) as { rate: number; seconds: number; cpu: number };
  const run: Run = { rate: res.rate, seconds: res.seconds };
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

const results = new Map<string, { slow: number[]; runs: Run[]; base: Run[] }>();
const configs: Array<{ label: string; mode: string; extra: string[] }> = [
  { label: 'pingpong', mode: 'pingpong', extra: [] },
  { label: 'pingpong --no-gil', mode: 'pingpong', extra: ['--no-gil'] },
  { label: 'pingpong uprobe', mode: 'pingpong', extra: ['--gil-method', 'uprobe'] },
  { label: 'request', mode: 'request', extra: [] },
  { label: 'request uprobe', mode: 'request', extra: ['--gil-method', 'uprobe'] },
  { label: 'cpu', mode: 'cpu', extra: [] },
];
for (const { label, mode, extra } of configs) {
  const e = { slow: [] as number[], runs: [] as Run[], base: [] as Run[] };
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
    process.stdout.write(`${label} round ${r + 1}/${ROUNDS}: alone ${base.rate.toFixed(0)}/s, with offcpu ${withP.rate.toFixed(0)}/s\n`);
  }
}

console.log(`\nworkload          | alone (median)   | with pylens offcpu | slowdown (pairs)            | per switch-out | switch-outs/s | pylens sampler CPU | records | lost | stop→written`);
for (const [label, e] of results) {
  const unit = label.startsWith('cpu') ? 'loops/s' : label.startsWith('request') ? 'req/s' : 'trips/s';
  const sw = median(e.runs.map((x) => (x.switchOuts ?? 0) / x.seconds));
  // the target's time lost to the probes, per switch-out it made (pairs)
  const perSwitch = e.runs.map((w, i) => (w.seconds * (1 - w.rate / e.base[i]!.rate)) / Math.max(1, w.switchOuts ?? 0));
  const us = (x: number) => `${(x * 1e6).toFixed(2)} µs`;
  console.log(
    `${label.padEnd(17)} | ${median(e.base.map((x) => x.rate)).toFixed(0).padStart(7)} ${unit.padEnd(8)} | ${median(e.runs.map((x) => x.rate)).toFixed(0).padStart(7)} ${unit.padEnd(10)} | ${pct(median(e.slow)).padStart(7)} (${pct(Math.min(...e.slow))}..${pct(Math.max(...e.slow))}) | ${(sw > 1000 ? us(median(perSwitch)) : '—').padStart(14)} | ${sw.toFixed(0).padStart(13)} | ${pct(median(e.runs.map((x) => x.samplerShare ?? 0))).padStart(18)} | ${median(e.runs.map((x) => x.records ?? 0)).toFixed(0).padStart(7)} | ${String(median(e.runs.map((x) => x.lost ?? 0))).padStart(4)} | ${median(e.runs.map((x) => x.finishMs ?? 0)).toFixed(0)} ms`,
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
console.log(`(target pinned to CPU ${TARGET_CPU}, pylens and bpftrace to CPU ${PYLENS_CPU}; slowdown = median over pairs of`);
console.log(' 1 − throughput with / alone, each pair side by side; per switch-out: the target time lost over the pair divided by');
console.log(' the switch-outs pylens recorded (median over pairs; shown above 1,000 switch-outs/s); pylens sampler CPU: the');
console.log(' sampler\'s CPU / wall time, from the profile; records: the aggregated rows bpftrace printed)');
rmSync(tmp, { recursive: true, force: true });
