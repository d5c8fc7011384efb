/**
 * Benchmark: what `pylens check` adds to a CI job beyond the scenarios' own run time (issue 15).
 * A scenario (bench/workloads/check_scenario.py: ~0.3 s of CPU work, then exit) is checked with
 * each kind of budget; the check's wall time is set against the scenario's own runs timed
 * plainly the same number of times, side by side in one run.
 *
 *   node_modules/.bin/node bench/check-cost.ts [--python 3.12] [--repeat N]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { argValue, CLI, machineLine, python, WORKLOADS } from './sampler-common.ts';

const MINOR = Number((argValue('--python') ?? '3.12').split('.')[1]);
const REPEAT = Number(argValue('--repeat') ?? 5);

function wall(argv: string[], cwd: string): number {
  const t0 = performance.now();
  const r = spawnSync(argv[0]!, argv.slice(1), { cwd, stdio: 'ignore' });
  if (r.status !== 0 && r.status !== 1) throw new Error(`${argv.join(' ')} exited ${r.status}`);
  return (performance.now() - t0) / 1000;
}

function main(): void {
  const py = python(MINOR);
  if (!py) throw new Error(`no pyenv CPython 3.${MINOR}`);
  const dir = mkdtempSync(join(tmpdir(), 'pylens-check-bench-'));
  try {
    const scenario = [py.exe, join(WORKLOADS, 'check_scenario.py')];
    const budgets: [string, string, number][] = [
      ['calls', 'calls = { "__main__:encode" = { max = 1000000 } }', 1],
      ['wall-time', 'wall-time = { max = "60 s" }', REPEAT],
      ['cpu-share', 'cpu-share = { "__main__:encode" = { max = "99%" } }', REPEAT],
      ['peak-memory', 'peak-memory = "1 GB"', 1],
    ];
    console.log(`pylens check cost — a ~0.3 s scenario on ${py.label}, repeat = ${REPEAT}; ${machineLine()}`);
    console.log(`${'budget'.padEnd(12)} ${'scenario runs'.padStart(14)} ${'check'.padStart(8)} ${'added'.padStart(8)}`);
    for (const [kind, line, runs] of budgets) {
      writeFileSync(join(dir, 'pylens.toml'), `[[check]]\nname = "${kind}"\nrun = ${JSON.stringify(scenario)}\nrepeat = ${REPEAT}\n${line}\n`);
      let own = 0;
      for (let i = 0; i < runs; i++) own += wall(scenario, dir);
      const check = wall([process.execPath, CLI, 'check'], dir);
      console.log(`${kind.padEnd(12)} ${`${own.toFixed(2)} s`.padStart(14)} ${`${check.toFixed(2)} s`.padStart(8)} ${`${(check - own).toFixed(2)} s`.padStart(8)}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) main();
