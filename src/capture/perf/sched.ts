/**
 * `pylens sched`: who runs and who waits, from the kernel scheduler's tracepoints.
 *
 * Recording: `perf record -a` of sched:sched_switch (with a frame-pointer call graph, so
 * every switch-out has its stack), sched_wakeup, sched_wakeup_new, sched_process_fork and
 * sched_process_exit, system-wide; the target's threads are picked out afterwards. perf
 * starts with its events disabled and is enabled through its control descriptors, so the
 * recording is known to be running before the target is launched.
 *
 * Parsing: `perf script --ns` text, one event at a time (SchedTraceParser), into a state
 * machine per thread:
 *
 *   running  ── switch-out, prev_state R/R+ (preempted) ──▶ runnable (scheduler delay)
 *   running  ── switch-out, prev_state S/D/I/T… ─────────▶ sleeping (S…) or blocked (D)
 *   sleeping ── sched_wakeup ─────────────────────────────▶ runnable
 *   runnable ── switch-in ────────────────────────────────▶ running
 *   (X/Z at switch-out: the thread is gone)
 *
 * A thread's state before its first event follows from that event (a switch-out means it
 * was running, a wakeup that it slept, a switch-in that it was runnable), so the first
 * segment starts at the beginning of the recording. Open segments end at its end.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { explainPerfStderr, PerfError, spawnPerf, startPerfRecord, type PerfRun } from './tool.ts';
import { BLOCKED, RUNNABLE, RUNNING, SLEEPING, type ForkEvent, type SchedTrace, type TaskTimeline } from '../../analysis/sched.ts';

// the trace's types and its summary are analysis's (src/analysis/sched.ts); kept importable from here
export { RUNNING, RUNNABLE, SLEEPING, BLOCKED, KIND_NAMES, stateName, summarize } from '../../analysis/sched.ts';
export type { KindName, TaskTimeline, ForkEvent, SchedTrace, ThreadSummary, WaitSummary, SchedSummary } from '../../analysis/sched.ts';

interface Live {
  kind: number; // -1 unknown (no event yet), -2 dead
  since: number;
  stackId: number;
  state: string;
  pendingExit: boolean;
  /** running without a recorded switch-in */
  inferred: boolean;
}

const HEADER_RE = /^\s*(.*?)\s+(-?\d+)\/(-?\d+)\s+\[(\d+)\]\s+(\d+)\.(\d+):\s+(?:\d+\s+)?([\w-]+:[\w-]+):\s?(.*)$/;
const SWITCH_RE = /prev_comm=(.*) prev_pid=(\d+) prev_prio=-?\d+ prev_state=(\S+) ==> next_comm=(.*) next_pid=(\d+) next_prio=-?\d+/;
const WAKEUP_RE = /comm=(.*?) pid=(\d+) prio=-?\d+/;
const FORK_RE = /comm=(.*) pid=(\d+) child_comm=(.*) child_pid=(\d+)/;
const STAT_RUNTIME_RE = /comm=(.*?) pid=(\d+) runtime=(\d+)/;
const EXIT_RE = /comm=(.*?) pid=(\d+) prio=/;
const LOST_RE = /PERF_RECORD_LOST(?:_SAMPLES)?\b.*?\blost (\d+)/;
const FRAME_RE = /^\s+([0-9a-f]+)\s+(.*?)\s+\((.*)\)\s*$/;

/** Timestamp "17282.970203970" as integer ns (exact: below 2^53 for 104 days of uptime). */
function tsNs(sec: string, frac: string): number {
  const f = frac.length >= 9 ? frac.slice(0, 9) : frac.padEnd(9, '0');
  return Number(sec) * 1e9 + Number(f);
}

function frameName(sym: string, dso: string): string {
  const s = sym.replace(/\+0x[0-9a-f]+$/, '');
  if (dso === '[kernel.kallsyms]' || dso.startsWith('[kernel')) return `${s} [k]`;
  const lib = dso.slice(dso.lastIndexOf('/') + 1);
  return `${s} (${lib})`;
}

