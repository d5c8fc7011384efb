/**
 * Off-CPU time attributed to Python stacks (`pylens offcpu`), pure.
 *
 * Input: the eBPF capture's off-CPU records (one per thread, kernel stack and time bucket:
 * total blocked ns, how many switch-outs, the earliest switch-out and the latest switch-in,
 * CLOCK_MONOTONIC) and the pylens sampler's wall-clock profile of the same process (idle
 * threads included; sample times relative to the sampler's start, `originNs` on the
 * CLOCK_MONOTONIC axis).
 *
 * Attribution. A record of thread T over [start, end] gets the Python stack T had then: the
 * sampler's sample of T inside the interval nearest to its middle (a sample in which T was
 * idle preferred: T was off the CPU then, so that is the stack it waited in); else T's
 * nearest sample before or after the interval, within `boundNs`; else a `[no Python stack]`
 * marker.
 *
 * Wait class (`classifyWait`), from the kernel stack, the thread state at switch-out and
 * the GIL probe: gil, lock (futex), network (sockets, pipes, epoll), disk (block I/O, page
 * cache waits, filesystem journals, fsync), sleep (nanosleep, select), page fault,
 * preempted (runnable, switched out for another thread), other.
 *
 * Profile. root → Python frames → `[wait: CLASS]` marker → kernel frames (root first, the
 * scheduler's own frames at the leaf dropped), state 'off-cpu' ('gil' for GIL waits),
 * values: off-CPU nanoseconds and the number of switch-outs. With `withCpu` the sampler's
 * on-CPU samples come too (state 'on-cpu', value: the thread's measured CPU time shared by its
 * samples — see below; count 1), its idle
 * samples do not (the records are the waits), nor on-CPU samples inside a single preemption
 * of their thread that began before the sampler woke (runnable, not running: that time is a
 * wait already). States keep the two
 * apart: on-cpu vs off-cpu and gil.
 */
import { ProfileBuilder } from '../model/builder.ts';
import { SampleStateCode, frameInfo, type IndexIntoFrames, type IndexIntoStacks, type Profile, type ProfileMeta } from '../model/profile.ts';

/** One off-CPU record, as the capture gives it; `maxNs`, the longest single interval, when it keeps one. */
/** One off-CPU record as an eBPF or perf capture gives it (capture/ebpf/offcpu.ts). */
export interface OffCpuInterval {
  pid: number;
  tid: number;
  comm: string;
  /** kernel stack at switch-out, leaf first, bare symbol names (no +0x offsets) */
  kstack: string[];
  /** CLOCK_MONOTONIC ns (bpftrace `nsecs`): earliest switch-out and latest switch-in of the intervals merged into this record */
  startNs: number;
  endNs: number;
  /** total blocked ns and number of intervals merged into this record */
  blockedNs: number;
  count: number;
  /** the thread was inside CPython's take_gil when it switched out (GIL wait), when the probe could be placed */
  gilWait: boolean;
  /** prev_state at switch-out: 'S' sleeping, 'D' uninterruptible, 'R' preempted, … */
  state: string;
}

export type WaitRecord = OffCpuInterval & { maxNs?: number };

export type WaitClass = 'gil' | 'lock' | 'network' | 'disk' | 'sleep' | 'page-fault' | 'preempted' | 'other';
export const WAIT_CLASSES: readonly WaitClass[] = ['lock', 'network', 'disk', 'sleep', 'gil', 'page-fault', 'preempted', 'other'];
export const WAIT_LABELS: Record<WaitClass, string> = {
  lock: 'lock / futex',
  network: 'network / IPC',
  disk: 'disk I/O',
  sleep: 'sleep / timer',
  gil: 'GIL wait',
  'page-fault': 'page fault',
  preempted: 'preempted (runnable)',
  other: 'other',
};

