/**
 * Block-layer I/O latency from the kernel's block tracepoints, for `pylens io`.
 *
 * - `parseBlockLine`: one line of `perf script` text for a `block:*` tracepoint → an event.
 * - The pairing and the statistics are analysis/io.ts (`BlockLatency`); here the device's
 *   hardware queues and name from /sys (`sysHardwareQueues`, `sysDeviceName`).
 * - `recordBlockIo` / `scriptBlockIo`: the perf side (record system-wide, then `perf script`
 *   streamed through the parser).
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
import { closeSync, constants, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { BlockLatency, type BlockEvent, type BlockEventKind, type BlockLatencyOptions } from '../../analysis/io.ts';
import { explainPerfStderr, PerfError, processCpuNs, spawnPerf, startPerfRecord, type PerfRun } from './tool.ts';

// ---------------------------------------------------------------------------------------
// Parsing


const KINDS: Record<string, BlockEventKind> = {
  block_rq_insert: 'insert',
  block_rq_issue: 'issue',
  block_rq_complete: 'complete',
  block_rq_requeue: 'requeue',
  block_rq_merge: 'merge',
  block_rq_error: 'error',
};

// "  comm  pid/tid [cpu] 123.456789012:  [period]  block:block_rq_issue: payload"
// (pid/ is there with -F pid,tid; the comm may contain spaces)
const PERF_LINE = /^\s*(.*?)\s+(?:(-?\d+)\/)?(-?\d+)\s+(?:\[(\d+)\]\s+)?(\d+)\.(\d+):\s+(?:\d+\s+)?block:(\w+):\s?(.*)$/;
// "254,0 WS 4096 () 76312912 + 8 be,0,4 [dd]": MAJ,MIN RWBS [BYTES] (CMD) SECTOR + NR [IOPRIO] [COMM or ERROR]
// (the ioprio triple is printed by kernels from 6.10 on, as "be,0,4" or, by older perf, "0x2,0,4")
const PAYLOAD = /^(\d+),(\d+)\s+(\S+)\s+(?:(\d+)\s+)?\(([^)]*)\)\s+(\d+)\s+\+\s+(\d+)(?:\s+[\w-]+,\d+,\d+)?\s+\[(.*)\]\s*$/;

// tracefs `trace_pipe`: "  comm-tid  (  tgid) [cpu] flags 123.456789: block_rq_issue: payload"
// (the tgid column with the record-tgid option; flags with irq-info)
const FTRACE_LINE = /^\s*(.*)-(\d+)\s+(?:\(\s*(\d+|-+)\)\s+)?\[(\d+)\]\s+(?:\S+\s+)?(\d+)\.(\d+):\s+(block_rq_\w+):\s?(.*)$/;

/**
 * One line of `perf script` output (or of tracefs's `trace_pipe`) for a block tracepoint,
 * or undefined for anything else.
 */
export function parseBlockLine(line: string): BlockEvent | undefined {
  let comm: string, pid: number | undefined, tid: number, cpu: number | undefined, sec: string, frac: string, name: string, payload: string;
  if (line.includes('block:block_rq_')) {
    const m = PERF_LINE.exec(line);
    if (!m) return undefined;
    [comm, pid, tid, cpu, sec, frac, name, payload] = [m[1]!, m[2] !== undefined ? Number(m[2]) : undefined, Number(m[3]), m[4] !== undefined ? Number(m[4]) : undefined, m[5]!, m[6]!, m[7]!, m[8]!];
  } else if (line.includes(': block_rq_')) {
    const m = FTRACE_LINE.exec(line);
    if (!m) return undefined;
    [comm, pid, tid, cpu, sec, frac, name, payload] = [m[1]!, m[3] !== undefined && /^\d+$/.test(m[3]) ? Number(m[3]) : undefined, Number(m[2]), Number(m[4]), m[5]!, m[6]!, m[7]!, m[8]!];
  } else return undefined;
  const kind = KINDS[name];
  if (!kind) return undefined;
  const p = PAYLOAD.exec(payload);
  if (!p) return undefined;
  const timeNs = Number(sec) * 1e9 + Number(frac.length >= 9 ? frac.slice(0, 9) : frac.padEnd(9, '0'));
  const last = p[8]!;
  const hasStatus = kind === 'complete' || kind === 'error';
  return {
    kind,
    comm: comm.trim(),
    pid,
    tid,
    cpu,
    timeNs,
    major: Number(p[1]),
    minor: Number(p[2]),
    rwbs: p[3]!,
    bytes: p[4] !== undefined ? Number(p[4]) : undefined,
    sector: p[6]!,
    nrSector: Number(p[7]),
    error: hasStatus && /^-?\d+$/.test(last) ? Number(last) : undefined,
  };
}

