/**
 * In-kernel CPU sampling for `pylens record --backend ebpf`: bpftrace's `profile:hz:N`
 * with user and kernel stacks, one process (`-p`, bpftrace exits with it) or every
 * process but the idle tasks (`all`).
 *
 * Every sample is printed as it is taken — a header line `S pid tid nsecs comm`, the kernel
 * stack, `E`, the user stack, `U` — so user stacks are symbolized while their process
 * still exists and nothing waits in a map. (An earlier design counted samples in maps that
 * were printed and cleared every second, as the off-CPU program does; with user stacks in
 * the key, bpftrace 0.17 lost whole seconds of samples here. At ≤ 1 kHz per CPU the
 * per-sample lines are a few hundred kB/s.) `timeNs` is the sample's CLOCK_MONOTONIC time.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bareSymbol } from './offcpu.ts';
import { UserSymbolizer } from './symbolize.ts';
import { BpftraceOutput, bpftraceReady, EbpfError, processAlive, spawnTracer, tracerAttached } from './tool.ts';

export interface CpuStackSample {
  pid: number;
  tid: number;
  comm: string;
  ustack: string[];
  /** the library of each ustack frame (base name), when known */
  ulibs?: (string | undefined)[];
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

/** How far apart a kernel sample and the sampler's sample may be matched is tied to this (ns). */
export const CPU_BUCKET_NS = 10_000_000;
/** The frame a sample the kernel recorded no stack for stands under. */
export const NO_STACK = '[no stack recorded]';
const USTACK_DEPTH = 127;
const KSTACK_DEPTH = 48;

/** The bpftrace program (text). */
export function cpuProgram(o: CpuSamplingOptions): string {
  const hz = Math.round(o.hz);
  if (!(hz >= 1 && hz <= 10_000)) throw new RangeError(`sampling rate ${o.hz} Hz is out of range (1..10000)`);
  if (!o.all && !(o.pid && o.pid > 0)) throw new RangeError('give a pid or all');
  const filter = o.all ? 'pid != 0' : `pid == ${Math.trunc(o.pid!)}`;
  return `// pylens in-kernel CPU sampling
BEGIN { printf("pylens-ready %llu\\n", nsecs); }
profile:hz:${hz} /${filter}/
{
  printf("S %d %d %llu %s\\n%s\\nE\\n", pid, tid, nsecs, comm, kstack(${KSTACK_DEPTH}));
  printf("%s\\nU\\n", ustack(${USTACK_DEPTH}));
}
END { printf("pylens-end %llu\\n", nsecs); }
`;
}

/** Streaming parser of the CPU program's output: `S pid tid ns comm`, kernel frames, `E`, user frames, `U`. */
export class CpuOutputParser extends BpftraceOutput {
  private readonly out: CpuStackSample[] = [];
  private cur: CpuStackSample | undefined;
  private part: 'k' | 'u' = 'k';
  private readonly symbols: UserSymbolizer | undefined;
  /** samples for which the kernel recorded neither stack (kept, under NO_STACK) */
  stackless = 0;

  /** `symbols`: resolve user addresses (the program runs with BPFTRACE_NO_USER_SYMBOLS=1). */
  constructor(symbols?: UserSymbolizer) {
    super(/^@/, /^$^/);
    this.symbols = symbols;
  }

  override line(l: string): void {
    if (this.cur) {
      const t = l.trim();
      if (this.part === 'k') {
        if (t === 'E') this.part = 'u';
        else if (t) this.cur.kstack.push(bareSymbol(t));
        return;
      }
      if (t === 'U') {
        if (!this.cur.ustack.length && !this.cur.kstack.length) {
          // bpf_get_stackid failed (a stack-map bucket taken by another stack, or an
          // unreadable user stack): the CPU time is real, so it stays, under a frame that says so
          this.cur.ustack.push(NO_STACK);
          this.stackless++;
        }
        this.out.push(this.cur);
        this.cur = undefined;
      } else if (t) {
        if (this.symbols && /^0x[0-9a-f]+$/i.test(t)) {
          const r = this.symbols.resolve(this.cur.pid, Number.parseInt(t.slice(2), 16));
          this.cur.ustack.push(r.name);
          (this.cur.ulibs ??= []).push(r.lib);
        } else this.cur.ustack.push(bareSymbol(t));
      }
      return;
    }
    const m = /^S (\d+) (\d+) (\d+) (.*)$/.exec(l);
    if (m) {
      this.cur = { pid: Number(m[1]), tid: Number(m[2]), timeNs: Number(m[3]), comm: m[4]!, kstack: [], ustack: [], count: 1 };
      this.symbols?.remember(this.cur.pid);
      this.part = 'k';
      return;
    }
    super.line(l);
  }

