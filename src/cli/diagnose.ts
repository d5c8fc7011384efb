/**
 * `pylens diagnose [-p PID | -- python app.py] [-d S] [--json] [-o report.html]`: the
 * production playbook as one command. It checks what this machine allows (the sampler's
 * ptrace, perf, eBPF), records what the symptom needs — every thread's CPU and waiting
 * time (with eBPF: off-CPU time by kernel wait class and GIL waits, else the sampler in
 * wall-clock mode; a process with Python children, a worker pool: the sampler over all of
 * them, so their work can be compared), then, for a process still running and perf allowed, a few seconds of
 * native and kernel frames — and prints the findings (src/analysis/findings.ts), each with
 * its evidence and the next command, and the checklist.
 */
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { checklist, findings, rssGrowth } from '../analysis/findings.ts';
import { readEbpfFacts, checkEbpfAccess, findBpftrace } from '../capture/ebpf/tool.ts';
import { checkPerfAccess, findPerf, readPerfAccess } from '../capture/perf/tool.ts';
import { descendants, sampleAttached } from '../capture/sampler/sampler.ts';
import { readExe } from '../capture/sampler/session.ts';
import { syscalls, syscallsError } from '../capture/sampler/syscalls.ts';
import { rssCompanion, type RssSeries } from '../capture/session/rss.ts';
import type { Profile } from '../model/profile.ts';
import { diagnoseJson, renderDiagnoseHtml, renderDiagnoseText, type DiagnoseReport } from '../render/diagnose.ts';
import { UsageError, type CommandSpec, type Parsed } from './args.ts';
import { writeOutput } from './commands.ts';
import { captureOffCpu } from './offcpu.ts';
import { captureNative, programName } from './record.ts';
import { captureTarget, durationArg, startSession, targetArgs } from './target.ts';

export const diagnoseSpec: CommandSpec = {
  name: 'diagnose',
  summary: 'The playbook as one command: record what the symptom needs and print ranked findings (CPU hotspots, waits by class, GIL, native code, imbalance) with evidence and the next command.',
  usage: 'pylens diagnose [-p PID | -- python app.py ...] [-d SECONDS] [--mem] [--json] [-o report.html]',
  positionals: { min: 0, max: 0 },
  rest: true,
  options: [
    { name: 'pid', short: 'p', type: 'number', value: 'PID', help: 'the running Python process to diagnose' },
    { name: 'duration', short: 'd', type: 'number', value: 'SECONDS', help: 'how long to record (default 10; a launched program: until it exits, at most this long when given)' },
    { name: 'json', type: 'boolean', help: 'the findings as JSON on stdout (a `findings` array: kind, function, file, line, share, evidence, next)' },
    { name: 'output', short: 'o', type: 'string', value: 'OUT.html', help: 'also write an HTML report with the flamegraphs' },
    { name: 'rate', short: 'r', type: 'number', value: 'HZ', help: 'Python stack samples per second (default 100)' },
    { name: 'no-native', type: 'boolean', help: 'skip the native-frames recording (perf)' },
    { name: 'mem', type: 'boolean', help: 'also watch the resident memory (RSS, every 0.5 s) and report steady growth' },
  ],
  examples: ['pylens diagnose -p 4242', 'pylens diagnose -d 30 --json -p 4242 > findings.json', 'pylens diagnose -o report.html -- python app.py', 'pylens diagnose --mem -d 60 -p 4242'],
};

interface Capability {
  name: string;
  ok: boolean;
  detail: string;
}

function capabilities(): Capability[] {
  const out: Capability[] = [];
  out.push({ name: 'sampler', ok: true, detail: syscalls() ? 'process_vm_readv and ptrace through koffi' : `reads /proc/PID/mem (no koffi: ${syscallsError() ?? 'unknown'}; no --blocking)` });
  try {
    findPerf();
    const w = checkPerfAccess(readPerfAccess(), { kernel: false });
    out.push({ name: 'perf', ok: true, detail: w.warnings.join('; ') || 'allowed' });
  } catch (e) {
    out.push({ name: 'perf', ok: false, detail: (e as Error).message });
  }
  try {
    findBpftrace();
    checkEbpfAccess(readEbpfFacts(), { tool: 'bpftrace' });
    out.push({ name: 'eBPF', ok: true, detail: 'bpftrace' });
  } catch (e) {
    out.push({ name: 'eBPF', ok: false, detail: (e as Error).message });
  }
  return out;
}