/**
 * Streaming parser of `perf script --ns -F comm,pid,tid,cpu,time,event,trace,ip,sym,dso`
 * text of the sched tracepoints. Feed lines with `line()`, then `finish()`.
 */
export class SchedTraceParser {
  private tasks = new Map<number, TaskTimeline>();
  private live = new Map<number, Live>();
  private forks: ForkEvent[] = [];
  private stacks: string[][] = [];
  private stackIndex = new Map<string, number>();
  private startNs = Number.NaN;
  private endNs = Number.NaN;
  private events = 0;
  private skipped = 0;
  private lost = 0;
  private skippedSample: string[] = [];
  /** the switch event whose callchain lines follow */
  private pending: { ts: number; headerPid: number; prevTid: number; prevComm: string; prevState: string; nextTid: number; nextComm: string; frames: string[] } | undefined;

  line(raw: string): void {
    if (raw.length === 0) return;
    const c0 = raw.charCodeAt(0);
    if (c0 === 9 /* \t */ && this.pending) {
      const m = FRAME_RE.exec(raw);
      if (m) {
        this.pending.frames.push(frameName(m[2]!, m[3]!));
        return;
      }
    }
    const h = HEADER_RE.exec(raw);
    const lost = LOST_RE.exec(raw);
    if (lost) {
      this.lost += Number(lost[1]);
      return;
    }
    if (!h) {
      if (/^\s*$/.test(raw) || raw.startsWith('#')) return;
      if (FRAME_RE.test(raw)) return; // a callchain of an event we do not keep
      this.skip(raw);
      return;
    }
    this.flush();
    const ts = tsNs(h[5]!, h[6]!);
    const headerPid = Number(h[2]);
    const headerTid = Number(h[3]);
    const event = h[7]!;
    const body = h[8]!;
    this.events++;
    if (Number.isNaN(this.startNs) || ts < this.startNs) this.startNs = ts;
    if (Number.isNaN(this.endNs) || ts > this.endNs) this.endNs = ts;
    // the task in whose context an event fires is on a CPU
    // (a switch's header is its prev, handled with it; a runtime update dates it better)
    if (event !== 'sched:sched_switch' && event !== 'sched:sched_stat_runtime' && headerTid > 0) this.onCpu(headerTid, headerPid, ts, ts);
    switch (event) {
      case 'sched:sched_switch': {
        const m = SWITCH_RE.exec(body);
        if (!m) return this.skip(raw);
        this.pending = { ts, headerPid, prevTid: Number(m[2]), prevComm: m[1]!, prevState: m[3]!, nextTid: Number(m[5]), nextComm: m[4]!, frames: [] };
        return;
      }
      case 'sched:sched_wakeup':
      case 'sched:sched_wakeup_new': {
        const m = WAKEUP_RE.exec(body);
        if (!m) return this.skip(raw);
        this.wakeup(ts, Number(m[2]), m[1]!, event === 'sched:sched_wakeup_new');
        return;
      }
      case 'sched:sched_process_fork': {
        const m = FORK_RE.exec(body);
        if (!m) return this.skip(raw);
        const childTid = Number(m[4]);
        this.forks.push({ ts, parentTid: headerTid > 0 ? headerTid : Number(m[2]), parentPid: headerPid, childTid, childComm: m[3]! });
        this.task(childTid, m[3]!);
        // born here: nothing before this moment belongs to it
        const l = this.state(childTid);
        if (l.kind === -1) {
          l.kind = -3; // born, not yet runnable
          l.since = ts;
        }
        return;
      }
      case 'sched:sched_stat_runtime': {
        const m = STAT_RUNTIME_RE.exec(body);
        if (!m) return this.skip(raw);
        // runtime since the last update; the first update after a switch-in counts from it
        const tid = Number(m[2]);
        if (tid > 0) this.onCpu(tid, headerTid === tid ? headerPid : -1, ts, ts - Number(m[3]));
        return;
      }
      case 'sched:sched_process_exit': {
        const m = EXIT_RE.exec(body);
        if (!m) return this.skip(raw);
        const tid = Number(m[2]);
        const t = this.task(tid, m[1]!);
        if (headerPid > 0 && headerTid === tid) t.pid = headerPid;
        t.exited = true;
        this.state(tid).pendingExit = true;
        return;
      }
      default:
        return; // other events are not used
    }
  }