  samples(): CpuStackSample[] {
    // a sample cut off by the end of the output is dropped
    return [...this.out].sort((a, b) => a.timeNs - b.timeNs || a.tid - b.tid);
  }
}

/**
 * Start sampling; resolves once the probes are attached. Throws EbpfError (bpftrace
 * missing, not allowed, the target gone).
 */
export async function startCpuSampling(opts: CpuSamplingOptions): Promise<{ stop(): Promise<{ samples: CpuStackSample[]; warnings: string[] }>; ended: Promise<void> }> {
  if (!opts.all && !(opts.pid && processAlive(opts.pid))) throw new EbpfError(`process ${opts.pid} does not exist`, 'check the PID with `ps -p PID`');
  const { bpftrace, facts, check } = bpftraceReady();
  const program = cpuProgram(opts);
  const dir = mkdtempSync(join(tmpdir(), 'pylens-ebpf-cpu-'));
  const file = join(dir, 'cpu.bt');
  writeFileSync(file, program);
  const symbols = new UserSymbolizer();
  // the target's symbol tables read before its samples come (and before a held program starts)
  if (opts.pid) symbols.warm(opts.pid);
  const parser = new CpuOutputParser(symbols);
  // not `bpftrace -p PID`: that makes the profile probe a per-task perf event, which bpftrace
  // 0.17 here sometimes drops after a fraction of a second (and exits, or samples a tenth of
  // the time); per-CPU events with the pid filter are steady, and pylens watches the target
  const args = [file];
  const tracer = spawnTracer(bpftrace, args, {
    onLine: (l) => parser.line(l),
    raiseMemlock: check.raiseMemlock,
    // pylens names user frames itself (symbolize.ts): bpftrace 0.17's user symbolization falls
    // behind here and loses most samples
    env: { ...process.env, BPFTRACE_NO_USER_SYMBOLS: '1' },
  });
  const hint = `bpftrace ${args.join(' ')}`;
  await tracerAttached(tracer, () => parser.readyNs !== undefined, { kernel: facts.kernel, hint, refused: 'bpftrace failed', fix: `run \`${hint}\` by hand to see the whole message`, cleanup: () => rmSync(dir, { recursive: true, force: true }) });
  let targetGone = false;
  const watch = opts.all
    ? undefined
    : setInterval(() => {
        if (processAlive(opts.pid!)) return;
        targetGone = true;
        clearInterval(watch);
        void tracer.stop('SIGINT');
      }, 200);
  watch?.unref();
  let stopped = false;
  let result: Promise<{ samples: CpuStackSample[]; warnings: string[] }> | undefined;
  return {
    ended: tracer.done.then(() => {}),
    stop() {
      result ??= (async () => {
        if (watch) clearInterval(watch);
        stopped = tracer.running() && !targetGone;
        const { code, stderr } = await tracer.stop('SIGINT');
        rmSync(dir, { recursive: true, force: true });
        const warnings = [...check.warnings];
        for (const m of stderr.matchAll(/Lost (\d+) events/g)) parser.lost += Number(m[1]);
        if (parser.endNs === undefined) warnings.push(`bpftrace ended without running its END probe (exit ${code}): the last samples may be missing`);
        if (!stopped) warnings.push('bpftrace ended before stop() (the target exited)');
        if (parser.lost) warnings.push(`bpftrace lost ${parser.lost} events`);
        if (parser.stackless) warnings.push(`${parser.stackless} of ${parser.samples().length} samples came without a stack (the kernel's stack map collided or the user stack was unreadable); they count as ${NO_STACK}`);
        if (parser.skipped.length) warnings.push(`bpftrace printed lines pylens did not understand, e.g. ${JSON.stringify(parser.skipped[0])}`);
        return { samples: parser.samples(), warnings };
      })();
      return result;
    },
  };
}