/** Hardware queues of a blk-mq device (/sys/dev/block/MAJ:MIN/mq/*); unbounded when unknown. */
export function sysHardwareQueues(dev: string): number {
  try {
    const n = readdirSync(`/sys/dev/block/${dev}/mq`).length;
    return n > 0 ? n : Infinity;
  } catch {
    return Infinity;
  }
}

/** DEVNAME from /sys/dev/block/MAJ:MIN/uevent, else "MAJ:MIN". */
export function sysDeviceName(dev: string): string {
  try {
    return /^DEVNAME=(.+)$/m.exec(readFileSync(`/sys/dev/block/${dev}/uevent`, 'utf8'))?.[1]?.trim() || dev;
  } catch {
    return dev;
  }
}

/** Parse a whole `perf script` text (fixtures, tests). */
export function analyzeBlockText(text: string, opts: BlockLatencyOptions = {}): BlockLatency {
  const b = new BlockLatency(opts);
  for (const line of text.split('\n')) {
    const ev = parseBlockLine(line);
    if (ev) b.add(ev);
  }
  return b;
}

// ---------------------------------------------------------------------------------------
// Recording

export const BLOCK_EVENTS = ['block:block_rq_insert', 'block:block_rq_issue', 'block:block_rq_complete', 'block:block_rq_requeue'];

export interface BlockRecording {
  perf: PerfRun;
  dataFile: string;
  dir: string;
  /** stop recording (SIGINT to perf) and wait for perf to write its file; perf's CPU time since events were enabled */
  stop(): Promise<{ perfCpuNs: number | undefined }>;
  /** resolves when perf ended on its own or was stopped */
  ended: Promise<{ code: number; stderr: string }>;
  cleanup(): void;
}

/** A private temp dir, in memory when /dev/shm is there (so perf's file adds no disk I/O). */
function scratchDir(): string {
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  try {
    return mkdtempSync(join(base, 'pylens-io-'));
  } catch {
    return mkdtempSync(join(tmpdir(), 'pylens-io-'));
  }
}

/**
 * Start `perf record -a` on the block tracepoints and resolve once events are enabled
 * (perf starts disabled, `-D -1`, and is enabled through its control fifo, which acks):
 * what happens after this resolves is recorded.
 */
export async function recordBlockIo(perf: string, opts: { readyTimeoutMs?: number } = {}): Promise<BlockRecording> {
  const dir = scratchDir();
  const dataFile = join(dir, 'perf.data');
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  const fail = (code: number, stderr: string) =>
    explainPerfStderr(stderr, 'perf record') ?? new PerfError(`perf record failed (exit ${code}): ${stderr.trim().split('\n').slice(-3).join(' | ') || 'no message'}`, 'run `perf record -a -e block:block_rq_issue -- sleep 1` by hand to see the whole message');
  let run: PerfRun;
  try {
    run = await startPerfRecord(perf, ['record', '-q', '-a', '-e', BLOCK_EVENTS.join(','), '-o', dataFile], { hint: 'perf record -a -e block:block_rq_issue -- sleep 1', ...(opts.readyTimeoutMs !== undefined ? { readyTimeoutMs: opts.readyTimeoutMs } : {}) });
  } catch (e) {
    cleanup();
    throw e;
  }
  const cpuAtStart = processCpuNs(run.pid);
  let stopped = false;
  return {
    perf: run,
    dataFile,
    dir,
    ended: run.done,
    async stop() {
      const now = processCpuNs(run.pid);
      // perf's own CPU while recording (its start-up, which scans /proc, is left out)
      const perfCpuNs = now !== undefined && cpuAtStart !== undefined ? now - cpuAtStart : undefined;
      if (!stopped) {
        stopped = true;
        try {
          run.child.kill('SIGINT');
        } catch {
          /* gone already */
        }
      }
      const timer = setTimeout(() => run.child.kill('SIGKILL'), 30_000);
      const { code, stderr } = await run.done;
      clearTimeout(timer);
      // perf record exits 0, or with SIGINT's status when it was interrupted before setting up its handler
      if (code !== 0 && code !== 130 && code !== 2 && !existsSync(dataFile)) throw fail(code, stderr);
      return { perfCpuNs };
    },
    cleanup,
  };
}

/**
 * `perf script` over a recording, streamed line by line into `latency`. Returns perf's
 * warnings (lost events and the like) as lines.
 */
