/**
 * Benchmark (issue 18): how fast pylens starts, installed from its npm tarball against run
 * from the clone (Node strips the TypeScript on the fly), side by side in one run,
 * alternating:
 * - `pylens --version`: wall time of the whole process;
 * - `pylens record -- python prog.py`: from the spawn to the program's first line (its own
 *   time.time(); the launch gate holds it until the sampler is attached) and to the first
 *   sample (the profile's start time plus its first sample's offset).
 * The tarball is packed and installed into a temporary prefix first (npm pack, npm install -g
 * --prefer-offline). Prints medians and ranges.
 *
 *   node_modules/.bin/node bench/startup.ts [--runs 10] [--python 3.12]
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { decodePylens } from '../src/formats/pylens.ts';
import { argValue, CLI, machineLine, median, python, ROOT } from './sampler-common.ts';

const RUNS = Number(argValue('--runs') ?? 10);
const py = python(Number((argValue('--python') ?? '3.12').split('.')[1]));
if (!py) throw new Error('no pyenv CPython for --python');
const dir = mkdtempSync(join(tmpdir(), 'pylens-startup-'));

function must(r: ReturnType<typeof spawnSync>, what: string): void {
  if (r.status !== 0) throw new Error(`${what} failed: ${String(r.stderr)}`);
}

try {
  const pack = spawnSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: ROOT, encoding: 'utf8' });
  must(pack, 'npm pack');
  const info = (JSON.parse(pack.stdout) as Array<{ filename: string; size: number; unpackedSize: number }>)[0]!;
  const prefix = join(dir, 'prefix');
  mkdirSync(prefix);
  must(spawnSync('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', join(dir, info.filename)], { encoding: 'utf8' }), 'npm install -g');
  const installed = join(prefix, 'bin', 'pylens');
  const env = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH}` };
  const variants: Array<{ name: string; argv: string[] }> = [
    { name: 'installed (npm tarball)', argv: [installed] },
    { name: 'clone (node src/cli/main.ts)', argv: [process.execPath, CLI] },
  ];
  const prog = join(dir, 'prog.py');
  writeFileSync(prog, 'import time, json, sys\nt0 = time.time()\nwith open(sys.argv[1], "w") as f: json.dump(t0, f)\nend = t0 + 0.2\nwhile time.time() < end: pass\n');

  const version = new Map<string, number[]>();
  const toLine = new Map<string, number[]>();
  const toSample = new Map<string, number[]>();
  for (let i = 0; i < RUNS; i++) {
    for (const v of i % 2 ? [...variants].reverse() : variants) {
      let t = performance.now();
      must(spawnSync(v.argv[0]!, [...v.argv.slice(1), '--version'], { env }), `${v.name} --version`);
      (version.get(v.name) ?? version.set(v.name, []).get(v.name)!).push(performance.now() - t);
      const out = join(dir, `r${i}.pylens`);
      const first = join(dir, `first${i}.json`);
      const spawnedAt = Date.now();
      t = performance.now();
      must(spawnSync(v.argv[0]!, [...v.argv.slice(1), 'record', '-r', '1000', '-q', '-o', out, '--', py.exe, prog, first], { env, encoding: 'utf8' }), `${v.name} record`);
      const firstLine = Number(readFileSync(first, 'utf8')) * 1000;
      const p = decodePylens(readFileSync(out), out);
      const firstSample = Date.parse(p.meta.startTime ?? '') + Number(p.samples.time?.[0] ?? NaN) / 1e6;
      (toLine.get(v.name) ?? toLine.set(v.name, []).get(v.name)!).push(firstLine - spawnedAt);
      (toSample.get(v.name) ?? toSample.set(v.name, []).get(v.name)!).push(firstSample - spawnedAt);
    }
  }
  const fmt = (xs: number[]) => `${median(xs).toFixed(0)} ms (${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})`;
  console.log(`startup, ${RUNS} runs each alternating; ${py.label}; ${machineLine()}`);
  console.log(`tarball ${(info.size / 1e6).toFixed(2)} MB, unpacked ${(info.unpackedSize / 1e6).toFixed(2)} MB`);
  console.log(`${'variant'.padEnd(30)} ${'--version'.padEnd(22)} ${'record: to first line'.padEnd(24)} record: to first sample`);
  for (const v of variants) console.log(`${v.name.padEnd(30)} ${fmt(version.get(v.name)!).padEnd(22)} ${fmt(toLine.get(v.name)!).padEnd(24)} ${fmt(toSample.get(v.name)!)}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
