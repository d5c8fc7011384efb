/**
 * `pylens dump -p PID [--json]`: print every Python thread's stack of a running process
 * once (py-spy dump's surface). Thin: dumpProcess → render.
 */
import { readCmdline } from '../capture/sampler/session.ts';
import { basename, relative } from 'node:path';
import { dumpProcess, type DumpResult } from '../capture/sampler/dump.ts';
import { existsSync } from 'node:fs';
import { inChildPidNamespace, OTHER_PID_NAMESPACE_FIX, PermissionError, ProcessGoneError } from '../capture/sampler/memory.ts';
import { RuntimeNotFoundError, UnsupportedVersionError } from '../capture/sampler/runtime.ts';
import { UsageError, type CommandSpec, type Parsed } from './args.ts';
import { CliError } from './errors.ts';

export const dumpSpec: CommandSpec = {
  name: 'dump',
  summary: 'Print the current Python stack of every thread of a running process.',
  usage: 'pylens dump -p PID [--async] [--json]',
  positionals: { min: 0, max: 0 },
  options: [
    { name: 'pid', short: 'p', type: 'number', value: 'PID', help: 'the Python process to inspect (required)' },
    { name: 'json', type: 'boolean', help: 'machine-readable output' },
    { name: 'async', type: 'boolean', help: 'also list the live asyncio tasks: name, state, coroutine, what each waits on (CPython 3.8–3.14)' },
  ],
  examples: ['pylens dump -p 1234', 'pylens dump -p $(pgrep -f app.py) --json | jq .threads[0].frames', 'pylens dump --async -p $(pgrep -f uvicorn)'],
};

/** The command line of a process, for the header ("python3.12 app.py"); undefined if unreadable. */
export function processCommandLine(pid: number): string | undefined {
  const parts = readCmdline(pid);
  if (!parts) return undefined;
  return [basename(parts[0]!), ...parts.slice(1)].join(' ');
}

/** A file name for display: relative to `cwd` when under it, else its base name. */
export function displayFile(file: string, cwd = process.cwd()): string {
  if (!file.startsWith('/')) return file;
  const rel = relative(cwd, file);
  return rel && !rel.startsWith('..') && !rel.startsWith('/') ? rel : basename(file);
}

/** The py-spy-style text rendering of a dump. */
export function renderDump(d: DumpResult, opts: { cmdline?: string; cwd?: string } = {}): string {
  const lines = [`Process ${d.pid}: ${opts.cmdline ?? '?'}`, `Python v${d.python.version} (${d.python.library})`, ''];
  for (const t of d.threads) {
    const id = t.tidIsOs ? String(t.tid) : `0x${BigInt(t.pthreadId).toString(16).toUpperCase()}`;
    const state = t.state === 'running' ? 'active' : t.state;
    const gil = t.holdsGil ? ' [holds the GIL]' : '';
    // the name as a JSON string: quoted, with quotes and control characters escaped
    lines.push(`Thread ${id} (${state})${t.name !== undefined ? ` ${JSON.stringify(t.name)}` : ''}${gil}`);
    if (t.error !== undefined) lines.push(`    <stack unreadable: ${t.error}>`);
    for (const f of t.frames) lines.push(`    ${f.qualname} (${displayFile(f.file, opts.cwd)}${f.line !== null ? `:${f.line}` : ''})`);
    if (t.truncated) lines.push('    … (truncated)');
  }
  const a = d.asyncio;
  if (a !== undefined) {
    lines.push('');
    if ('error' in a) lines.push(`asyncio tasks: unreadable (${a.error})`);
    else if (a.unreadable !== undefined) lines.push(`asyncio tasks: not read (${a.unreadable})`);
    else if (!a.asyncio) lines.push('asyncio tasks: none (asyncio is not imported)');
    else {
      const extra = [a.unsupported ? `${a.unsupported} of a task class pylens cannot read` : '', a.skipped ? `${a.skipped} more not read` : ''].filter(Boolean).join('; ');
      lines.push(`asyncio tasks (${a.tasks.length}${extra ? `; ${extra}` : ''}):`);
      const loopThreads = new Set(a.tasks.map((t) => t.loopThread).filter((x) => x !== undefined)).size;
      for (const t of a.tasks) {
        const waits =
          t.awaitsTask !== undefined
            ? `awaits task ${JSON.stringify(t.awaitsTask)}`
            : t.children !== undefined
              ? `awaits its ${t.children.kind === 'gather' ? 'gather' : 'TaskGroup'} of ${t.children.count}${t.children.tasks.length ? `: tasks ${t.children.tasks.map((n) => JSON.stringify(n)).join(', ')}` : ''}`
              : t.waitsOn !== null
                ? `waits on a ${t.waitsOn.replace(/^_asyncio\./, '')}`
                : t.eager
                  ? 'running its eager first step'
                  : t.running
                    ? 'running'
                    : 'ready';
        // tasks of loops in several threads: each says whose loop it is on
        const th = loopThreads > 1 && t.loopThread !== undefined ? d.threads.find((x) => x.pthreadId === t.loopThread) : undefined;
        const on = th ? ` [thread ${th.name !== undefined ? JSON.stringify(th.name) : th.tid}]` : '';
        lines.push(`Task ${JSON.stringify(t.name)} (${t.state}) ${t.coroutine ?? '?'} — ${waits}${on}`);
        for (const f of t.stack) lines.push(`    ${f.qualname} (${displayFile(f.file, opts.cwd)}${f.line !== null ? `:${f.line}` : ''})`);
      }
    }
  }
  return lines.join('\n') + '\n';
}

