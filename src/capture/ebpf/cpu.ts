/**
 * In-kernel CPU sampling for `pylens record --backend ebpf`: bpftrace's `profile:hz:N`
 * with user and kernel stacks, one process (`-p`, bpftrace exits with it) or every
 * process but the idle tasks (`all`).
 *
 * Samples are counted in the kernel by (pid, tid, 10 ms time bucket, kstack, ustack, comm);
 * the value tuple is (count, first ns, last ns) — a key holds a thread id and a thread is on
 * one CPU at a time, so the read-modify-write never races. Three maps take turns by flush
 * generation like the off-CPU program (see offcpu.ts: bpftrace 0.17 may process a clear()
 * late); each is printed and cleared a second after it was last written, so user stacks
 * are symbolized while their processes still exist. `timeNs` is the middle of a record's
 * first and last sample (CLOCK_MONOTONIC).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bareSymbol } from './offcpu.ts';
import { BpftraceOutput, checkEbpfAccess, EbpfError, ensureTracefs, explainTracerStderr, findBpftrace, processAlive, readEbpfFacts, spawnTracer } from './tool.ts';

export interface CpuStackSample {
  pid: number;
  tid: number;
  comm: string;
  ustack: string[];
  /* leaf first */
  kstack: string[];
  /* CLOCK_MONOTONIC */
  timeNs: number;
  count: number;
}

export interface CpuSamplingOptions {
  pid?: number;
  all?: boolean;
  hz: number;
}

export const CPU_BUCKET_NS = 10_000_000;
const USTACK_DEPTH = 127;
const KSTACK_DEPTH = 48;

/** The bpftrace program (text). */
export function cpuProgram(o: CpuSamplingOptions & { bucketNs?: number; flushMs?: number }): string {
  const hz = Math.round(o.hz);
  if (!(hz >= 1 && hz <= 10_000)) throw new RangeError(`sampling rate ${o.hz} Hz is out of range (1..10000)`);
  if (!o.all && !(o.pid && o.pid > 0)) throw new RangeError('give a pid or all');
  const bucket = Math.max(1, Math.round(o.bucketNs ?? CPU_BUCKET_NS));
  const flush = Math.max(10, Math.round(o.flushMs ?? 1000));
  const filter = o.all ? 'pid != 0' : `pid == ${Math.trunc(o.pid!)}`;
  const key = (m: number) => `@c${m}[pid, tid, $b, $g, kstack(${KSTACK_DEPTH}), ustack(${USTACK_DEPTH}), comm]`;
  const update = (m: number) => `  if ($g % 3 == ${m}) {
    $v = ${key(m)};
    ${key(m)} = ($v.0 + 1, $v.0 == 0 ? $now : $v.1, $now);
  }`;
  return `// pylens in-kernel CPU sampling
BEGIN { printf("pylens-ready %llu\\n", nsecs); }
profile:hz:${hz} /${filter}/
{
  $now = nsecs;
  $b = $now / ${bucket};
  $g = @gen;
${[0, 1, 2].map(update).join('\n')}
}
interval:ms:${flush}
{
  @gen = @gen + 1;
  $p = (@gen + 2) % 3;
  if ($p == 0) { print(@c0); clear(@c0); }
  if ($p == 1) { print(@c1); clear(@c1); }
  if ($p == 2) { print(@c2); clear(@c2); }
}
END { printf("pylens-end %llu\\n", nsecs); }
`;
}

// A key: pid, tid, bucket, gen, then two stacks (each either nothing or "\n" + indented
// frames + "\n"), then comm; the value tuple.
const ENTRY_RE = /^@c[012]\[(\d+), (\d+), (\d+), (\d+), ((?:\n[ \t][^\n]*)*\n)?, ((?:\n[ \t][^\n]*)*\n)?, (.*)\]: \((\d+), (\d+), (\d+)\)$/;

function frames(block: string | undefined): string[] {
  if (!block) return [];
  return block.split('\n').map((l) => l.trim()).filter((l) => l !== '').map(bareSymbol);
}

/** Streaming parser of the CPU program's output. */
export class CpuOutputParser extends BpftraceOutput {
  /** gen + key text → sample (an entry printed twice is counted once) */
  private readonly entries = new Map<string, CpuStackSample>();

