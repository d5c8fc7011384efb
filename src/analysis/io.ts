/**
 * Block-layer I/O latency, for `pylens io`: the queries over block events (the capture side,
 * capture/perf/io.ts, parses the kernel's `block:*` tracepoints into `BlockEvent`s).
 *
 * - `BlockLatency`: pairs each `block_rq_issue` with its `block_rq_complete` (same device and
 *   start sector) and keeps the statistics: log2 histograms, percentiles, per device and per
 *   op, the slowest requests and who issued them. Pure: fed with events, tested on text.
 *
 * How the block layer reports a request (include/trace/events/block.h, block/blk-flush.c):
 * `block_rq_insert` when it enters the I/O scheduler or dispatch list (not always: a request
 * may be issued directly), `block_rq_issue` when the driver gets it, `block_rq_complete`
 * when (part of) it is done — the completion names the start sector and the sectors done
 * now, so a partial completion moves the request's start on. `block_rq_requeue` sends an
 * issued request back to the queue; it is issued again later. Flushes carry no sector: the
 * issue says 0, the completion says 0 or (u64)-1, so they are paired per device, oldest
 * first. A write with PREFLUSH/FUA on a device without FUA is run by the flush state machine
 * as data write + flush; the original request then completes once more with "0 + 0", which
 * is counted, not paired.
 */

export type BlockEventKind = 'insert' | 'issue' | 'complete' | 'requeue' | 'merge' | 'error';

export interface BlockEvent {
  kind: BlockEventKind;
  /** The task the event fired in (perf's comm). */
  comm: string;
  /** Process id (tgid) when the text has it (`perf script -F pid,tid,…`). */
  pid: number | undefined;
  tid: number;
  cpu: number | undefined;
  /** Timestamp in ns (perf's clock; with --ns the full precision, else µs). */
  timeNs: number;
  major: number;
  minor: number;
  rwbs: string;
  /** Request size in bytes (insert/issue/merge only). */
  bytes: number | undefined;
  /** Start sector as text: it may be (u64)-1, beyond a double's exact range. */
  sector: string;
  nrSector: number;
  /** Completion status (complete/error only), 0 = ok, else -errno. */
  error: number | undefined;
}

export type IoOp = 'read' | 'write' | 'flush' | 'discard' | 'other';
export const IO_OPS: readonly IoOp[] = ['read', 'write', 'flush', 'discard', 'other'];

/**
 * The operation from the rwbs field (block/blk-core.c blk_fill_rwbs): an optional leading
 * F (PREFLUSH), then the op — W write, R read, D discard (DE secure erase), F flush,
 * N anything else — then flags (F FUA, A readahead, S sync, M metadata).
 */
export function opOf(rwbs: string): IoOp {
  let s = rwbs;
  if (s.length > 1 && s[0] === 'F' && 'WRDFN'.includes(s[1]!)) s = s.slice(1);
  switch (s[0]) {
    case 'R':
      return 'read';
    case 'W':
      return 'write';
    case 'F':
      return 'flush';
    case 'D':
      return 'discard';
    default:
      return 'other';
  }
}

// ---------------------------------------------------------------------------------------
// Pairing and statistics

/** A completed request. */
export interface IoRequest {
  /** "MAJ:MIN" */
  dev: string;
  op: IoOp;
  rwbs: string;
  bytes: number;
  /** Start sector (512-byte units); null for flushes. */
  sector: number | null;
  issueNs: number;
  completeNs: number;
  latencyNs: number;
  /** Insert → issue, when the insert was seen. */
  queueNs: number | undefined;
  /** The task that issued it (often a kworker for writeback). */
  comm: string;
  pid: number | undefined;
  tid: number;
  /** The task that queued it (block_rq_insert), when seen and different from the issuer. */
  queuedBy: { comm: string; pid: number | undefined; tid: number } | undefined;
  error: number;
}

interface Pending {
  ev: BlockEvent;
  /** sectors still to complete */
  remaining: number;
  insert: BlockEvent | undefined;
}

/** log2 buckets over whole µs: [0,1], [2,3], [4,7], [8,15], … (as biolatency prints them). */
export function bucketOf(latencyNs: number): number {
  const us = Math.floor(latencyNs / 1000);
  return us < 2 ? 0 : Math.floor(Math.log2(us));
}
export function bucketRange(i: number): { fromUs: number; toUs: number } {
  return i === 0 ? { fromUs: 0, toUs: 1 } : { fromUs: 2 ** i, toUs: 2 ** (i + 1) - 1 };
}