  private skip(raw: string): void {
    this.skipped++;
    if (this.skippedSample.length < 5) this.skippedSample.push(raw.slice(0, 200));
  }

  private task(tid: number, comm: string): TaskTimeline {
    let t = this.tasks.get(tid);
    if (!t) {
      t = { tid, pid: -1, comm, starts: [], ends: [], kinds: [], stackIds: [], states: [], voluntary: 0, involuntary: 0, exited: false, inferredNs: 0 };
      this.tasks.set(tid, t);
    } else if (comm && comm !== ':-1') t.comm = comm;
    return t;
  }

  private state(tid: number): Live {
    let l = this.live.get(tid);
    if (!l) {
      l = { kind: -1, since: 0, stackId: -1, state: '', pendingExit: false, inferred: false };
      this.live.set(tid, l);
    }
    return l;
  }

  private seg(t: TaskTimeline, start: number, end: number, kind: number, stackId: number, state: string): void {
    if (end < start) end = start;
    // a zero-length segment carries nothing
    if (end === start) return;
    t.starts.push(start);
    t.ends.push(end);
    t.kinds.push(kind);
    t.stackIds.push(stackId);
    t.states.push(state);
  }

  private stackId(frames: string[]): number {
    if (frames.length === 0) return -1;
    const key = frames.join('\n');
    let id = this.stackIndex.get(key);
    if (id === undefined) {
      id = this.stacks.length;
      this.stacks.push(frames);
      this.stackIndex.set(key, id);
    }
    return id;
  }

  /**
   * `tid` is on a CPU at `ts`, and has been since `from` at the latest. When the state
   * machine has it elsewhere, its switch-in was not recorded: it runs from `from` (but not
   * before what is known of it).
   */
  private onCpu(tid: number, headerPid: number, ts: number, from: number): void {
    const l = this.state(tid);
    if (l.kind === RUNNING || l.kind === -2) return;
    const t = this.task(tid, '');
    if (headerPid > 0) t.pid = headerPid;
    if (l.kind === -1) {
      // first sight: running since the recording began, or since `from` when that is known
      if (from === ts) from = this.startNs;
      Object.assign(l, { kind: RUNNING, since: Math.max(this.startNs, from), stackId: -1, state: '' });
      return;
    }
    const start = Math.min(ts, Math.max(l.since, from));
    this.close(t, l, start, RUNNING);
    Object.assign(l, { kind: RUNNING, since: start, stackId: -1, state: '', inferred: true });
  }

  /** close the current segment of `l` at `ts`; `unknownKind` is what an unknown past was */
  private close(t: TaskTimeline, l: Live, ts: number, unknownKind: number): void {
    if (l.kind === -1) this.seg(t, this.startNs, ts, unknownKind, -1, '');
    else if (l.kind >= 0) this.seg(t, l.since, ts, l.kind, l.stackId, l.state);
    if (l.kind === RUNNING && l.inferred) {
      t.inferredNs += Math.max(0, ts - l.since);
      l.inferred = false;
    }
  }

