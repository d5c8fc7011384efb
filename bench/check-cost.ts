/**
 * Benchmark: what `pylens check` adds to a CI job beyond the scenarios' own run time (issue 15).
 * A scenario (bench/workloads/check_scenario.py: ~0.3 s of CPU work, then exit) is checked with
 * each kind of budget; the check's wall time is set against the scenario's own runs timed
 * plainly the same number of times, side by side in one run.
 *
 *   node_modules/.bin/node bench/check-cost.ts [--python 3.12] [--repeat N]
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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
    pytestRow(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A pytest check: 40 tests, each ~20 ms of calls, every one marked with a calls and a
 * peak_memory budget; plain pytest against `pylens check` (one pytest run with the plugin
 * measuring each test). Debian's python3 with python3-pytest.
 */
function pytestRow(dir: string): void {
  const exe = '/usr/bin/python3';
  if (spawnSync(exe, ['-c', 'import pytest'], { stdio: 'ignore' }).status !== 0) {
    console.log('pytest       (skipped: no pytest for /usr/bin/python3; apt-get install python3-pytest)');
    return;
  }
  mkdirSync(join(dir, 'tests'), { recursive: true });
  writeFileSync(join(dir, 'tests/work.py'), 'def step(i):\n    return i * i\n\ndef run(n):\n    return sum(step(i) for i in range(n))\n');
  const tests = ['import os, sys', 'sys.path.insert(0, os.path.dirname(__file__))', 'import pytest, work', ''];
  for (let i = 0; i < 40; i++) tests.push(`@pytest.mark.pylens(calls={"work:step": 10**9}, peak_memory="1 GB")`, `def test_${i}():`, '    work.run(20000)', '');
  writeFileSync(join(dir, 'tests/test_many.py'), tests.join('\n'));
  writeFileSync(join(dir, 'pylens.toml'), `[[check]]\nname = "pytest"\npytest = "tests -q -p no:cacheprovider"\npython = "${exe}"\n`);
  const plain = wall([exe, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', 'tests'], dir);
  const check = wall([process.execPath, CLI, 'check'], dir);
  const version = spawnSync(exe, ['-c', 'import pytest; print(pytest.__version__)'], { encoding: 'utf8' }).stdout.trim();
  console.log(`${'pytest (40)'.padEnd(12)} ${`${plain.toFixed(2)} s`.padStart(14)} ${`${check.toFixed(2)} s`.padStart(8)} ${`${(check - plain).toFixed(2)} s`.padStart(8)}   (Debian python3, pytest ${version}: every test's calls counted with sys.setprofile and tracemalloc on)`);
}

if (import.meta.main) main();