export async function runDiagnose(args: Parsed): Promise<number> {
  const o = args.options;
  const { pid: pidOpt, argv = [] } = targetArgs('diagnose', args);
  const duration = durationArg('diagnose', args) ?? (pidOpt !== undefined ? 10 : undefined);
  const rate = (o.rate as number | undefined) ?? 100;
  if (!(rate > 0 && rate <= 10_000)) throw new UsageError('diagnose', `--rate must be between 0 and 10000 Hz, got ${rate}`);
  const out = o.output as string | undefined;
  if (out !== undefined && !/\.html?$/i.test(out)) throw new UsageError('diagnose', `-o writes an HTML report: give a .html file, not '${out}'`);
  const caps = capabilities();
  const can = (n: string) => caps.find((c) => c.name === n)!.ok;
  const target = pidOpt !== undefined ? { pid: pidOpt } : { argv };
  // a process with Python children (a worker pool: gunicorn, multiprocessing, celery):
  // every process is sampled, so the work can be compared across them
  const pool = pidOpt !== undefined ? descendants(pidOpt).filter((c) => /python/i.test(basename(readExe(c) ?? ''))) : [];
  const targetText = pidOpt !== undefined ? `-p ${pidOpt}` : `-- ${argv.join(' ')}`;
  const recorded: string[] = [];
  const rss = o.mem ? rssCompanion({ children: pidOpt !== undefined && pool.length > 0 }) : undefined;

  // 1. every thread's time: CPU and waits
  let main: Profile;
  let pid: number;
  let name: string;
  let finish: () => Promise<number> | number;
  if (can('eBPF') && pool.length === 0) {
    const cap = await captureOffCpu('diagnose', { target, rate, withCpu: true, backend: 'auto', ...(duration !== undefined ? { durationS: duration } : {}), ...(rss ? { companions: [rss] } : {}) });
    if (typeof cap === 'number') return cap;
    ({ profile: main, pid, name } = cap);
    finish = () => cap.session.finish();
    recorded.push(`CPU and off-CPU time of every thread (${cap.result.backend} + sampler at ${rate} Hz, ${((main.meta.durationNs ?? 0) / 1e9).toFixed(1)} s)`);
  } else {
    const session = await startSession('diagnose', { target: captureTarget(target), sampler: true, ...(duration !== undefined ? { durationS: duration } : {}), ...(rss ? { companions: [rss] } : {}) });
    if (typeof session === 'number') return session;
    const sampler = session.sampler!;
    pid = sampler.pid;
    name = programName(pid, sampler.command ?? argv);
    const why = pool.length ? `${pool.length} Python child process${pool.length === 1 ? '' : 'es'} sampled too; waits are classed by their Python line` : 'no eBPF: waits are classed by their Python line';
    process.stderr.write(`pylens diagnose: sampling PID ${pid} in wall-clock mode at ${rate} Hz${duration ? ` for ${duration} s` : ''} (${why}); Ctrl-C to stop\n`);
    try {
      main = await sampleAttached(sampler, { rateHz: rate, idle: true, signal: session.signal, clock: session.clock, ...(pool.length ? { subprocesses: true, processRoots: false } : {}) });
    } catch (e) {
      await session.abandon();
      throw e;
    }
    finish = () => session.finish();
    recorded.push(`every thread's stack, running or waiting${pool.length ? `, in PID ${pid} and its ${pool.length} Python child process${pool.length === 1 ? '' : 'es'}` : ''} (sampler, wall clock, ${rate} Hz, ${((main.meta.durationNs ?? 0) / 1e9).toFixed(1)} s)`);
  }
  main.meta.name ??= name;
  // the RSS poller stops with the recording (the session stopped its companions)
  let memSeries: RssSeries | undefined;
  if (rss?.started) {
    memSeries = await rss.stop();
    const g = memSeries.bytes.length > 1 ? rssGrowth(memSeries) : undefined;
    const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
    recorded.push(
      memSeries.bytes.length > 1
        ? `resident memory every 0.5 s${memSeries.pids.length > 1 ? ` (${memSeries.pids.length} processes, summed)` : ''}: ${mib(memSeries.bytes[0]!)} → ${mib(memSeries.bytes.at(-1)!)}${g && !g.growing ? ` (no steady growth: ${g.reason})` : ''}`
        : 'resident memory: too few readings (the recording was too short)',
    );
  }

  // 2. native frames, while the process still runs
  let native: Profile | undefined;
  if (!o['no-native'] && can('perf') && existsSync(`/proc/${pid}`)) {
    const secs = Math.min(5, duration ?? 5);
    try {
      native = await captureNative('diagnose', pid, rate, secs);
      if (native) recorded.push(`native and kernel frames (perf alongside the sampler, ${secs} s)`);
    } catch (e) {
      process.stderr.write(`pylens diagnose: note: no native frames: ${(e as Error).message}\n`);
    }
  } else if (!o['no-native'] && !can('perf')) recorded.push('no native frames (perf not allowed here)');

  const report: DiagnoseReport = {
    target: `${name} (pid ${pid})`,
    capabilities: caps,
    recorded,
    findings: findings({ main, ...(native ? { native } : {}), target: existsSync(`/proc/${pid}`) ? `-p ${pid}` : targetText, ...(memSeries ? { rss: memSeries } : {}), ...(argv.length ? { command: argv.join(' ') } : {}) }),
    checklist: checklist(main),
  };
  if (out !== undefined) {
    const abs = writeOutput(out, renderDiagnoseHtml(report, [{ title: `${name}: every thread's time`, profile: main }, ...(native ? [{ title: `${name}: CPU with native frames`, profile: native }] : [])]));
    process.stderr.write(`pylens diagnose: report written to ${abs}\n`);
  }
  process.stdout.write(o.json ? JSON.stringify(diagnoseJson(report), null, 2) + '\n' : renderDiagnoseText(report));
  return finish();
}