  private flush(): void {
    const p = this.pending;
    if (!p) return;
    this.pending = undefined;
    const { ts } = p;
    if (p.prevTid > 0) {
      const t = this.task(p.prevTid, p.prevComm);
      if (p.headerPid > 0) t.pid = p.headerPid;
      const l = this.state(p.prevTid);
      if (l.kind !== -2) {
        this.onCpu(p.prevTid, p.headerPid, ts, ts);
        this.close(t, l, ts, RUNNING);
        const st = p.prevState;
        const sid = this.stackId(p.frames);
        if (st.startsWith('X') || st.startsWith('Z') || l.pendingExit && !st.startsWith('R')) {
          l.kind = -2;
          t.exited = true;
          t.voluntary++;
        } else if (st.startsWith('R')) {
          t.involuntary++;
          Object.assign(l, { kind: RUNNABLE, since: ts, stackId: sid, state: st });
        } else {
          t.voluntary++;
          Object.assign(l, { kind: st.startsWith('D') ? BLOCKED : SLEEPING, since: ts, stackId: sid, state: st });
        }
      }
    }
    if (p.nextTid > 0) {
      const t = this.task(p.nextTid, p.nextComm);
      const l = this.state(p.nextTid);
      if (l.kind !== -2) {
        this.close(t, l, ts, RUNNABLE);
        Object.assign(l, { kind: RUNNING, since: ts, stackId: -1, state: '' });
      }
    }
  }

  private wakeup(ts: number, tid: number, comm: string, isNew: boolean): void {
    if (tid <= 0) return;
    const t = this.task(tid, comm);
    const l = this.state(tid);
    if (l.kind === RUNNING || l.kind === RUNNABLE || l.kind === -2) return;
    if (l.kind === -3 || (l.kind === -1 && isNew)) {
      // a new task becomes runnable
    } else this.close(t, l, ts, SLEEPING);
    Object.assign(l, { kind: RUNNABLE, since: ts, stackId: -1, state: '' });
  }

  finish(): SchedTrace {
    this.flush();
    const end = this.endNs;
    for (const [tid, l] of this.live) {
      const t = this.tasks.get(tid)!;
      if (l.kind >= 0) this.close(t, l, end, RUNNING);
      l.kind = -2;
    }
    return {
      startNs: Number.isNaN(this.startNs) ? 0 : this.startNs,
      endNs: Number.isNaN(end) ? 0 : end,
      events: this.events,
      lost: this.lost,
      tasks: this.tasks,
      forks: this.forks,
      stacks: this.stacks,
      skipped: this.skipped,
      skippedSample: this.skippedSample,
    };
  }
}

/** Parse a whole `perf script` text (tests, small inputs). */
export function parseSchedScript(text: string): SchedTrace {
  const p = new SchedTraceParser();
  let i = 0;
  while (i < text.length) {
    let j = text.indexOf('\n', i);
    if (j < 0) j = text.length;
    p.line(text.charCodeAt(j - 1) === 13 ? text.slice(i, j - 1) : text.slice(i, j));
    i = j + 1;
  }
  return p.finish();
}

/** Which threads belong to the target. */
export type SchedTarget =
  /** a running process: its threads (by thread group), plus thread ids known from /proc */
  | { pid: number; tids?: Iterable<number> }
  /** a launched command: the process and every thread and process it forked, recursively */
  | { root: number };

export function selectTids(trace: SchedTrace, target: SchedTarget): Set<number> {
  const out = new Set<number>();
  if ('root' in target) {
    out.add(target.root);
    for (const f of trace.forks) if (out.has(f.parentTid)) out.add(f.childTid);
  } else {
    for (const t of trace.tasks.values()) if (t.pid === target.pid) out.add(t.tid);
    out.add(target.pid);
    for (const tid of target.tids ?? []) out.add(tid);
  }
  for (const tid of out) if (!trace.tasks.has(tid)) out.delete(tid);
  return out;
}

// ---------------------------------------------------------------------------------------
// Recording