  constructor() {
    super(/^@gen\b/, /^@c[012]\[/);
  }

  protected override entry(text: string): boolean {
    const m = ENTRY_RE.exec(text);
    if (!m) return false;
    const k = `${m[4]}\u0000${text.slice(0, text.lastIndexOf(']: ('))}`;
    this.entries.set(k, {
      pid: Number(m[1]),
      tid: Number(m[2]),
      kstack: frames(m[5]),
      ustack: frames(m[6]),
      comm: m[7]!,
      count: Number(m[8]),
      timeNs: Math.round((Number(m[9]) + Number(m[10])) / 2),
    });
    return true;
  }

  samples(): CpuStackSample[] {
    return [...this.entries.values()].sort((a, b) => a.timeNs - b.timeNs || a.tid - b.tid);
  }
}

/**
 * Start sampling; resolves once the probes are attached. Throws EbpfError (bpftrace
 * missing, not allowed, the target gone).
 */
export async function startCpuSampling(opts: CpuSamplingOptions): Promise<{ stop(): Promise<{ samples: CpuStackSample[]; warnings: string[] }>; ended: Promise<void> }> {
  if (!opts.all && !(opts.pid && processAlive(opts.pid))) throw new EbpfError(`process ${opts.pid} does not exist`, 'check the PID with `ps -p PID`');
  const bpftrace = findBpftrace();
  let facts = readEbpfFacts();
  if (!facts.tracefs && ensureTracefs(facts)) facts = readEbpfFacts();
  const check = checkEbpfAccess(facts, { tool: 'bpftrace' });
  const program = cpuProgram(opts);
  const dir = mkdtempSync(join(tmpdir(), 'pylens-ebpf-cpu-'));
  const file = join(dir, 'cpu.bt');
  writeFileSync(file, program);
  const parser = new CpuOutputParser();
  const args = [...(opts.all ? [] : ['-p', String(opts.pid)]), file];
  const tracer = spawnTracer(bpftrace, args, {
    onLine: (l) => parser.line(l),
    raiseMemlock: check.raiseMemlock,
    env: { ...process.env, BPFTRACE_MAP_KEYS_MAX: '65536' },
  });
  const hint = `bpftrace ${args.join(' ')}`;
  const start = Date.now();
  while (parser.readyNs === undefined) {
    if (!tracer.running()) {
      const { code, stderr } = await tracer.done;
      rmSync(dir, { recursive: true, force: true });
      throw explainTracerStderr(stderr, 'bpftrace', facts.kernel) ?? new EbpfError(`bpftrace failed (exit ${code}): ${stderr.split('\n').filter((l) => l.trim() && !/RLIMIT_MEMLOCK/.test(l)).slice(-3).join(' | ') || 'no message'}`, `run \`${hint}\` by hand to see the whole message`);
    }
    if (Date.now() - start > 60_000) {
      await tracer.stop('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      throw new EbpfError('bpftrace did not attach its probes within 60 s', `the machine may be overloaded; try again, or run \`${hint}\` by hand`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  let stopped = false;
  let result: Promise<{ samples: CpuStackSample[]; warnings: string[] }> | undefined;
  return {
    ended: tracer.done.then(() => {}),
    stop() {
      result ??= (async () => {
        stopped = tracer.running();
        const { code, stderr } = await tracer.stop('SIGINT');
        rmSync(dir, { recursive: true, force: true });
        const warnings = [...check.warnings];
        for (const m of stderr.matchAll(/Lost (\d+) events/g)) parser.lost += Number(m[1]);
        if (parser.endNs === undefined) warnings.push(`bpftrace ended without printing its final maps (exit ${code}): the last second of samples may be missing`);
        if (!stopped) warnings.push('bpftrace ended before stop() (the target exited)');
        if (parser.lost) warnings.push(`bpftrace lost ${parser.lost} events`);
        if (parser.skipped.length) warnings.push(`bpftrace printed lines pylens did not understand, e.g. ${JSON.stringify(parser.skipped[0])}`);
        return { samples: parser.samples(), warnings };
      })();
      return result;
    },
  };
}