class Group {
  count = 0;
  bytes = 0;
  sumNs = 0;
  latencies: number[] = [];
  buckets: number[] = [];
  queue: number[] = [];
  add(r: IoRequest): void {
    this.count++;
    this.bytes += r.bytes;
    this.sumNs += r.latencyNs;
    this.latencies.push(r.latencyNs);
    const b = bucketOf(r.latencyNs);
    while (this.buckets.length <= b) this.buckets.push(0);
    this.buckets[b]!++;
    if (r.queueNs !== undefined) this.queue.push(r.queueNs);
  }
}

export interface HistogramBucket {
  fromUs: number;
  toUs: number;
  count: number;
}

export interface LatencyStats {
  count: number;
  bytes: number;
  meanUs: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  maxUs: number;
  /** log2 buckets from the first to the last non-empty one */
  histogram: HistogramBucket[];
  /** insert → issue time of the requests whose insert was seen */
  queue: { count: number; p50Us: number; p99Us: number; maxUs: number } | undefined;
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

const us = (ns: number) => Math.round(ns / 10) / 100; // µs with 2 decimals

function statsOf(g: Group): LatencyStats {
  const sorted = Float64Array.from(g.latencies).sort();
  const first = g.buckets.findIndex((c) => c > 0);
  const histogram: HistogramBucket[] = [];
  if (first >= 0) for (let i = first; i < g.buckets.length; i++) histogram.push({ ...bucketRange(i), count: g.buckets[i]! });
  const q = Float64Array.from(g.queue).sort();
  return {
    count: g.count,
    bytes: g.bytes,
    meanUs: g.count ? us(g.sumNs / g.count) : 0,
    p50Us: us(percentile(sorted, 50)),
    p90Us: us(percentile(sorted, 90)),
    p99Us: us(percentile(sorted, 99)),
    maxUs: us(sorted.length ? sorted[sorted.length - 1]! : 0),
    histogram,
    queue: q.length ? { count: q.length, p50Us: us(percentile(q, 50)), p99Us: us(percentile(q, 99)), maxUs: us(q[q.length - 1]!) } : undefined,
  };
}

export interface IoCounts {
  /** events read, by kind */
  events: Record<BlockEventKind, number>;
  /** completions whose issue was not seen (issued before recording began) */
  completedWithoutIssue: number;
  /** issued requests not completed when recording ended */
  inFlightAtEnd: number;
  /** … of which issued more than a second before the last event: likely lost completions */
  inFlightOverOneSecond: number;
  /** requests sent back to the queue (block_rq_requeue) */
  requeued: number;
  /** a second issue for a request still in flight (requeue not recorded) */
  reissued: number;
  /** completions done in parts (partial blk_update_request) */
  partialCompletions: number;
  /** zero-length completions ending a flush sequence (not paired) */
  flushSequenceEnds: number;
  /** requests completed with an error status */
  errors: number;
  /** requests left out by the -p filter */
  filteredOut: number;
  /** flushes dropped unpaired because more were issued than the device can have in flight */
  lostFlushCompletions: number;
}

export interface ProcessRow {
  comm: string;
  pid: number | undefined;
  kernelThread: boolean;
  count: number;
  bytes: number;
  meanUs: number;
  maxUs: number;
}

export interface IoReport {
  /** first to last event, s */
  spanS: number;
  filterPid: number | undefined;
  overall: LatencyStats;
  devices: Array<{ dev: string; name: string } & LatencyStats & { ops: Array<{ op: IoOp } & LatencyStats> }>;
  ops: Array<{ op: IoOp } & LatencyStats>;
  slowest: Array<{
    latencyUs: number;
    dev: string;
    device: string;
    op: IoOp;
    rwbs: string;
    bytes: number;
    sector: number | null;
    comm: string;
    pid: number | undefined;
    tid: number;
    queuedBy: { comm: string; pid: number | undefined; tid: number } | undefined;
    queueUs: number | undefined;
    /** issue time, s since the first event */
    atS: number;
  }>;
  processes: ProcessRow[];
  counts: IoCounts;
  notes: string[];
  warnings: string[];
  /** many issues without a completion: the trace lost events */
  completionsLost: boolean;
}

/** Kernel threads that issue I/O on others' behalf (writeback, journaling, swap, md/dm, …). */
export function isKernelThread(comm: string, pid: number | undefined): boolean {
  return pid === 0 || /^(kworker|kblockd|jbd2|flush-|writeback|kswapd|kcompactd|ksoftirqd|swapper|xfsaild|xfs-|btrfs|md\d|md_|dm[-_]|kcryptd|loop\d|nfsd|kthreadd|khugepaged|irq\/)/.test(comm);
}

export interface BlockLatencyOptions {
  /** keep only requests issued (or queued) by this process and its threads */
  pid?: number;
  /** how many slowest requests to keep */
  top?: number;
  /**
   * How many flushes a device can have in flight: one per hardware queue (block/blk-flush.c
   * runs one flush at a time per flush queue). Bounds the damage of a lost flush completion,
   * which would otherwise shift every later flush pairing. Default: unbounded (the capture
   * side passes the device's hardware queues from /sys).
   */
  flushSlots?: (dev: string) => number;
}

/** Pairs block events into requests and keeps the statistics. Feed events in time order. */
export class BlockLatency {
  private readonly pending = new Map<string, Pending[]>();
  private readonly inserts = new Map<string, BlockEvent>();
  private readonly overall = new Group();
  private readonly byDev = new Map<string, Group>();
  private readonly byDevOp = new Map<string, Group>();
  private readonly byOp = new Map<IoOp, Group>();
  private readonly procs = new Map<string, { comm: string; pid: number | undefined; count: number; bytes: number; sumNs: number; maxNs: number }>();
  private slow: IoRequest[] = [];
  private readonly top: number;
  private readonly pid: number | undefined;
  private firstNs: number | undefined;
  private lastNs = 0;
  /** write requests issued by kernel threads, and by anyone */
  private kthreadWrites = 0;
  private writes = 0;
  readonly counts: IoCounts = {
    events: { insert: 0, issue: 0, complete: 0, requeue: 0, merge: 0, error: 0 },
    completedWithoutIssue: 0,
    inFlightAtEnd: 0,
    inFlightOverOneSecond: 0,
    requeued: 0,
    reissued: 0,
    partialCompletions: 0,
    flushSequenceEnds: 0,
    errors: 0,
    filteredOut: 0,
    lostFlushCompletions: 0,
  };
  private readonly flushSlots: (dev: string) => number;
  private readonly slots = new Map<string, number>();

