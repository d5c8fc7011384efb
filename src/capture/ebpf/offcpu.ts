/**
 * Off-CPU capture: how long each thread of a process was off the CPU, with the kernel
 * stack it left on, its state, and whether it was waiting for the GIL.
 *
 * bpftrace (the main backend). One `tracepoint:sched:sched_switch` program does both ends:
 * - switch-out of a target thread (the tracepoint fires in the context of `prev`, so
 *   `pid` is the target's tgid and threads created later are included): remember
 *   `(nsecs, kstack, prev_state, in take_gil?, comm)` in `@off[tid]`;
 * - switch-in of a thread with an `@off` entry: the interval is `nsecs - start`; when at
 *   least `minBlockUs`, add it into a map keyed by (tid, kstack, gil, state, start bucket,
 *   end bucket, comm) whose value is (blocked ns, intervals, earliest switch-out, latest
 *   switch-in). A key holds a thread id, and a thread is switched in on one CPU at a time,
 *   so the read-modify-write of the value tuple never races.
 * Aggregation in the kernel keeps the output bounded on switch-heavy targets. Three maps
 * take turns: each second the interval probe bumps the generation `@gen` (part of every
 * key), so writers move on to the next map, and prints and clears the one they left; the
 * maps never fill up and nothing is lost between a print and its clear. bpftrace 0.17 may
 * process the clear() late (seen: the print of a flush is processed, its clear is not,
 * until the next flush or never when it exits first); with three maps a late clear hits a
 * map nobody writes to, and an entry printed twice has the same generation in its key, so
 * it is counted once. At exit bpftrace prints every map by itself: what was not flushed
 * yet, and `@off`, the intervals still open (threads off the CPU when the recording stops,
 * closed at the END time). (print/clear in END are not used: not reliably processed.)
 * GIL (see GilDetection): on x86-64 a switch-out in futex(2) on an address inside the
 * interpreter's GIL struct is a GIL wait (no probe); elsewhere a uprobe/uretprobe pair on
 * CPython's `take_gil` (a local symbol in libpython's .symtab on 3.8–3.13) marks the
 * threads inside it.
 * `nsecs` is bpf_ktime_get_ns(): CLOCK_MONOTONIC.
 * Readiness: bpftrace 0.17 runs BEGIN after every probe is attached; BEGIN prints a line.
 * `-p PID` makes bpftrace exit (running END) when the target exits.
 *
 * Fallbacks: bcc's offcputime (per thread, aggregated for the whole run: no times, no
 * states, no counts), then `perf record` of sched_switch with call graphs, read back with
 * the perf lens's sched parser (real intervals, no GIL probe).
 */
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { OffCpuInterval } from '../../analysis/offcpu.ts';
import { ElfFile } from '../sampler/elf.ts';
import { findExecutable, findLibpython, readMaps } from '../sampler/maps.ts';
import { ProcessSampler } from '../sampler/session.ts';
import { BLOCKED, RUNNABLE, RUNNING, SLEEPING, readSchedData, schedRecordArgs, selectTids, type SchedTrace } from '../perf/sched.ts';
import { checkPerfAccess, explainPerfStderr, findPerf, PerfError, readPerfAccess, startPerfRecord } from '../perf/tool.ts';
import {
  BpftraceOutput,
  checkEbpfAccess,
  EbpfError,
  ensureTracefs,
  explainTracerStderr,
  findBpftrace,
  findOffcputime,
  processAlive,
  readEbpfFacts,
  spawnTracer,
  type Tracer,
} from './tool.ts';

export type { OffCpuInterval };

export interface OffCpuResult {
  backend: 'bpftrace' | 'bcc' | 'perf-sched';
  intervals: OffCpuInterval[];
  warnings: string[];
  lostEvents: number;
  /** GIL waits were told apart (see GilDetection), and how */
  gilProbe: boolean;
  gilMethod?: GilDetection['kind'];
}

export interface OffCpuRecording {
  /** detach and collect */
  stop(): Promise<OffCpuResult>;
  /** resolves when the tracer ended by itself (target exit, crash) */
  ended: Promise<void>;
  backend: OffCpuResult['backend'];
}

export interface OffCpuOptions {
  pid: number;
  minBlockUs?: number;
  bucketNs?: number;
  backend?: 'auto' | 'bpftrace' | 'bcc' | 'perf-sched';
  gil?: boolean;
  /** how to detect GIL waits; default: the futex address on x86-64, else take_gil probes */
  gilMethod?: GilDetection['kind'];
  /** the GIL struct, when the caller already has the process attached (saves locating the runtime again) */
  gilRange?: { address: number; size: number } | null;
}