export async function scriptBlockIo(perf: string, dataFile: string, latency: BlockLatency): Promise<string[]> {
  const run = spawnPerf(perf, ['script', '-i', dataFile, '--ns', '-F', 'comm,pid,tid,cpu,time,event,trace']);
  const lines = createInterface({ input: run.child.stdout!, crlfDelay: Infinity });
  for await (const line of lines) {
    const ev = parseBlockLine(line);
    if (ev) latency.add(ev);
  }
  const { code, stderr } = await run.done;
  if (code !== 0) {
    throw explainPerfStderr(stderr, 'perf script') ?? new PerfError(`perf script failed (exit ${code}): ${stderr.trim().split('\n').slice(-3).join(' | ')}`, `run \`perf script -i ${dataFile}\` by hand to see the whole message`);
  }
  return stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /lost|Processed .* events|chunks/i.test(l));
}


// ---------------------------------------------------------------------------------------
// Recording without perf: a private tracefs instance

/**
 * The same tracepoints through a private ftrace instance (`instances/pylens-io-PID`), read
 * from its `trace_pipe` every 100 ms. For kernels and VMs where perf loses samples (see
 * the warning in `report`): ftrace writes its ring buffer from any context. Needs root (or
 * write access to tracefs). The instance has its own buffers and clock ("mono", comparable
 * across CPUs) and is removed afterwards.
 */
export async function recordBlockIoTracefs(tracefs: string, latency: BlockLatency, opts: { bufferKb?: number } = {}): Promise<{ stop(): Promise<{ warnings: string[] }>; cleanup(): void }> {
  const inst = join(tracefs, 'instances', `pylens-io-${process.pid}`);
  const fix = 'run as root (tracefs is root-only by default), with tracefs mounted read-write at /sys/kernel/tracing; or leave out --tracefs to record with perf';
  try {
    mkdirSync(inst);
  } catch (e) {
    throw new PerfError(`cannot create a tracefs instance ${inst}: ${(e as Error).message}`, fix);
  }
  let removed = false;
  let fd: number | undefined;
  const cleanup = () => {
    if (removed) return;
    removed = true;
    if (fd !== undefined) closeSync(fd);
    fd = undefined;
    // rmdir fails while the instance's files are open; tracefs disables its events itself
    for (let i = 0; i < 50; i++) {
      try {
        rmdirSync(inst);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EBUSY') break;
        spawnSync('sleep', ['0.02']);
      }
    }
    process.off('exit', cleanup);
  };
  process.on('exit', cleanup);
  const write = (f: string, v: string) => writeFileSync(join(inst, f), v);
  try {
    try {
      write('options/record-tgid', '1');
    } catch {
      /* older kernels: record-tgid is global only; pids are then thread ids */
    }
    try {
      write('trace_clock', 'mono');
    } catch {
      /* keep the default clock */
    }
    write('buffer_size_kb', `${opts.bufferKb ?? 4096}`);
    for (const ev of BLOCK_EVENTS) write(`events/${ev.replace(':', '/')}/enable`, '1');
    write('tracing_on', '1');
    fd = openSync(join(inst, 'trace_pipe'), constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    cleanup();
    throw e instanceof PerfError ? e : new PerfError(`cannot set up the tracefs instance ${inst}: ${(e as Error).message}`, fix);
  }
  const buf = Buffer.alloc(1 << 16);
  let rest = '';
  let lost = 0;
  const drain = () => {
    for (;;) {
      let n: number;
      try {
        n = readSync(fd!, buf, 0, buf.length, null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EAGAIN') return;
        throw e;
      }
      if (n <= 0) return;
      const text = rest + buf.toString('latin1', 0, n);
      const lines = text.split('\n');
      rest = lines.pop()!;
      for (const line of lines) {
        const ev = parseBlockLine(line);
        if (ev) latency.add(ev);
        else {
          const m = /\[LOST (\d+) EVENTS\]/.exec(line);
          if (m) lost += Number(m[1]);
        }
      }
    }
  };
  const timer = setInterval(drain, 100);
  return {
    async stop() {
      clearInterval(timer);
      try {
        write('tracing_on', '0');
      } catch {
        /* removed underneath us */
      }
      drain();
      if (rest) {
        const ev = parseBlockLine(rest);
        if (ev) latency.add(ev);
        rest = '';
      }
      cleanup();
      return { warnings: lost > 0 ? [`the trace buffer overflowed: ${lost} events lost`] : [] };
    },
    cleanup,
  };
}
