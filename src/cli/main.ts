#!/usr/bin/env node
/**
 * pylens command-line entry point. Thin: parse arguments, call the core, print.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { PYLENS_VERSION } from '../version.ts';
import { parseArgs, renderHelp, UsageError, type CommandSpec, type Parsed } from './args.ts';
import { convertSpec, reportSpec, runConvert, runReport, runView, viewSpec } from './commands.ts';
import { EXIT_OK, explain } from './errors.ts';
import { demoSpec, runDemo } from './demo.ts';
import { diffSpec, runDiff, spreadSides } from './diff.ts';
import { diagnoseSpec, runDiagnose } from './diagnose.ts';
import { doctorSpec, runDoctorCommand } from './doctor.ts';
import { agentSpec } from './agent-spec.ts';
import { dumpSpec, runDump } from './dump.ts';
import { ioSpec, runIo } from './io.ts';
import { offcpuSpec, runOffcpu } from './offcpu.ts';
import { perfSpec, runPerf } from './perf.ts';
import { recordSpec, runRecord } from './record.ts';
import { runSched, schedSpec } from './sched.ts';
import { runTop, topSpec } from './top.ts';
import { countSpec, runCount } from './count.ts';
import { checkSpec, pythonpathSpec, runCheck, runPythonpath } from './check.ts';
import { runStore, storeSpec } from './store.ts';
import { runServe, serveSpec } from './serve.ts';
import { memSpec, runMem } from './mem.ts';
import { runTrace, traceSpec } from './trace.ts';
import { runYappi, yappiSpec } from './yappi.ts';

interface Command {
  spec: CommandSpec;
  run(args: Parsed): number | Promise<number>;
  /** rewrite the arguments before parsing (e.g. diff's `--base a b c`) */
  prepare?(argv: readonly string[]): string[];
}

const COMMANDS: Command[] = [
  { spec: convertSpec, run: runConvert },
  { spec: viewSpec, run: runView },
  { spec: reportSpec, run: runReport },
  { spec: diffSpec, run: runDiff, prepare: spreadSides },
  { spec: diagnoseSpec, run: runDiagnose },
  { spec: recordSpec, run: runRecord },
  { spec: topSpec, run: runTop },
  { spec: dumpSpec, run: runDump },
  { spec: perfSpec, run: runPerf },
  { spec: schedSpec, run: runSched },
  { spec: ioSpec, run: runIo },
  { spec: offcpuSpec, run: runOffcpu },
  { spec: traceSpec, run: runTrace },
  { spec: countSpec, run: runCount },
  { spec: checkSpec, run: runCheck },
  { spec: pythonpathSpec, run: runPythonpath },
  { spec: storeSpec, run: runStore },
  { spec: serveSpec, run: runServe },
  { spec: yappiSpec, run: runYappi },
  { spec: memSpec, run: runMem },
  { spec: agentSpec, run: async (a) => (await import('./agent.ts')).runAgent(a) },
  { spec: doctorSpec, run: runDoctorCommand },
  { spec: demoSpec, run: runDemo },
];

function overview(): string {
  const w = Math.max(...COMMANDS.map((c) => c.spec.name.length));
  return [
    `pylens ${PYLENS_VERSION} — a profiling workbench for Python`,
    '',
    'Usage: pylens <command> [options]',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.spec.name.padEnd(w)}  ${c.spec.summary}`),
    '',
    'Examples:',
    '  pylens record -- python app.py              # sample a program; HTML flamegraph',
    '  pylens diagnose -p 4242                     # what is wrong: ranked findings and the next command',
    '  pylens top -p 4242                          # live view of a running process',
    '  pylens perf -- python app.py                # perf: Python, native and kernel frames',
    '  pylens sched -p 4242 -d 10                  # who runs, who waits',
    '  pylens offcpu -p 4242 -d 10                 # where it waits, and why (eBPF)',
    '  pylens trace -- python app.py               # every call: counts and times',
    '  pylens mem -- python app.py                 # allocations by line; growth over time',
    '  pylens view perf-script.txt                 # interactive HTML flamegraph',
    '  pylens report profile.pstats --by line      # top table',
    '  pylens diff before.pylens after.pylens      # what changed, beyond sampling noise',
    '  pylens convert stacks.folded -o app.pb.gz   # pprof for go tool pprof',
    '',
    "Run 'pylens <command> --help' for a command's options. Exit codes: 0 ok, 1 failure, 2 usage, 3 a regression (diff --fail-on-regression).",
  ].join('\n') + '\n';
}

/** package.json's engines: Node 22.18 runs TypeScript and has node:sqlite (the store, serve) */
const NODE_MIN: readonly [number, number] = [22, 18];

export function nodeTooOld(version: string = process.versions.node): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major < NODE_MIN[0] || (major === NODE_MIN[0] && minor < NODE_MIN[1]);
}

export async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (nodeTooOld() && process.env.PYLENS_ANY_NODE !== '1') {
    process.stderr.write(
      `pylens: error: pylens needs Node.js ${NODE_MIN.join('.')} or newer; this is ${process.version} (${process.execPath})\n` +
        '  fix: install a current Node (https://nodejs.org, or `nvm install 24`) and reinstall pylens with it; PYLENS_ANY_NODE=1 tries anyway\n',
    );
    return 1;
  }
  if (first === undefined) {
    process.stderr.write(overview());
    return 2;
  }
  if (first === '--help' || first === '-h' || first === 'help') {
    const topic = COMMANDS.find((c) => c.spec.name === rest[0]);
    process.stdout.write(topic ? renderHelp(topic.spec) : overview());
    return EXIT_OK;
  }
  if (first === '--version' || first === '-V') {
    process.stdout.write(`pylens ${PYLENS_VERSION}\n`);
    return EXIT_OK;
  }
  const cmd = COMMANDS.find((c) => c.spec.name === first);
  try {
    if (!cmd) throw new UsageError('pylens', `unknown command '${first}'; commands: ${COMMANDS.map((c) => c.spec.name).join(', ')}`);
    // after `--` they are the launched program's: `record -- python app.py --help`
    const own = rest.includes('--') ? rest.slice(0, rest.indexOf('--')) : rest;
    if (own.includes('--help') || own.includes('-h')) {
      process.stdout.write(renderHelp(cmd.spec));
      return EXIT_OK;
    }
    return await cmd.run(parseArgs(cmd.spec, cmd.prepare ? cmd.prepare(rest) : rest));
  } catch (e) {
    const { message, fix, code } = explain(e);
    process.stderr.write(`pylens: error: ${message}\n${fix ? `  fix: ${fix}\n` : ''}`);
    return code;
  }
}

function invokedDirectly(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  // `npm run pylens -- …` runs in the package root; take relative paths from where the user was.
  if (process.env.npm_lifecycle_event === 'pylens' && process.env.INIT_CWD) process.chdir(process.env.INIT_CWD);
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.stderr.write(`pylens: internal error: ${(e as Error).stack}\n`);
      process.exitCode = 1;
    },
  );
}