const DISK = [
  /^io_schedule/,
  /^blk_/,
  /^bio_/,
  /^submit_bio/,
  /^folio_wait/,
  /^__folio_lock/,
  /^wait_on_page/,
  /^__lock_page/,
  /^__wait_on_buffer/,
  /^__bread/,
  /^wait_for_completion_io/,
  /^(ext4|ext3|ext2|xfs|jbd2|btrfs|f2fs|nfs)_/,
  /^__(ext4|xfs|jbd2|btrfs)_/,
  /^file_write_and_wait/,
  /^filemap_fdatawait/,
  /^filemap_write_and_wait/,
  /^__filemap_fdatawait/,
  /^vfs_fsync/,
  /^do_fsync$/,
  /^__x64_sys_(f|fdata)sync$/,
  /^__x64_sys_sync/,
  /^blkdev_/,
];
const NETWORK = [
  /^tcp_/,
  /^udp/,
  /^sk_wait_data$/,
  /^sk_stream_wait/,
  /^__skb_wait_for_more_packets$/,
  /^__skb_recv/,
  /^skb_recv/,
  /^unix_stream/,
  /^unix_dgram/,
  /^unix_wait/,
  /^inet_csk_/,
  /^inet_accept$/,
  /^inet_(stream_)?connect/,
  /^__inet_stream_connect$/,
  /^sock_/,
  /^__sys_(recv|send|accept|connect)/,
  /^__x64_sys_(recv|send|accept|connect)/,
  /^do_epoll_wait$/,
  /^ep_poll$/,
  /^__x64_sys_epoll/,
  /^pipe_(read|write|wait)/,
  /^wait_for_partner$/,
  /^netlink_/,
];
const LOCK = [/^futex_/, /^__futex_/, /^do_futex$/, /^__x64_sys_futex/, /^rwsem_down/, /^rt_mutex/];
const SLEEP = [/^hrtimer_nanosleep$/, /^do_nanosleep$/, /^common_nsleep/, /^__x64_sys_(clock_)?nanosleep/, /^msleep/, /^__x64_sys_pause$/, /^do_sigtimedwait$/];
/** select / poll: Python's own sleeps (time.sleep before 3.11 is select with no fd) and timeouts */
const POLL = [/^do_select$/, /^core_sys_select$/, /^do_sys_poll$/, /^do_poll/, /^__x64_sys_(p?select|p?poll)/];
const FAULT = [/^handle_mm_fault$/, /^__handle_mm_fault$/, /^do_page_fault$/, /^exc_page_fault$/, /^do_user_addr_fault$/, /^handle_page_fault$/];

const any = (stack: readonly string[], res: readonly RegExp[]) => stack.some((f) => res.some((r) => r.test(f)));

/** The reason a thread was off the CPU (see the top of this file). */
export function classifyWait(r: Pick<WaitRecord, 'kstack' | 'state' | 'gilWait'>): WaitClass {
  if (r.gilWait) return 'gil';
  const k = r.kstack;
  // runnable at switch-out: it was preempted, not waiting for anything but a CPU
  if (r.state === 'R' || r.state === 'R+') return 'preempted';
  if (any(k, DISK)) return 'disk';
  if (r.state === 'D' && any(k, [/^filemap_fault$/, /^__filemap_get_folio$/, /^filemap_read/])) return 'disk';
  if (any(k, LOCK)) return 'lock';
  if (any(k, NETWORK)) return 'network';
  if (any(k, SLEEP)) return 'sleep';
  if (any(k, FAULT)) return 'page-fault';
  if (any(k, POLL)) return 'sleep';
  return 'other';
}

/** The scheduler's own frames at the leaf of a switch-out stack: the same in every wait. */
const SCHED_LEAF = /^(__schedule|schedule|finish_task_switch.*|__traceiter_sched_switch|__bpf_trace.*|bpf_trace_run\d|context_switch|preempt_schedule.*)$/;

/** Kernel frames root first, without the scheduler frames at the leaf. */
export function waitFrames(kstack: readonly string[]): string[] {
  let i = 0;
  while (i < kstack.length - 1 && SCHED_LEAF.test(kstack[i]!)) i++;
  return kstack.slice(i).reverse();
}

/** A thread's samples in time order (the sampler's time axis, ns). */
interface ThreadSamples {
  t: Float64Array;
  i: Int32Array;
}

