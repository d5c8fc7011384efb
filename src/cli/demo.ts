/**
 * `pylens demo`: record the bundled sample service (demo/shop.py) with the sampler, launched
 * under `record`, and write an HTML flamegraph. The quickest way to see what pylens does.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError, type CommandSpec, type Parsed } from './args.ts';
import { CliError } from './errors.ts';
import { runRecord } from './record.ts';

export const demoSpec: CommandSpec = {
  name: 'demo',
  summary: 'Record the bundled sample service with the sampler and write an HTML flamegraph.',
  usage: 'pylens demo [-o OUT] [-d SECONDS] [--python PATH]',
  positionals: { min: 0, max: 0 },
  options: [
    { name: 'output', short: 'o', type: 'string', value: 'OUT', help: 'output file (default out/pylens-demo.html); any format record writes' },
    { name: 'duration', short: 'd', type: 'number', value: 'SECONDS', help: 'how long the demo service runs (default 4)' },
    { name: 'python', type: 'string', value: 'PATH', help: 'the CPython 3.8+ to run it with (default: python3 on PATH, else the newest pyenv one)' },
    { name: 'rate', short: 'r', type: 'number', value: 'HZ', help: 'samples per second (default 100)' },
  ],
  examples: ['pylens demo', 'pylens demo -d 10 -o demo.speedscope.json', 'pylens demo --python ~/.pyenv/versions/3.12.1/bin/python3.12'],
};

/** demo/shop.py, from src/cli (sources) or dist/src/cli (build) */
export function demoScript(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const up of ['../..', '../../..']) {
    const p = resolve(here, up, 'demo', 'shop.py');
    if (existsSync(p)) return p;
  }
  throw new CliError('the bundled demo program demo/shop.py is missing from this installation', 'reinstall pylens, or run from a checkout of its repository');
}

function works(exe: string): boolean {
  try {
    const v = execFileSync(exe, ['-c', 'import sys; print(sys.version_info[0] * 100 + sys.version_info[1])'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
    const n = Number(v.trim());
    return n >= 308 && n <= 314;
  } catch {
    return false;
  }
}

/** python3 on PATH if it is a CPython 3.8–3.14, else the newest pyenv CPython. */
export function findPython(): string | undefined {
  if (works('python3')) return 'python3';
  let root: string | undefined;
  try {
    root = execFileSync('pyenv', ['root'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    root = process.env.PYENV_ROOT;
  }
  if (!root || !existsSync(join(root, 'versions'))) return undefined;
  const versions = readdirSync(join(root, 'versions'))
    .map((v) => /^3\.(\d+)\.(\d+)$/.exec(v))
    .filter((m): m is RegExpExecArray => m !== null && Number(m[1]) >= 8 && Number(m[1]) <= 14)
    .sort((a, b) => Number(b[1]) - Number(a[1]) || Number(b[2]) - Number(a[2]));
  for (const m of versions) {
    const exe = join(root, 'versions', m[0], 'bin', `python3.${m[1]}`);
    if (existsSync(exe) && works(exe)) return exe;
  }
  return undefined;
}

export async function runDemo(args: Parsed): Promise<number> {
  const o = args.options;
  const seconds = (o.duration as number | undefined) ?? 4;
  if (!(seconds > 0 && seconds <= 3600)) throw new UsageError('demo', `--duration must be between 0 and 3600 seconds, got ${seconds}`);
  const python = (o.python as string | undefined) ?? findPython();
  if (!python) throw new CliError('no CPython 3.8 or newer found for the demo', 'install python3 (apt-get install -y python3), or pass --python /path/to/python3.X');
  process.env.PYLENS_DEMO_SECONDS = String(seconds);
  return runRecord({
    positionals: [],
    rest: [python, demoScript()],
    options: {
      output: (o.output as string | undefined) ?? 'out/pylens-demo.html',
      threads: true,
      idle: true,
      ...(o.rate !== undefined ? { rate: o.rate } : {}),
    },
  });
}
