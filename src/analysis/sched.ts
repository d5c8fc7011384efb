/**
 * A scheduler trace (`pylens sched`, the perf lens) as data, and its summary: per-thread
 * running / runnable / sleeping / blocked time and the longest waits. The trace is parsed
 * from `perf script` by src/capture/perf/sched.ts; the timeline view (src/render/sched-html.ts)
 * and the text report read what is here.
 */

/** Segment kinds, as stored in the timelines. */
export const RUNNING = 0;
export const RUNNABLE = 1;
export const SLEEPING = 2;
export const BLOCKED = 3;
export const KIND_NAMES = ['running', 'runnable', 'sleeping', 'blocked'] as const;
export type KindName = (typeof KIND_NAMES)[number];

/** One thread's timeline, absolute perf timestamps in ns. */
export interface TaskTimeline {
  tid: number;
  /** thread group (process) id, -1 until an event shows it */
  pid: number;
  comm: string;
  starts: number[];
  ends: number[];
  kinds: number[];
  /** per segment: index into `stacks` of the switch-out stack that began it (sleeping, blocked, runnable), or -1 */
  stackIds: number[];
  /** per segment: prev_state letters that began it ('' for running) */
  states: string[];
  voluntary: number;
  involuntary: number;
  /** saw sched_process_exit, or a switch-out with X/Z */
  exited: boolean;
  /**
   * Running time whose switch-in perf did not record (ns). A switch-in is recorded in the
   * context of the task switched away from, and perf may miss the events of some contexts
   * (seen here: the idle task of one CPU in a VM, tasks of another namespace). The start of
   * such a stretch comes from the thread's first sched_stat_runtime after it (its runtime
   * since it was put on the CPU), else from the first event seen in its context.
   */
  inferredNs: number;
}

export interface ForkEvent {
  ts: number;
  parentTid: number;
  parentPid: number;
  childTid: number;
  childComm: string;
}

export interface SchedTrace {
  /** first and last event timestamps (ns): the recording's window */
  startNs: number;
  endNs: number;
  events: number;
  tasks: Map<number, TaskTimeline>;
  forks: ForkEvent[];
  /** stacks as frame lists, innermost first ("sym [k]" kernel, "sym (lib)" user) */
  stacks: string[][];
  /** events perf reported lost (ring buffer full): the numbers around them are guesses */
  lost: number;
  /** lines that were not understood (first few kept) */
  skipped: number;
  skippedSample: string[];
}

export interface ThreadSummary {
  pid: number;
  tid: number;
  name: string;
  runNs: number;
  /** runnable but not running: scheduler delay */
  delayNs: number;
  /** off CPU by choice or need: sleeping (S, I, T…) plus blocked (D) */
  waitNs: number;
  sleepNs: number;
  blockedNs: number;
  switches: number;
  voluntary: number;
  involuntary: number;
  /** shares of the recording's wall time (0…1) */
  runShare: number;
  delayShare: number;
  waitShare: number;
  /** first and last moment the thread was seen, relative to the recording's start (ns) */
  firstNs: number;
  lastNs: number;
  exited: boolean;
  /** part of runNs whose start perf did not record (see TaskTimeline.inferredNs) */
  inferredNs: number;
}

export interface WaitSummary {
  tid: number;
  pid: number;
  name: string;
  /** start relative to the recording's start (ns) */
  startNs: number;
  durNs: number;
  /** prev_state at the switch-out: S sleeping, D uninterruptible (I/O…), I idle, T stopped… */
  state: string;
  kind: 'sleeping' | 'blocked';
  /** scheduler delay right after it (woken → on CPU), ns; 0 when unknown */
  delayAfterNs: number;
  /** switch-out stack, innermost first */
  stack: string[];
  /** the wait was still going on when the recording ended */
  open: boolean;
}

export interface SchedSummary {
  wallNs: number;
  threads: ThreadSummary[];
  waits: WaitSummary[];
  totals: { runNs: number; delayNs: number; waitNs: number; switches: number; voluntary: number; involuntary: number; inferredNs: number };
}

export function stateName(state: string): string {
  const c = state[0];
  switch (c) {
    case 'S': return 'sleeping (interruptible)';
    case 'D': return 'uninterruptible (I/O, page fault, lock)';
    case 'I': return 'idle';
    case 'T': return 'stopped';
    case 't': return 'traced';
    case 'P': return 'parked';
    case 'R': return 'preempted';
    default: return state;
  }
}

/** Per-thread totals and the `top` longest waits of the threads in `tids`. */
export function summarize(trace: SchedTrace, tids: Iterable<number>, top = 10): SchedSummary {
  const wall = Math.max(0, trace.endNs - trace.startNs);
  const threads: ThreadSummary[] = [];
  const waits: WaitSummary[] = [];
  const totals = { runNs: 0, delayNs: 0, waitNs: 0, switches: 0, voluntary: 0, involuntary: 0, inferredNs: 0 };
  for (const tid of tids) {
    const t = trace.tasks.get(tid);
    if (!t) continue;
    let run = 0;
    let delay = 0;
    let sleep = 0;
    let blocked = 0;
    const n = t.kinds.length;
    for (let i = 0; i < n; i++) {
      const d = t.ends[i]! - t.starts[i]!;
      const k = t.kinds[i]!;
      if (k === RUNNING) run += d;
      else if (k === RUNNABLE) delay += d;
      else if (k === SLEEPING) sleep += d;
      else blocked += d;
      if (k === SLEEPING || k === BLOCKED) {
        const next = i + 1 < n && t.kinds[i + 1] === RUNNABLE && t.starts[i + 1] === t.ends[i] ? t.ends[i + 1]! - t.starts[i + 1]! : 0;
        waits.push({
          tid,
          pid: t.pid,
          name: t.comm,
          startNs: t.starts[i]! - trace.startNs,
          durNs: d,
          state: t.states[i] || '?',
          kind: k === BLOCKED ? 'blocked' : 'sleeping',
          delayAfterNs: next,
          stack: t.stackIds[i]! >= 0 ? trace.stacks[t.stackIds[i]!]! : [],
          open: t.ends[i] === trace.endNs,
        });
      }
    }
    const wait = sleep + blocked;
    const share = (x: number) => (wall > 0 ? x / wall : 0);
    threads.push({
      pid: t.pid,
      tid,
      name: t.comm,
      runNs: run,
      delayNs: delay,
      waitNs: wait,
      sleepNs: sleep,
      blockedNs: blocked,
      switches: t.voluntary + t.involuntary,
      voluntary: t.voluntary,
      involuntary: t.involuntary,
      runShare: share(run),
      delayShare: share(delay),
      waitShare: share(wait),
      firstNs: n ? t.starts[0]! - trace.startNs : 0,
      lastNs: n ? t.ends[n - 1]! - trace.startNs : 0,
      exited: t.exited,
      inferredNs: t.inferredNs,
    });
    totals.runNs += run;
    totals.delayNs += delay;
    totals.waitNs += wait;
    totals.switches += t.voluntary + t.involuntary;
    totals.voluntary += t.voluntary;
    totals.involuntary += t.involuntary;
    totals.inferredNs += t.inferredNs;
  }
  threads.sort((a, b) => b.runNs - a.runNs || a.tid - b.tid);
  waits.sort((a, b) => b.durNs - a.durNs || a.startNs - b.startNs);
  waits.length = Math.min(waits.length, Math.max(0, top));
  return { wallNs: wall, threads, waits, totals };
}