export const DEFAULT_BUCKET_NS = 10_000_000;
export const FLUSH_MS = 1000;
/** deepest kernel stack kept */
export const KSTACK_DEPTH = 48;

// ---------------------------------------------------------------------------------------
// Program

/**
 * How the program tells GIL waits apart:
 * - `futex` (x86-64, no probe): at switch-out, the thread's saved user registers (the
 *   `pt_regs` at the top of its kernel stack) say which system call it is in; a `futex`
 *   call on an address inside the interpreter's GIL struct (its mutexes and condition
 *   variables) is a GIL wait. Costs two reads per switch-out and nothing per GIL hand-over.
 * - `uprobe`: a uprobe/uretprobe pair on take_gil marks the threads inside it. Fires at
 *   every GIL acquisition (every system call a Python thread makes): about 3 µs each.
 */
export type GilDetection =
  | { kind: 'uprobe'; file: string; symbol: string }
  | { kind: 'futex'; start: number; end: number; threadSize: number; futexSyscall: number };

export interface OffCpuProgramOptions {
  pid: number;
  minBlockUs: number;
  bucketNs: number;
  /** how GIL waits are detected, or undefined for not at all */
  gil?: GilDetection | undefined;
  flushMs?: number;
}

/** The bpftrace program (text). */
export function offCpuProgram(o: OffCpuProgramOptions): string {
  const pid = Math.trunc(o.pid);
  const minNs = Math.max(0, Math.round(o.minBlockUs * 1000));
  const bucket = Math.max(1, Math.round(o.bucketNs));
  const flush = Math.max(10, Math.round(o.flushMs ?? FLUSH_MS));
  if (!(pid > 0)) throw new RangeError(`bad pid ${o.pid}`);
  const gil = o.gil;
  if (gil?.kind === 'uprobe' && /["\s]/.test(gil.file + gil.symbol)) throw new RangeError(`unsupported characters in probe path ${gil.file}`);
  if (gil?.kind === 'futex' && !(Number.isSafeInteger(gil.start) && gil.end > gil.start && Number.isSafeInteger(gil.end) && gil.threadSize > 0 && gil.futexSyscall > 0)) throw new RangeError('bad GIL futex range');
  const gilValue = !gil ? '0' : gil.kind === 'uprobe' ? '@gil[args->prev_pid]' : '$gw';
  const gilRegs = gil?.kind !== 'futex' ? '' : `      // the saved user registers: system call number and first argument (the futex word)
      $r = (struct pt_regs *)((uint64)curtask->stack + ${gil.threadSize} - sizeof(struct pt_regs));
      $gw = ($r->orig_ax == ${gil.futexSyscall} && $r->di >= ${gil.start} && $r->di < ${gil.end}) ? 1 : 0;
`;
  const key = (m: number) => `@m${m}[args->next_pid, $o.1, $o.3, $o.2, $sb, $eb, $g, $o.4]`;
  const update = (m: number) => `      if ($g % 3 == ${m}) {
        $v = ${key(m)};
        ${key(m)} = ($v.0 + $d, $v.1 + 1, $v.1 == 0 ? $o.0 : $v.2, $now);
      }`;
  return `// pylens offcpu: time-weighted off-CPU intervals of process ${pid}
BEGIN { printf("pylens-ready %llu\\n", nsecs); }
${gil?.kind === 'uprobe' ? `uprobe:${gil.file}:${gil.symbol} /pid == ${pid}/ { @gil[tid] = 1; }
uretprobe:${gil.file}:${gil.symbol} /pid == ${pid}/ { delete(@gil[tid]); }
` : ''}tracepoint:sched:sched_switch
{
  $now = nsecs;
  if (pid == ${pid} && args->prev_pid != 0) {
    // X (0x10) and Z (0x20): the thread is gone
    if ((args->prev_state & 0x30) == 0) {
${gilRegs}      @off[args->prev_pid] = ($now, kstack(${KSTACK_DEPTH}), args->prev_state, ${gilValue}, comm);
    } else {
      delete(@off[args->prev_pid]);
    }
  }
  $o = @off[args->next_pid];
  if ($o.0 != 0) {
    delete(@off[args->next_pid]);
    $d = $now - $o.0;
    if ($d >= ${minNs}) {
      $sb = $o.0 / ${bucket};
      $eb = $now / ${bucket};
      $g = @gen;
${[0, 1, 2].map(update).join('\n')}
    }
  }
}
interval:ms:${flush}
{
  // writers move on to the next map; the one they left is printed and cleared
  @gen = @gen + 1;
  $p = (@gen + 2) % 3;
  // separate ifs: bpftrace 0.17 drops async actions of an else branch
  if ($p == 0) { print(@m0); clear(@m0); }
  if ($p == 1) { print(@m1); clear(@m1); }
  if ($p == 2) { print(@m2); clear(@m2); }
}
END
{
  printf("pylens-end %llu\\n", nsecs);
}
`;
}

// ---------------------------------------------------------------------------------------
// Parsing bpftrace's printout

/** Kernel `prev_state` (as reported by the sched_switch tracepoint since 4.14) as a letter. */
export function stateLetter(v: number): string {
  if (v === 0 || v >= 0x100) return 'R'; // running (yield) or preempted (TASK_REPORT_MAX)
  const letters: Array<[number, string]> = [[0x1, 'S'], [0x2, 'D'], [0x4, 'T'], [0x8, 't'], [0x10, 'X'], [0x20, 'Z'], [0x40, 'P'], [0x80, 'I']];
  for (const [bit, l] of letters) if (v & bit) return l;
  return '?';
}

/** `__schedule+1560` → `__schedule`; `0xffffffff81000000` stays. */
export function bareSymbol(frame: string): string {
  return frame.trim().replace(/\+(?:0x[0-9a-f]+|\d+)$/i, '');
}

/** One record as printed (before merging): with its buckets. */
export interface RawRecord extends OffCpuInterval {
  startBucket: number;
  endBucket: number;
  /**
   * flush generation (bpftrace): a map entry is final once its generation is printed, but
   * may be printed again (a clear() bpftrace had not processed yet at exit); -1: none
   */
  gen?: number;
  /** the stack as printed (offsets and all), which identifies the map entry */
  rawStack?: string;
}

export interface OpenInterval {
  tid: number;
  comm: string;
  startNs: number;
  kstack: string[];
  state: string;
  gilWait: boolean;
}

const REC_RE = /^@m[012]\[(\d+), ((?:\n[ \t][^\n]*)*\n)?, (\d+), (\d+), (\d+), (\d+), (\d+), (.*)\]: \((\d+), (\d+), (\d+), (\d+)\)$/;
const OPEN_RE = /^@off\[(\d+)\]: \((\d+), ((?:\n[ \t][^\n]*)*\n)?, (\d+), (\d+), (.*)\)$/;

function frames(block: string | undefined): string[] {
  if (!block) return [];
  return block.split('\n').map((l) => l.trim()).filter((l) => l !== '').map(bareSymbol);
}

/**
 * Streaming parser of the program's output. Feed stdout lines; entries span lines (a stack
 * key), and an entry is complete at the first unindented line that closes its pattern.
 */
export class OffCpuOutputParser extends BpftraceOutput {
  readonly records: RawRecord[] = [];
  readonly open: OpenInterval[] = [];
  private readonly pid: number;
  constructor(pid: number) {
    // @gen and @gil are the program's own bookkeeping, printed at exit
    super(/^@(gen|gil)\b/, /^@(m[012]|off)\[/);
    this.pid = pid;
  }

  protected override entry(text: string): boolean {
    let m = REC_RE.exec(text);
    if (m) {
      this.records.push({
        pid: this.pid,
        tid: Number(m[1]),
        kstack: frames(m[2]),
        gilWait: m[3] !== '0',
        state: stateLetter(Number(m[4])),
        startBucket: Number(m[5]),
        endBucket: Number(m[6]),
        gen: Number(m[7]),
        rawStack: m[2] ?? '',
        comm: m[8]!,
        blockedNs: Number(m[9]),
        count: Number(m[10]),
        startNs: Number(m[11]),
        endNs: Number(m[12]),
      });
      return true;
    }
    m = OPEN_RE.exec(text);
    if (m) {
      this.open.push({ tid: Number(m[1]), startNs: Number(m[2]), kstack: frames(m[3]), state: stateLetter(Number(m[4])), gilWait: m[5] !== '0', comm: m[6]! });
      return true;
    }
    return false;
  }

  /** Records merged by bucket key, plus the open intervals closed at `endNs` (default: the END time). */
  finish(bucketNs: number, endNs?: number): OffCpuInterval[] {
    if (this.buf.length) this.drop();
    const end = endNs ?? this.endNs;
    const raw: RawRecord[] = [...this.records];
    if (end !== undefined) {
      for (const o of this.open) {
        if (end <= o.startNs) continue;
        raw.push({ pid: this.pid, tid: o.tid, comm: o.comm, kstack: o.kstack, startNs: o.startNs, endNs: end, blockedNs: end - o.startNs, count: 1, gilWait: o.gilWait, state: o.state, startBucket: Math.floor(o.startNs / bucketNs), endBucket: Math.floor(end / bucketNs) });
      }
    }
    return mergeRecords(raw);
  }
}

/** Merge records with the same (tid, stack, gil, state, buckets, comm): sums, min start, max end. */
export function mergeRecords(raw: RawRecord[]): OffCpuInterval[] {
  const keyOf = (r: RawRecord) => `${r.tid}\u0000${r.gilWait ? 1 : 0}\u0000${r.state}\u0000${r.startBucket}\u0000${r.endBucket}\u0000${r.comm}\u0000${r.kstack.join('\u0001')}`;
  // the same entry printed twice (same generation, same key): keep the later printout
  const once = new Map<string, RawRecord>();
  const rest: RawRecord[] = [];
  for (const r of raw) {
    if (r.gen === undefined || r.gen < 0) rest.push(r);
    else once.set(`${r.gen}\u0002${keyOf(r)}\u0002${r.rawStack ?? ''}`, r);
  }
  const byKey = new Map<string, OffCpuInterval>();
  for (const r of [...once.values(), ...rest]) {
    const k = keyOf(r);
    const prev = byKey.get(k);
    if (!prev) {
      const { startBucket: _s, endBucket: _e, gen: _g, rawStack: _r, ...fields } = r;
      byKey.set(k, fields);
      continue;
    }
    prev.blockedNs += r.blockedNs;
    prev.count += r.count;
    prev.startNs = Math.min(prev.startNs, r.startNs);
    prev.endNs = Math.max(prev.endNs, r.endNs);
  }
  return [...byKey.values()].sort((a, b) => a.startNs - b.startNs || a.tid - b.tid);
}

// ---------------------------------------------------------------------------------------
// The GIL probe

/** x86-64 system call number of futex(2) */
const X64_SYS_FUTEX = 202;

/**
 * The kernel's THREAD_SIZE (the saved user registers sit at the top of the task's kernel
 * stack): 16 KiB on x86-64, 32 KiB with KASAN (when the kernel config is readable).
 */
export function kernelThreadSize(): number {
  const release = (() => {
    try {
      return readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
    } catch {
      return '';
    }
  })();
  let config = '';
  try {
    config = readFileSync(`/boot/config-${release}`, 'utf8');
  } catch {
    try {
      config = gunzipSync(readFileSync('/proc/config.gz')).toString('utf8');
    } catch {
      config = '';
    }
  }
  return /^CONFIG_KASAN=y$/m.test(config) ? 32768 : 16384;
}

/**
 * GIL waits by futex address (x86-64): the main interpreter's GIL struct, read with the
 * sampler's layouts. Elsewhere, or when the struct cannot be found, the take_gil probes.
 */
export function findGilDetection(pid: number, known?: { address: number; size: number } | null): GilDetection | { reason: string } {
  if (process.arch !== 'x64') return findGilProbe(pid);
  let sampler: ProcessSampler | undefined;
  try {
    let r = known;
    if (r === undefined) {
      sampler = ProcessSampler.attach(pid);
      r = sampler.gilRange();
    }
    if (r && r.address > 0) return { kind: 'futex', start: r.address, end: r.address + r.size, threadSize: kernelThreadSize(), futexSyscall: X64_SYS_FUTEX };
  } catch {
    // not readable here: the probes may still work
  } finally {
    sampler?.close();
  }
  return findGilProbe(pid);
}

/** Where to put the take_gil probes for a process: its libpython, or a static python's executable, when the symbol is there. */
export function findGilProbe(pid: number): GilDetection | { reason: string } {
  let maps;
  try {
    maps = readMaps(pid);
  } catch (e) {
    return { reason: `cannot read /proc/${pid}/maps (${(e as Error).message})` };
  }
  let exePath: string | undefined;
  try {
    exePath = readlinkSync(`/proc/${pid}/exe`);
  } catch {
    exePath = undefined;
  }
  const bin = findLibpython(maps) ?? findExecutable(maps, exePath);
  if (!bin) return { reason: 'no libpython or executable mapped' };
  let path = bin.path.replace(/ \(deleted\)$/, '');
  // a target in another mount namespace: reach its file through /proc/PID/root
  if (!existsSync(path) && existsSync(`/proc/${pid}/root${path}`)) path = `/proc/${pid}/root${path}`;
  if (!existsSync(path)) return { reason: `${path} is not reachable` };
  try {
    const elf = ElfFile.read(path);
    const sym = elf.symbol('take_gil');
    elf.release();
    if (!sym || sym.shndx === 0 || sym.value === 0) return { reason: `${path} has no take_gil symbol (stripped, or a CPython without it)` };
  } catch (e) {
    return { reason: `cannot read ${path} (${(e as Error).message})` };
  }
  return { kind: 'uprobe', file: path, symbol: 'take_gil' };
}

// ---------------------------------------------------------------------------------------
// Backends

type Backend = OffCpuResult['backend'];

/**
 * Start recording off-CPU intervals of `opts.pid`; resolves once the probes are attached.
 * Throws EbpfError / PerfError (with the fix) when no backend can run.
 */
export async function startOffCpu(opts: OffCpuOptions): Promise<OffCpuRecording> {
  if (!processAlive(opts.pid)) throw new EbpfError(`process ${opts.pid} does not exist`, 'check the PID with `ps -p PID`');
  const want = opts.backend ?? 'auto';
  const order: Backend[] = want === 'auto' ? ['bpftrace', 'bcc', 'perf-sched'] : [want];
  const why: string[] = [];
  let lastErr: unknown;
  for (const b of order) {
    try {
      const rec = b === 'bpftrace' ? await startBpftrace(opts) : b === 'bcc' ? await startBcc(opts) : await startPerfSched(opts);
      if (why.length) rec.notes.unshift(`off-CPU backend: ${b}, because ${why.join('; ')}`);
      else rec.notes.unshift(`off-CPU backend: ${b}`);
      return rec.recording;
    } catch (e) {
      if (!(e instanceof PerfError)) throw e;
      // the target ended while the tracer was starting: no other backend will do better
      if (!processAlive(opts.pid)) throw new EbpfError(`process ${opts.pid} ended before the ${b} probes were attached; nothing was recorded`, 'for a short-lived program, start it under pylens (`pylens offcpu -- python app.py`) or make it run longer');
      lastErr = e;
      why.push(`${b} is not usable: ${e.message}`);
    }
  }
  if (order.length > 1 && lastErr instanceof PerfError) {
    throw new EbpfError(`no off-CPU backend works here: ${why.join('; ')}`, lastErr.fix);
  }
  throw lastErr;
}

interface Started {
  recording: OffCpuRecording;
  /** warnings to put first in the result (backend choice) */
  notes: string[];
}

/** Stop the tracer when the target is gone (for tracers that do not notice by themselves). */
function watchTarget(pid: number, onGone: () => void): NodeJS.Timeout {
  const t = setInterval(() => {
    if (!processAlive(pid)) {
      clearInterval(t);
      onGone();
    }
  }, 200);
  t.unref();
  return t;
}

async function waitReady(tracer: Tracer, isReady: () => boolean, what: string, hint: string, kernel: string, timeoutMs = 60_000): Promise<void> {
  const start = Date.now();
  while (!isReady()) {
    if (!tracer.running()) {
      const { code, stderr } = await tracer.done;
      throw explainTracerStderr(stderr, what, kernel) ?? new EbpfError(`${what} failed (exit ${code}): ${stderr.split('\n').filter((l) => l.trim() && !/RLIMIT_MEMLOCK/.test(l)).slice(-3).join(' | ') || 'no message'}`, `run \`${hint}\` by hand to see the whole message`);
    }
    if (Date.now() - start > timeoutMs) {
      await tracer.stop('SIGKILL');
      throw new EbpfError(`${what} did not attach its probes within ${Math.round(timeoutMs / 1000)} s`, `the machine may be overloaded; try again, or run \`${hint}\` by hand`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function startBpftrace(opts: OffCpuOptions): Promise<Started> {
  const bpftrace = findBpftrace();
  let facts = readEbpfFacts();
  if (!facts.tracefs && ensureTracefs(facts)) facts = readEbpfFacts();
  const check = checkEbpfAccess(facts, { tool: 'bpftrace' });
  const notes = [...check.warnings];
  const bucketNs = opts.bucketNs ?? DEFAULT_BUCKET_NS;
  let gil: GilDetection | undefined;
  if (opts.gil !== false) {
    const g = opts.gilMethod === 'uprobe' ? findGilProbe(opts.pid) : findGilDetection(opts.pid, opts.gilRange);
    if ('reason' in g) notes.push(`GIL waits are not detected: ${g.reason}`);
    else gil = g;
  }
  const program = offCpuProgram({ pid: opts.pid, minBlockUs: opts.minBlockUs ?? 1, bucketNs, gil });
  const dir = mkdtempSync(join(tmpdir(), 'pylens-offcpu-'));
  const file = join(dir, 'offcpu.bt');
  writeFileSync(file, program);
  const parser = new OffCpuOutputParser(opts.pid);
  const tracer = spawnTracer(bpftrace, ['-p', String(opts.pid), file], {
    onLine: (l) => parser.line(l),
    raiseMemlock: check.raiseMemlock,
    // room for a second of distinct keys on a busy target (the default is 4096)
    env: { ...process.env, BPFTRACE_MAP_KEYS_MAX: '65536', BPFTRACE_STRLEN: '64' },
  });
  const hint = `bpftrace -p ${opts.pid} ${file}`;
  try {
    await waitReady(tracer, () => parser.readyNs !== undefined, 'bpftrace', hint, facts.kernel);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    // a GIL probe that cannot be placed should not cost the whole recording
    // a GIL detection that does not compile (no BTF for pt_regs) or attach: try the next one
    if (gil?.kind === 'futex' && e instanceof PerfError) {
      return startBpftrace({ ...opts, gilMethod: 'uprobe' }).then((s) => ({ ...s, notes: [`GIL waits through take_gil probes: reading the futex address failed (${e.message})`, ...s.notes] }));
    }
    if (gil?.kind === 'uprobe' && e instanceof PerfError && /probe could not be placed|uprobe|take_gil/i.test(`${e.message} ${tracer.stderr()}`)) {
      return startBpftrace({ ...opts, gil: false }).then((s) => ({ ...s, notes: [`GIL waits are not detected: the take_gil probe failed (${e.message})`, ...s.notes] }));
    }
    throw e;
  }
  let stopped = false;
  /** when pylens asked bpftrace to stop: threads still off the CPU were off until at least then */
  let stopNs: number | undefined;
  const ended = tracer.done.then(() => {});
  let result: Promise<OffCpuResult> | undefined;
  const collect = async (): Promise<OffCpuResult> => {
    const { code, stderr } = await tracer.done;
    rmSync(dir, { recursive: true, force: true });
    const warnings = [...notes];
    for (const m of stderr.matchAll(/Lost (\d+) events/g)) parser.lost += Number(m[1]);
    if (parser.endNs === undefined) {
      warnings.push(`bpftrace ended without printing its final maps (exit ${code}${stderr.trim() ? `: ${stderr.trim().split('\n').filter((l) => !/RLIMIT_MEMLOCK/.test(l)).slice(-1)[0] ?? ''}` : ''}): the last second of intervals may be missing`);
    }
    if (!stopped) warnings.push('bpftrace ended before stop() (the target exited)');
    if (parser.skipped.length) warnings.push(`bpftrace printed lines pylens did not understand, e.g. ${JSON.stringify(parser.skipped[0])}`);
    if (parser.lost) warnings.push(`bpftrace lost ${parser.lost} events: some printouts may be missing`);
    // bpftrace detaches before END: a switch-in after the stop request is not seen, so open
    // intervals close at the request (or END, when bpftrace ended by itself)
    const closeAt = Math.min(stopNs ?? Infinity, parser.endNs ?? Infinity);
    return { backend: 'bpftrace', intervals: parser.finish(bucketNs, Number.isFinite(closeAt) ? closeAt : nowMonotonicNs()), warnings, lostEvents: parser.lost, gilProbe: gil !== undefined, ...(gil ? { gilMethod: gil.kind } : {}) };
  };
  return {
    notes,
    recording: {
      backend: 'bpftrace',
      ended,
      stop() {
        if (!result) {
          stopped = tracer.running();
          if (stopped) stopNs = nowMonotonicNs();
          result = (async () => {
            await tracer.stop('SIGINT');
            return collect();
          })();
        }
        return result;
      },
    },
  };
}

/** CLOCK_MONOTONIC now, in ns (process.hrtime is CLOCK_MONOTONIC on Linux). */
export function nowMonotonicNs(): number {
  return Number(process.hrtime.bigint());
}

// bcc -------------------------------------------------------------------------------------

/**
 * Parse offcputime's default (multi-line) output: per stack, the frames (leaf first), then
 * `-  comm (tid)`, then the total in microseconds. (`-f` folded output has no thread id.)
 */
export function parseOffcputime(text: string, pid: number, startNs: number, endNs: number): OffCpuInterval[] {
  const out: OffCpuInterval[] = [];
  let frames: string[] = [];
  let who: { comm: string; tid: number } | undefined;
  for (const raw of text.split('\n')) {
    const l = raw.trim();
    if (l === '') {
      frames = [];
      who = undefined;
      continue;
    }
    const w = /^-\s+(.*) \((\d+)\)$/.exec(l);
    if (w) {
      who = { comm: w[1]!.trim(), tid: Number(w[2]) };
      continue;
    }
    if (who && /^\d+$/.test(l)) {
      const us = Number(l);
      const kstack = frames.filter((f) => f !== '--').map(bareSymbol);
      out.push({ pid, tid: who.tid, comm: who.comm, kstack, startNs, endNs, blockedNs: us * 1000, count: 1, gilWait: false, state: '?' });
      frames = [];
      who = undefined;
      continue;
    }
    if (/^(Tracing|Hit Ctrl-C|WARNING|Detaching)/.test(l)) continue;
    frames.push(l);
  }
  return out;
}

async function startBcc(opts: OffCpuOptions): Promise<Started> {
  const tool = findOffcputime();
  let facts = readEbpfFacts();
  if (!facts.tracefs && ensureTracefs(facts)) facts = readEbpfFacts();
  const check = checkEbpfAccess(facts, { tool: 'bcc' });
  const notes = [...check.warnings, 'bcc offcputime aggregates over the whole recording: every record spans it (startNs/endNs), count is 1 per (thread, stack) and the state is unknown (?); GIL waits are not detected'];
  let text = '';
  let ready = false;
  const args = ['-K', '-p', String(opts.pid), '-m', String(Math.max(1, Math.round(opts.minBlockUs ?? 1)))];
  const tracer = spawnTracer(tool, args, {
    onLine: (l) => {
      if (!ready && /^Tracing/.test(l)) ready = true;
      else text += `${l}\n`;
    },
    raiseMemlock: check.raiseMemlock,
    env: { ...process.env, PYTHONUNBUFFERED: '1' },
  });
  await waitReady(tracer, () => ready, 'offcputime', `${tool} ${args.join(' ')}`, facts.kernel, 120_000);
  const startNs = nowMonotonicNs();
  let endNs = startNs;
  let stopped = false;
  const watch = watchTarget(opts.pid, () => {
    endNs = nowMonotonicNs();
    void tracer.stop('SIGINT');
  });
  let result: Promise<OffCpuResult> | undefined;
  return {
    notes,
    recording: {
      backend: 'bcc',
      ended: tracer.done.then(() => {}),
      stop() {
        result ??= (async () => {
          clearInterval(watch);
          if (tracer.running()) {
            stopped = true;
            endNs = nowMonotonicNs();
          }
          const { code, stderr } = await tracer.stop('SIGINT');
          const warnings = [...notes];
          if (!stopped) warnings.push('offcputime ended before stop() (the target exited)');
          const intervals = parseOffcputime(text, opts.pid, startNs, endNs);
          if (intervals.length === 0 && code !== 0 && code !== 130) {
            const e = explainTracerStderr(stderr, 'offcputime', facts.kernel);
            warnings.push(e ? `${e.message} (${e.fix})` : `offcputime exited ${code}: ${stderr.trim().split('\n').slice(-1)[0] ?? ''}`);
          }
          return { backend: 'bcc' as const, intervals, warnings, lostEvents: 0, gilProbe: false };
        })();
        return result;
      },
    },
  };
}

// perf sched ------------------------------------------------------------------------------

/**
 * Off-CPU intervals of `tids` from a sched trace: each switch-out (a non-running segment
 * with a stack) to the next switch-in, the wakeup's runnable tail included — as bpftrace
 * measures. Intervals still open at the end close at the trace's end.
 */
export function intervalsFromSched(trace: SchedTrace, tids: Iterable<number>, pid: number, minBlockNs: number, bucketNs: number): OffCpuInterval[] {
  const raw: RawRecord[] = [];
  for (const tid of tids) {
    const t = trace.tasks.get(tid);
    if (!t) continue;
    const n = t.kinds.length;
    for (let i = 0; i < n; i++) {
      const sid = t.stackIds[i]!;
      if (t.kinds[i] === RUNNING || sid < 0) continue;
      const first = i;
      const start = t.starts[i]!;
      // the wait, then the runnable stretch after its wakeup (no stack of its own), until the switch-in
      while (i + 1 < n && t.kinds[i + 1] !== RUNNING && t.stackIds[i + 1]! < 0 && t.starts[i + 1] === t.ends[i]) i++;
      const end = t.ends[i]!;
      if (end - start < minBlockNs) continue;
      const kstack = (trace.stacks[sid] ?? []).filter((f) => f.endsWith(' [k]')).map((f) => bareSymbol(f.slice(0, -4)));
      const state = (t.states[first] || '?')[0]!;
      raw.push({ pid, tid, comm: t.comm, kstack, startNs: start, endNs: end, blockedNs: end - start, count: 1, gilWait: false, state, startBucket: Math.floor(start / bucketNs), endBucket: Math.floor(end / bucketNs) });
    }
  }
  return mergeRecords(raw);
}

async function startPerfSched(opts: OffCpuOptions): Promise<Started> {
  const perf = findPerf();
  const access = readPerfAccess();
  const checked = checkPerfAccess(access, { kernel: true, systemWide: true, tracepoints: true });
  const notes = [...checked.warnings, 'perf sched: every switch is written to perf.data and read back after the recording (heavier than bpftrace); GIL waits are not detected'];
  const dir = mkdtempSync(join(tmpdir(), 'pylens-offcpu-perf-'));
  const dataFile = join(dir, 'perf.data');
  // CLOCK_MONOTONIC timestamps, like bpftrace's nsecs
  const args = [...schedRecordArgs(dataFile), '-k', 'CLOCK_MONOTONIC'];
  let run;
  try {
    run = await startPerfRecord(perf, args, { detached: true, hint: 'perf record -a -e sched:sched_switch -g -- sleep 1' });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const killOnExit = () => {
    try {
      run.child.kill('SIGKILL');
    } catch {
      /* gone */
    }
  };
  process.on('exit', killOnExit);
  let stopped = false;
  let running = true;
  void run.done.then(() => {
    running = false;
    process.off('exit', killOnExit);
  });
  const watch = watchTarget(opts.pid, () => void run.child.kill('SIGINT'));
  let result: Promise<OffCpuResult> | undefined;
  return {
    notes,
    recording: {
      backend: 'perf-sched',
      ended: run.done.then(() => {}),
      stop() {
        result ??= (async () => {
          clearInterval(watch);
          if (running) {
            stopped = true;
            run.child.kill('SIGINT');
          }
          const timer = setTimeout(() => run.child.kill('SIGKILL'), 60_000);
          const { code, stderr } = await run.done;
          clearTimeout(timer);
          const warnings = [...notes];
          if (!stopped) warnings.push('perf ended before stop() (the target exited)');
          try {
            if (!existsSync(dataFile) || statSync(dataFile).size === 0) {
              throw explainPerfStderr(stderr, 'perf record') ?? new PerfError(`perf record wrote no data (exit ${code})`, 'run `perf record -a -e sched:sched_switch -- sleep 1` by hand to see the whole message');
            }
            const trace = await readSchedData(perf, dataFile);
            const tids = selectTids(trace, { pid: opts.pid });
            const intervals = intervalsFromSched(trace, tids, opts.pid, Math.round((opts.minBlockUs ?? 1) * 1000), opts.bucketNs ?? DEFAULT_BUCKET_NS);
            if (trace.lost) warnings.push(`perf lost ${trace.lost} events (ring buffer full): some intervals are wrong or missing`);
            return { backend: 'perf-sched' as const, intervals, warnings, lostEvents: trace.lost, gilProbe: false };
          } finally {
            rmSync(dir, { recursive: true, force: true });
          }
        })();
        return result;
      },
    },
  };
}