/** The perf events `sched` records; the switch carries a frame-pointer call graph. */
export const SCHED_EVENTS = [
  'sched:sched_switch/call-graph=fp/',
  'sched:sched_wakeup',
  'sched:sched_wakeup_new',
  'sched:sched_process_fork',
  'sched:sched_process_exit',
  // CFS's runtime accounting, in the running task's context: dates switch-ins perf missed
  'sched:sched_stat_runtime',
];

export function schedRecordArgs(dataFile: string, opts: { callGraph?: boolean } = {}): string[] {
  const events = SCHED_EVENTS.map((e) => (opts.callGraph === false ? e.replace(/\/call-graph=fp\/$/, '') : e));
  return [
    'record', '-a', '-q',
    // no build-id collection or cache: a system-wide post-pass over every sample, not needed to read it back here
    '-N', '-B',
    '-m', '256',
    ...events.flatMap((e) => ['-e', e]),
    '-o', dataFile,
  ];
}

export const SCRIPT_FIELDS = 'comm,pid,tid,cpu,time,event,trace,ip,sym,dso';

export interface SchedRecorder {
  run: PerfRun;
  /** stop the recording (SIGINT) and wait until perf has written the file */
  stop(): Promise<void>;
  /** resolves if perf ends on its own (it failed or was killed) */
  ended: Promise<{ code: number; stderr: string }>;
}

/**
 * Start `perf record` of the sched events and wait until they are enabled. Throws a
 * PerfError when perf fails to start.
 */
export async function startSchedRecord(perf: string, dataFile: string, opts: { callGraph?: boolean; timeoutMs?: number } = {}): Promise<SchedRecorder> {
  const run = await startPerfRecord(perf, schedRecordArgs(dataFile, opts), { hint: 'perf record -a -e sched:sched_switch -- sleep 1', ...(opts.timeoutMs !== undefined ? { readyTimeoutMs: opts.timeoutMs } : {}) });
  let stopping: Promise<void> | undefined;
  return {
    run,
    ended: run.done,
    stop() {
      stopping ??= (async () => {
        run.child.kill('SIGINT');
        const timer = setTimeout(() => run.child.kill('SIGKILL'), 60_000);
        const { code, stderr } = await run.done;
        clearTimeout(timer);
        if (!existsSync(dataFile) || statSync(dataFile).size === 0) {
          throw explainPerfStderr(stderr, 'perf record') ?? new PerfError(`perf record wrote no data (exit ${code}): ${stderr.trim().split('\n').slice(-2).join(' | ')}`, 'run `perf record -a -e sched:sched_switch -- sleep 1` by hand to see the whole message');
        }
      })();
      return stopping;
    },
  };
}

/**
 * Read a recording back with `perf script`, streaming its text through the parser.
 * Throws a PerfError when perf script fails.
 */
export async function readSchedData(perf: string, dataFile: string): Promise<SchedTrace> {
  const parser = new SchedTraceParser();
  const child = spawn(perf, ['script', '-i', dataFile, '--ns', '--show-lost-events', '-F', SCRIPT_FIELDS], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (c: string) => {
    if (stderr.length < 1 << 16) stderr += c;
  });
  const closed = new Promise<number>((resolve) => {
    child.on('error', (e) => {
      stderr += e.message;
      resolve(127);
    });
    child.on('close', (code) => resolve(code ?? 1));
  });
  const rl = createInterface({ input: child.stdout, crlfDelay: Infinity });
  for await (const l of rl) parser.line(l);
  const code = await closed;
  if (code !== 0) {
    throw explainPerfStderr(stderr, 'perf script') ?? new PerfError(`perf script failed (exit ${code}): ${stderr.trim().split('\n').slice(-3).join(' | ')}`, `run \`perf script -i ${dataFile}\` by hand to see the whole message`);
  }
  return parser.finish();
}

/** The thread ids of a live process (empty when it is gone). */
export function processTids(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).map(Number).filter((n) => Number.isInteger(n) && n > 0);
  } catch {
    return [];
  }
}