  constructor(opts: BlockLatencyOptions = {}) {
    this.top = opts.top ?? 10;
    this.pid = opts.pid;
    this.flushSlots = opts.flushSlots ?? (() => Infinity);
  }

  add(ev: BlockEvent): void {
    this.counts.events[ev.kind]++;
    this.firstNs ??= ev.timeNs;
    if (ev.timeNs > this.lastNs) this.lastNs = ev.timeNs;
    const dev = `${ev.major}:${ev.minor}`;
    const flush = isFlush(ev);
    const key = flush ? `${dev} flush` : `${dev} ${ev.sector}`;
    switch (ev.kind) {
      case 'insert':
        if (!flush) this.inserts.set(key, ev);
        return;
      case 'merge':
        // this request was merged into another one and will not be issued itself
        this.inserts.delete(key);
        return;
      case 'issue': {
        const q = this.pending.get(key);
        const insert = flush ? undefined : this.inserts.get(key);
        if (insert) this.inserts.delete(key);
        const p: Pending = { ev, remaining: ev.nrSector, insert };
        if (q && !flush) {
          // the same request issued again (its requeue was not recorded): keep the latest
          this.counts.reissued += q.length;
          this.pending.set(key, [p]);
        } else if (q) {
          let max = this.slots.get(dev);
          if (max === undefined) this.slots.set(dev, (max = Math.max(1, this.flushSlots(dev))));
          // more flushes than can be in flight: the oldest one's completion was lost
          while (q.length >= max) {
            q.shift();
            this.counts.lostFlushCompletions++;
          }
          q.push(p);
        } else this.pending.set(key, [p]);
        return;
      }
      case 'requeue': {
        const q = this.pending.get(key);
        if (q?.length) {
          const p = q.shift()!;
          if (!q.length) this.pending.delete(key);
          this.counts.requeued++;
          // it waits in the queue again: its queue time starts from the original insert
          if (!flush) this.inserts.set(key, p.insert ?? { ...p.ev, kind: 'insert' });
        }
        return;
      }
      case 'error':
        // block_rq_error precedes the completion of a failed request; the completion is paired
        return;
      case 'complete': {
        if (ev.nrSector === 0 && !flush) {
          this.counts.flushSequenceEnds++;
          return;
        }
        const q = this.pending.get(key);
        if (!q?.length) {
          this.counts.completedWithoutIssue++;
          return;
        }
        const p = q[0]!;
        if (!flush && ev.nrSector < p.remaining) {
          // partial completion: the rest of the request now starts further on
          this.counts.partialCompletions++;
          q.shift();
          if (!q.length) this.pending.delete(key);
          p.remaining -= ev.nrSector;
          const next = `${dev} ${BigInt(ev.sector) + BigInt(ev.nrSector)}`;
          const nq = this.pending.get(next);
          if (nq) nq.push(p);
          else this.pending.set(next, [p]);
          return;
        }
        q.shift();
        if (!q.length) this.pending.delete(key);
        this.finishRequest(p, ev, dev);
        return;
      }
    }
  }