function samplesByTid(py: Profile): Map<number, ThreadSamples> {
  const time = py.samples.time;
  const out = new Map<number, ThreadSamples>();
  if (!time) return out;
  const lists = new Map<number, number[]>();
  for (let i = 0; i < py.samples.length; i++) {
    const tid = py.threads.tid[py.samples.thread[i]!]!;
    let l = lists.get(tid);
    if (!l) lists.set(tid, (l = []));
    l.push(i);
  }
  for (const [tid, l] of lists) {
    l.sort((a, b) => time[a]! - time[b]!);
    out.set(tid, { t: Float64Array.from(l, (i) => time[i]!), i: Int32Array.from(l) });
  }
  return out;
}

/** First index with t[k] >= x. */
function lowerBound(t: Float64Array, x: number): number {
  let lo = 0;
  let hi = t.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (t[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export type Match = 'inside' | 'near' | 'none';

/**
 * The sampler sample for an interval [s, e] of a thread (sampler time axis): inside it
 * nearest to the middle (idle samples first), else the nearest outside within `boundNs`.
 */
export function pickSample(py: Profile, ts: ThreadSamples | undefined, s: number, e: number, boundNs: number): { sample: number; match: Match } {
  if (!ts || ts.t.length === 0) return { sample: -1, match: 'none' };
  const a = lowerBound(ts.t, s);
  const b = lowerBound(ts.t, e + 1e-9); // first after e
  if (b > a) {
    const mid = (s + e) / 2;
    let best = -1;
    let bestD = Infinity;
    let bestIdle = false;
    for (let k = a; k < b; k++) {
      const idle = py.samples.state[ts.i[k]!] !== SampleStateCode['on-cpu'];
      const d = Math.abs(ts.t[k]! - mid);
      if ((idle && !bestIdle) || (idle === bestIdle && d < bestD)) {
        best = k;
        bestD = d;
        bestIdle = idle;
      }
    }
    return { sample: ts.i[best]!, match: 'inside' };
  }
  const before = a - 1;
  const dBefore = before >= 0 ? s - ts.t[before]! : Infinity;
  const dAfter = b < ts.t.length ? ts.t[b]! - e : Infinity;
  const d = Math.min(dBefore, dAfter);
  if (d > boundNs) return { sample: -1, match: 'none' };
  return { sample: ts.i[dBefore <= dAfter ? before : b]!, match: 'near' };
}

/** The thread's samples inside [s, e] in which it was not running. */
function idleInside(py: Profile, ts: ThreadSamples | undefined, s: number, e: number): number[] {
  if (!ts) return [];
  const out: number[] = [];
  for (let k = lowerBound(ts.t, s); k < ts.t.length && ts.t[k]! <= e; k++) {
    if (py.samples.state[ts.i[k]!] !== SampleStateCode['on-cpu']) out.push(ts.i[k]!);
  }
  return out;
}

export interface OffCpuOptions {
  /** CLOCK_MONOTONIC ns of the sampler's time 0 */
  originNs: number;
  /** how far from an interval a sample of its thread may be (default 50 ms) */
  boundNs?: number;
  /** with withCpu: a preemption drops the on-CPU samples inside it that come this long after it began (default 0.5 ms) */
  observerMarginNs?: number;
  /** add the sampler's on-CPU samples, each worth `periodNs` (the combined view) */
  withCpu?: { periodNs: number };
  meta?: Partial<ProfileMeta>;
}

export interface Totals {
  totalNs: number;
  count: number;
  longestNs: number;
  byClass: Partial<Record<WaitClass, { ns: number; count: number }>>;
}

export interface FunctionRow extends Totals {
  name: string;
  file: string | null;
  /** the line that waited most */
  line: number;
}

export interface ThreadRow extends Totals {
  pid: number;
  tid: number;
  name: string;
}

export interface OffCpuReport {
  totalNs: number;
  count: number;
  byClass: Partial<Record<WaitClass, { ns: number; count: number }>>;
  functions: FunctionRow[];
  threads: ThreadRow[];
  /** how records found their Python stack */
  matched: { inside: number; near: number; none: number };
  /** the records' blocked ns in each match kind */
  matchedNs: { inside: number; near: number; none: number };
  /** with withCpu: the on-CPU samples and the time they stand for; samples dropped as inside a preemption */
  cpu?: { samples: number; ns: number; droppedPreempted: number };
}

export const NO_PYTHON = '[no Python stack]';

const addTo = (t: Totals, cls: WaitClass, ns: number, count: number, longest: number) => {
  t.totalNs += ns;
  t.count += count;
  if (longest > t.longestNs) t.longestNs = longest;
  const c = (t.byClass[cls] ??= { ns: 0, count: 0 });
  c.ns += ns;
  c.count += count;
};

/** Attribute `records` to the sampler's stacks in `py` and build the off-CPU profile and its report. */
export function buildOffCpu(py: Profile, records: readonly WaitRecord[], o: OffCpuOptions): { profile: Profile; report: OffCpuReport } {
  const boundNs = o.boundNs ?? 50e6;
  const byTid = samplesByTid(py);
  const b = new ProfileBuilder({
    meta: {
      ...py.meta,
      lens: 'ebpf',
      mode: o.withCpu ? 'wall' : 'off-cpu',
      ...o.meta,
    },
    valueTypes: [
      { name: o.withCpu ? 'time' : 'off-CPU time', unit: 'nanoseconds' },
      { name: o.withCpu ? 'samples + switch-outs' : 'switch-outs', unit: 'samples' },
    ],
    defaultValue: 0,
  });
  // sampler stacks → builder stacks
  const pyFrame = new Int32Array(py.frames.length).fill(-1);
  const copyFrame = (f: IndexIntoFrames): number => {
    let m = pyFrame[f]!;
    if (m < 0) {
      const fi = frameInfo(py, f);
      m = pyFrame[f] = b.frame({ name: fi.name, qualname: fi.qualname, ...(fi.file !== null ? { file: fi.file } : {}), line: fi.line, kind: fi.kind, ...(fi.lib !== null ? { lib: fi.lib } : {}) });
    }
    return m;
  };
  const stackMemo = new Map<number, number>();
  const copyStack = (s: IndexIntoStacks): number => {
    if (s < 0) return -1;
    let r = stackMemo.get(s);
    if (r === undefined) stackMemo.set(s, (r = b.stack(copyStack(py.stacks.parent[s]!), copyFrame(py.stacks.frame[s]!))));
    return r;
  };
  const kernelFrame = new Map<string, number>();
  const kf = (name: string) => {
    let f = kernelFrame.get(name);
    if (f === undefined) kernelFrame.set(name, (f = b.frame({ name, kind: 'kernel', lib: '[kernel.kallsyms]' })));
    return f;
  };
  const markers = new Map<string, number>();
  const marker = (name: string) => {
    let f = markers.get(name);
    if (f === undefined) markers.set(name, (f = b.frame({ name, kind: 'marker' })));
    return f;
  };
  const threadIdx = new Map<string, number>();
  const threadOf = (pid: number, tid: number, fallbackName: string | undefined): number => {
    const key = `${pid}/${tid}`;
    let t = threadIdx.get(key);
    if (t === undefined) {
      const pt = py.threads.tid.findIndex((x, k) => x === tid && (py.threads.pid[k] === pid || py.threads.pid[k] === 0));
      const nm = pt >= 0 && py.threads.name[pt]! >= 0 ? py.strings[py.threads.name[pt]!] : fallbackName;
      threadIdx.set(key, (t = b.thread(pid, tid, nm)));
    }
    return t;
  };

  const report: OffCpuReport = {
    totalNs: 0,
    count: 0,
    byClass: {},
    functions: [],
    threads: [],
    matched: { inside: 0, near: 0, none: 0 },
    matchedNs: { inside: 0, near: 0, none: 0 },
  };
  const fnRows = new Map<string, FunctionRow & { lines: Map<number, number> }>();
  const thRows = new Map<string, ThreadRow>();
  const vals = [0, 0];
  const whole: Totals = { totalNs: 0, count: 0, longestNs: 0, byClass: {} };

  const time = py.samples.time;
  const leafMemo = new Map<number, { name: string; file: string | null; line: number }>();
  const leafOf = (sample: number) => {
    const stack = py.samples.stack[sample]!;
    let leaf = leafMemo.get(stack);
    if (!leaf) {
      leaf = { name: NO_PYTHON, file: null, line: 0 };
      for (let k = stack; k >= 0; k = py.stacks.parent[k]!) {
        const f = py.stacks.frame[k]!;
        if (py.frames.kind[f] === 'python') {
          const fi = frameInfo(py, f);
          leaf = { name: fi.qualname || fi.name, file: fi.file, line: fi.line };
          break;
        }
      }
      leafMemo.set(stack, leaf);
    }
    return leaf;
  };

  // records repeat a few kernel stacks: their class and frames are worked out once
  const byKstack = new Map<string, { cls: WaitClass; tail: number[] }>();

  for (const r of records) {
    if (!(r.blockedNs > 0)) continue;
    const s = r.startNs - o.originNs;
    const e = r.endNs - o.originNs;
    const ts = byTid.get(r.tid);
    const { sample, match } = pickSample(py, ts, s, e, boundNs);
    report.matched[match]++;
    report.matchedNs[match] += r.blockedNs;
    // A record that does not fill its span — merged waits over a bucket, or a capture
    // without times such as bcc's (one record per stack for the whole run) — says only that
    // the thread waited somewhere in it: where the sampler saw it idle. With several idle
    // samples inside, the record is shared equally among their stacks.
    const idle = r.blockedNs < 0.9 * (e - s) ? idleInside(py, ts, s, e) : [];
    const picks = idle.length >= 2 ? idle : [sample];
    const share = 1 / picks.length;
    const kkey = `${r.gilWait ? 1 : 0}${r.state}\0${r.kstack.join('\0')}`;
    let kinfo = byKstack.get(kkey);
    if (!kinfo) {
      const c = classifyWait(r);
      byKstack.set(kkey, (kinfo = { cls: c, tail: [marker(`[wait: ${c === 'gil' ? 'GIL' : c}]`), ...waitFrames(r.kstack).map(kf)] }));
    }
    const { cls, tail } = kinfo;
    const longest = r.maxNs ?? (r.count === 1 ? r.blockedNs : r.blockedNs / r.count);
    const th = threadOf(r.pid, r.tid, r.comm);
    addTo(whole, cls, r.blockedNs, r.count, longest);
    for (const pick of picks) {
      const ns = r.blockedNs * share;
      const count = r.count * share;
      let st = pick >= 0 ? copyStack(py.samples.stack[pick]!) : b.stack(-1, marker(NO_PYTHON));
      for (const f of tail) st = b.stack(st, f);
      vals[0] = ns;
      vals[1] = count;
      b.sample(st, vals, th, cls === 'gil' ? 'gil' : 'off-cpu', Math.max(0, picks.length > 1 ? time![pick]! : s));
      // the leaf Python frame: the function that waited
      const leaf = pick >= 0 ? leafOf(pick) : { name: NO_PYTHON, file: null, line: 0 };
      const fk = `${leaf.name}\0${leaf.file ?? ''}`;
      let fr = fnRows.get(fk);
      if (!fr) fnRows.set(fk, (fr = { name: leaf.name, file: leaf.file, line: leaf.line, totalNs: 0, count: 0, longestNs: 0, byClass: {}, lines: new Map() }));
      addTo(fr, cls, ns, count, longest);
      fr.lines.set(leaf.line, (fr.lines.get(leaf.line) ?? 0) + ns);
    }
    const tk = `${r.pid}/${r.tid}`;
    let tr = thRows.get(tk);
    if (!tr) {
      const nm = b.threads.name[th]!;
      thRows.set(tk, (tr = { pid: r.pid, tid: r.tid, name: nm >= 0 ? b.strings[nm]! : r.comm, totalNs: 0, count: 0, longestNs: 0, byClass: {} }));
    }
    addTo(tr, cls, r.blockedNs, r.count, longest);
  }

  if (o.withCpu && time) {
    // Every sample the sampler read as running (state R: on a CPU, or runnable and waiting
    // for one), but those inside a single preemption of their thread that began before the
    // sampler woke up: the thread was runnable, off the CPU, and that time is a wait already.
    // A preemption that began just before the sample is the sampler's own wake-up taking the
    // CPU from the thread it then reads (measured: of 67 samples of a lone CPU-bound thread
    // inside preemptions, 57 began 50–260 µs before the sample; the thread ran until then),
    // so its samples count. Merged preemptions say too little of when; their samples are
    // kept. Idle samples never count as CPU: the records are the waits.
    const margin = o.observerMarginNs ?? 0.5e6;
    const pre = new Map<number, Array<[number, number]>>();
    for (const r of records) {
      if (r.state !== 'R' || r.count !== 1 || r.gilWait) continue;
      let l = pre.get(r.tid);
      if (!l) pre.set(r.tid, (l = []));
      l.push([r.startNs - o.originNs + margin, r.endNs - o.originNs]);
    }
    for (const l of pre.values()) l.sort((x, y) => x[0] - y[0]);
    const keptByTid = new Map<number, number[]>();
    let dropped = 0;
    for (let i = 0; i < py.samples.length; i++) {
      if (py.samples.state[i] !== SampleStateCode['on-cpu']) continue;
      const tid = py.threads.tid[py.samples.thread[i]!]!;
      const l = pre.get(tid);
      if (l && inside(l, time[i]!)) {
        dropped++;
        continue;
      }
      let k = keptByTid.get(tid);
      if (!k) keptByTid.set(tid, (k = []));
      k.push(i);
    }
    // How much CPU a sample stands for. The sampler reads a runnable thread as running, so a
    // period per sample over-counts on a loaded machine. The waits are measured: a thread's
    // CPU time is the span it was watched (from its first on-CPU sample or wait to its last,
    // half a period around the samples) less every wait in it, shared by its on-CPU samples.
    // Without a measured wait there is nothing to subtract from: a period each.
    const half = o.withCpu.periodNs / 2;
    const waits = new Map<number, { lo: number; hi: number; ns: number }>();
    for (const r of records) {
      const w = waits.get(r.tid) ?? { lo: Infinity, hi: -Infinity, ns: 0 };
      w.lo = Math.min(w.lo, r.startNs - o.originNs);
      w.hi = Math.max(w.hi, r.endNs - o.originNs);
      w.ns += r.blockedNs;
      waits.set(r.tid, w);
    }
    let kept = 0;
    let cpuNs = 0;
    for (const [tid, idx] of keptByTid) {
      let each = o.withCpu.periodNs;
      const w = waits.get(tid);
      if (w) {
        const lo = Math.min(w.lo, time[idx[0]!]! - half);
        const hi = Math.max(w.hi, time[idx[idx.length - 1]!]! + half);
        const onCpu = hi - lo - w.ns;
        if (onCpu > 0) each = onCpu / idx.length;
      }
      for (const i of idx) {
        const th = threadOf(py.threads.pid[py.samples.thread[i]!]!, tid, undefined);
        vals[0] = each;
        vals[1] = 1;
        b.sample(copyStack(py.samples.stack[i]!), vals, th, 'on-cpu', time[i]!);
      }
      kept += idx.length;
      cpuNs += each * idx.length;
    }
    report.cpu = { samples: kept, ns: cpuNs, droppedPreempted: dropped };
  }

  report.totalNs = whole.totalNs;
  report.count = whole.count;
  report.byClass = whole.byClass;
  report.functions = [...fnRows.values()]
    .map(({ lines, ...f }) => ({ ...f, line: [...lines].sort((x, y) => y[1] - x[1])[0]![0] }))
    .sort((x, y) => y.totalNs - x.totalNs);
  report.threads = [...thRows.values()].sort((x, y) => y.totalNs - x.totalNs);
  b.meta.sampleCount = records.length + (report.cpu?.samples ?? 0);
  b.meta.extra = {
    ...(py.meta.extra ?? {}),
    offCpuRecords: records.length,
    offCpuNs: Math.round(whole.totalNs),
    offCpuMatchedInside: report.matched.inside,
    offCpuMatchedNear: report.matched.near,
    offCpuNoPythonStack: report.matched.none,
    offCpuBoundNs: boundNs,
    ...(report.cpu ? { cpuSamples: report.cpu.samples, cpuSamplesPreempted: report.cpu.droppedPreempted, cpuPeriodNs: o.withCpu!.periodNs } : {}),
  };
  return { profile: b.build(), report };
}

/** Whether t lies in one of the disjoint intervals, sorted by start (one thread's waits never overlap). */
function inside(l: Array<[number, number]>, t: number): boolean {
  let lo = 0;
  let hi = l.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (l[mid]![0] <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo > 0 && l[lo - 1]![1] >= t;
}

// ---------------------------------------------------------------------------------------
// text report

export function formatNs(ns: number): string {
  if (ns >= 1e9) return `${(ns / 1e9).toFixed(2)} s`;
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(1)} ms`;
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(0)} µs`;
  return `${Math.round(ns)} ns`;
}

function classSplit(t: Totals): string {
  return WAIT_CLASSES.filter((c) => (t.byClass[c]?.ns ?? 0) > 0)
    .sort((x, y) => t.byClass[y]!.ns - t.byClass[x]!.ns)
    .map((c) => `${c} ${Math.round((100 * t.byClass[c]!.ns) / t.totalNs)}%`)
    .join(', ');
}

/** The text report: totals by class, top functions, threads. */
export function formatOffCpuReport(r: OffCpuReport, o: { top?: number; cwd?: string } = {}): string {
  const top = o.top ?? 15;
  const lines: string[] = [];
  lines.push(`off-CPU time: ${formatNs(r.totalNs)} in ${r.count.toLocaleString('en-US')} switch-outs`);
  for (const c of WAIT_CLASSES) {
    const v = r.byClass[c];
    if (!v || v.ns <= 0) continue;
    lines.push(`  ${WAIT_LABELS[c].padEnd(22)} ${formatNs(v.ns).padStart(10)}  ${((100 * v.ns) / r.totalNs).toFixed(1).padStart(5)} %  ${v.count.toLocaleString('en-US').padStart(8)} ×`);
  }
  if (r.cpu) lines.push(`on-CPU time: ${formatNs(r.cpu.ns)} (each thread's watched span less its measured waits), spread over ${r.cpu.samples.toLocaleString('en-US')} samples`);
  lines.push('', 'Python functions by off-CPU time (the Python frame that waited):');
  lines.push(`  ${'off-CPU'.padStart(10)} ${'count'.padStart(8)} ${'longest'.padStart(10)}  function — wait classes`);
  for (const f of r.functions.slice(0, top)) {
    const where = f.file ? ` (${f.file}:${f.line})` : '';
    lines.push(`  ${formatNs(f.totalNs).padStart(10)} ${f.count.toLocaleString('en-US').padStart(8)} ${formatNs(f.longestNs).padStart(10)}  ${f.name}${where} — ${classSplit(f)}`);
  }
  if (r.functions.length > top) lines.push(`  … ${r.functions.length - top} more`);
  lines.push('', 'Threads:');
  for (const t of r.threads.slice(0, top)) {
    lines.push(`  ${formatNs(t.totalNs).padStart(10)} ${t.count.toLocaleString('en-US').padStart(8)} ${formatNs(t.longestNs).padStart(10)}  ${t.name} (tid ${t.tid}) — ${classSplit(t)}`);
  }
  if (r.threads.length > top) lines.push(`  … ${r.threads.length - top} more`);
  const all = r.matched.inside + r.matched.near + r.matched.none;
  if (all > 0) {
    lines.push(
      '',
      'longest: the longest single wait; where the capture merged waits (one thread, one kernel stack, one 10 ms bucket) without keeping their maximum, the longest such mean',
      `Python stacks: ${r.matched.inside} of ${all} records from a sample inside the wait, ${r.matched.near} from a sample near it, ${r.matched.none} without (${formatNs(r.matchedNs.none)} under ${NO_PYTHON})`,
    );
  }
  return lines.join('\n') + '\n';
}