/** The sampler's attach errors as CliErrors (what went wrong with PID, and the fix); other errors unchanged. */
export function attachError(e: unknown, pid: number, command: string): unknown {
  if (e instanceof ProcessGoneError && !existsSync(`/proc/${pid}`) && inChildPidNamespace() === true) {
    return new CliError(
      `process ${pid} is not visible from this PID namespace: pylens runs in a container's own PID namespace, where a host PID (or another container's process) does not exist — or it has exited`,
      OTHER_PID_NAMESPACE_FIX,
    );
  }
  if (e instanceof ProcessGoneError) return new CliError(`process ${pid} does not exist (it has exited, or never existed)`, 'check the PID with ps; the process may have exited');
  if (e instanceof PermissionError) {
    const i = e.message.indexOf('Reading /proc/PID/mem');
    return new CliError(i > 0 ? e.message.slice(0, i).trim() : e.message, i > 0 ? e.message.slice(i) : 'run as the same user as the target, or with CAP_SYS_PTRACE');
  }
  if (e instanceof UnsupportedVersionError) {
    return new CliError(`PID ${pid} runs Python ${e.version.text}, which pylens ${command} does not support`, 'pylens samples CPython 3.8 to 3.14; run the program with one of those');
  }
  if (e instanceof RuntimeNotFoundError) {
    return new CliError(`PID ${pid} does not look like a CPython process (no _PyRuntime found in its maps): ${e.message}`, 'pass the PID of a python process (not a shell or launcher wrapping it); check with ps -o pid,cmd. From the host, a container\'s process has another PID than inside it: `docker inspect -f {{.State.Pid}} APP` (its first process), or the first number of NSpid in /proc/HOST_PID/status');
  }
  return e;
}

/** dumpProcess with the sampler's errors turned into CliErrors. */
export function dumpOrExplain(pid: number, async = false): DumpResult {
  try {
    return dumpProcess(pid, { async });
  } catch (e) {
    throw attachError(e, pid, 'dump');
  }
}

/** The -p PID of a command that attaches to a process; usage errors when missing or not a PID. */
export function requirePid(command: string, args: Parsed, missingHint: string): number {
  const pid = args.options.pid as number | undefined;
  if (pid === undefined) throw new UsageError(command, `missing -p PID (${missingHint})`);
  if (!Number.isInteger(pid) || pid <= 0) throw new UsageError(command, `-p expects a process id (a whole number > 0), got ${pid}`);
  return pid;
}

export function runDump(args: Parsed): number {
  const pid = requirePid('dump', args, 'the process to dump');
  const d = dumpOrExplain(pid, Boolean(args.options.async));
  if (args.options.json) process.stdout.write(JSON.stringify(d, null, 2) + '\n');
  else process.stdout.write(renderDump(d, { cmdline: processCommandLine(pid) }));
  return 0;
}