  private finishRequest(p: Pending, done: BlockEvent, dev: string): void {
    const is = p.ev;
    const ins = p.insert;
    const queuedBy = ins && (ins.tid !== is.tid || ins.pid !== is.pid) ? { comm: ins.comm, pid: ins.pid, tid: ins.tid } : undefined;
    const op = opOf(is.rwbs);
    if (this.pid !== undefined && is.pid !== this.pid && queuedBy?.pid !== this.pid) {
      this.counts.filteredOut++;
      return;
    }
    const r: IoRequest = {
      dev,
      op,
      rwbs: is.rwbs,
      bytes: is.bytes ?? is.nrSector * 512,
      sector: isFlush(is) ? null : Number(is.sector),
      issueNs: is.timeNs,
      completeNs: done.timeNs,
      latencyNs: Math.max(0, done.timeNs - is.timeNs),
      queueNs: ins ? Math.max(0, is.timeNs - ins.timeNs) : undefined,
      comm: is.comm,
      pid: is.pid,
      tid: is.tid,
      queuedBy,
      error: done.error ?? 0,
    };
    if (r.error !== 0) this.counts.errors++;
    this.overall.add(r);
    group(this.byDev, dev).add(r);
    group(this.byDevOp, `${dev} ${op}`).add(r);
    group(this.byOp, op).add(r);
    // attribute to the process that queued it when a kernel thread only issued it
    const who = queuedBy && isKernelThread(is.comm, is.pid) && !isKernelThread(queuedBy.comm, queuedBy.pid) ? queuedBy : { comm: is.comm, pid: is.pid, tid: is.tid };
    const pk = who.pid !== undefined ? `${who.pid}` : `${who.comm} ${who.tid}`;
    let row = this.procs.get(pk);
    if (!row) this.procs.set(pk, (row = { comm: who.comm, pid: who.pid ?? who.tid, count: 0, bytes: 0, sumNs: 0, maxNs: 0 }));
    row.count++;
    row.bytes += r.bytes;
    row.sumNs += r.latencyNs;
    if (r.latencyNs > row.maxNs) row.maxNs = r.latencyNs;
    if (op === 'write') {
      this.writes++;
      if (isKernelThread(who.comm, who.pid)) this.kthreadWrites++;
    }
    if (this.top > 0 && (this.slow.length < this.top || r.latencyNs > this.slow[this.slow.length - 1]!.latencyNs)) {
      this.slow.push(r);
      this.slow.sort((a, b) => b.latencyNs - a.latencyNs);
      if (this.slow.length > this.top) this.slow.length = this.top;
    }
  }

  /** The report; `deviceName` maps "MAJ:MIN" to a name (default: from /sys). */
  report(deviceName: (dev: string) => string = (dev) => dev): IoReport {
    const c = this.counts;
    c.inFlightAtEnd = 0;
    c.inFlightOverOneSecond = 0;
    for (const q of this.pending.values()) {
      for (const p of q) {
        if (this.pid !== undefined && p.ev.pid !== this.pid && p.insert?.pid !== this.pid) continue;
        c.inFlightAtEnd++;
        if (this.lastNs - p.ev.timeNs > 1e9) c.inFlightOverOneSecond++;
      }
    }
    const names = new Map<string, string>();
    const nameOf = (dev: string) => {
      let n = names.get(dev);
      if (n === undefined) names.set(dev, (n = deviceName(dev)));
      return n;
    };
    const devices = [...this.byDev.entries()]
      .sort((a, b) => b[1].count - a[1].count)
      .map(([dev, g]) => ({
        dev,
        name: nameOf(dev),
        ...statsOf(g),
        ops: IO_OPS.filter((op) => this.byDevOp.has(`${dev} ${op}`)).map((op) => ({ op, ...statsOf(this.byDevOp.get(`${dev} ${op}`)!) })),
      }));
    const ops = IO_OPS.filter((op) => this.byOp.has(op)).map((op) => ({ op, ...statsOf(this.byOp.get(op)!) }));
    const t0 = this.firstNs ?? 0;
    const slowest = this.slow.map((r) => ({
      latencyUs: us(r.latencyNs),
      dev: r.dev,
      device: nameOf(r.dev),
      op: r.op,
      rwbs: r.rwbs,
      bytes: r.bytes,
      sector: r.sector,
      comm: r.comm,
      pid: r.pid,
      tid: r.tid,
      queuedBy: r.queuedBy,
      queueUs: r.queueNs !== undefined ? us(r.queueNs) : undefined,
      atS: Math.round((r.issueNs - t0) / 1e6) / 1e3,
    }));
    const processes: ProcessRow[] = [...this.procs.values()]
      .sort((a, b) => b.count - a.count || b.sumNs - a.sumNs)
      .map((p) => ({ comm: p.comm, pid: p.pid, kernelThread: isKernelThread(p.comm, p.pid), count: p.count, bytes: p.bytes, meanUs: us(p.sumNs / p.count), maxUs: us(p.maxNs) }));
    const notes: string[] = [];
    const warnings: string[] = [];
    if (this.kthreadWrites > 0) {
      notes.push(
        `${this.kthreadWrites} of ${this.writes} write request${this.writes === 1 ? ' was' : 's were'} issued by kernel threads (kworker, jbd2, …): buffered writes reach the disk through the kernel's writeback, not from the process that called write(); only direct (O_DIRECT) and synchronous I/O is issued in the application's own context`,
      );
    }
    if (this.pid !== undefined) {
      notes.push(`only requests issued or queued by process ${this.pid} (${c.filteredOut} other request${c.filteredOut === 1 ? '' : 's'} left out); writeback of its buffered writes is issued by kernel threads and is not counted`);
    }
    if (c.completedWithoutIssue > 0) notes.push(`${c.completedWithoutIssue} completion${c.completedWithoutIssue === 1 ? '' : 's'} of requests issued before recording began (not counted)`);
    if (c.inFlightAtEnd > c.inFlightOverOneSecond) notes.push(`${c.inFlightAtEnd - c.inFlightOverOneSecond} request${c.inFlightAtEnd - c.inFlightOverOneSecond === 1 ? '' : 's'} still in flight when recording stopped (not counted)`);
    if (c.requeued > 0) notes.push(`${c.requeued} request${c.requeued === 1 ? ' was' : 's were'} requeued and issued again; latency counts from the last issue`);
    if (c.reissued > 0) notes.push(`${c.reissued} request${c.reissued === 1 ? ' was' : 's were'} issued again while still in flight (requeue or completion not recorded); latency counts from the last issue`);
    if (c.errors > 0) warnings.push(`${c.errors} request${c.errors === 1 ? '' : 's'} completed with an error`);
    // a healthy trace completes nearly everything it issues: what stays in flight at the end
    // is at most the devices' queue depth, and a second issue of a request still in flight
    // needs a requeue. Many of either means completions were not recorded.
    const issued = this.overall.count + c.inFlightAtEnd + c.reissued + c.lostFlushCompletions;
    const unpaired = c.inFlightAtEnd + c.reissued + c.lostFlushCompletions;
    const completionsLost = unpaired > 5 && (unpaired > 0.2 * issued || c.inFlightOverOneSecond > 0.05 * issued);
    if (completionsLost) {
      warnings.push(`${unpaired} of ${issued} issued requests have no completion in the trace: completions were lost, the latencies cover only the ${this.overall.count} that were paired`);
    }
    return {
      spanS: this.firstNs === undefined ? 0 : (this.lastNs - this.firstNs) / 1e9,
      filterPid: this.pid,
      overall: statsOf(this.overall),
      devices,
      ops,
      slowest,
      processes,
      counts: { ...c, events: { ...c.events } },
      notes,
      warnings,
      completionsLost,
    };
  }
}

function isFlush(ev: BlockEvent): boolean {
  return ev.nrSector === 0 && opOf(ev.rwbs) === 'flush';
}

function group<K>(m: Map<K, Group>, k: K): Group {
  let g = m.get(k);
  if (!g) m.set(k, (g = new Group()));
  return g;
}
