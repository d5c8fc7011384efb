/**
 * The pytest plugin (python/pylens/pytest.py) under real pytest, and `pylens check` running it:
 * @pytest.mark.pylens budgets (calls, peak_memory) passing and failing as ordinary pytest
 * results with the numbers, bad markers, "did you mean", class markers, lazily imported
 * modules, parametrized tests; then a pytest check's table, exit code and JUnit.
 *
 * Pythons: Debian's python3 with python3-pytest (pytest 7, pluggy 1.0), pyenv's CPythons that
 * have pytest, and 3.12/3.13 (sys.monitoring) running that same pytest from another
 * CPython's site-packages (pytest is pure Python) when none of their own is installed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { installedPythons } from '../sampler/pythons.ts';

const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');
const PKG = join(import.meta.dirname, '../../python');

interface PytestPython {
  label: string;
  exe: string;
  minor: number;
  /** extra PYTHONPATH that brings pytest (borrowed site-packages) */
  path?: string;
}

function pytestPythons(): PytestPython[] {
  const has = (exe: string, path?: string) => spawnSync(exe, ['-c', 'import pytest'], { env: { ...process.env, ...(path ? { PYTHONPATH: path } : {}) } }).status === 0;
  const all = installedPythons();
  const out: PytestPython[] = all.filter((p) => has(p.exe)).map((p) => ({ label: p.label, exe: p.exe, minor: p.minor }));
  const donor = out.find((p) => p.label.startsWith('pyenv') && p.minor >= 10);
  if (donor) {
    const site = spawnSync(donor.exe, ['-c', 'import pytest, os; print(os.path.dirname(os.path.dirname(pytest.__file__)))'], { encoding: 'utf8' }).stdout.trim();
    for (const p of all) if (p.minor >= 12 && !out.some((o) => o.exe === p.exe) && has(p.exe, site)) out.push({ label: `${p.label} (pytest from ${donor.label})`, exe: p.exe, minor: p.minor, path: site });
  }
  return out;
}

const PYS = pytestPythons();
console.log(`pythons with pytest: ${PYS.map((p) => p.label).join(', ') || 'none'}`);

const DB = `def query(sql):
    return [sql]

def orders(n):
    return [query("select %d" % i) for i in range(n)]
`;

const LAZY = `def load(n):
    return [step(i) for i in range(n)]

def step(i):
    return i
`;

const TESTS = `import pytest
from app import db

@pytest.mark.pylens(calls={"app.db:query": 3})
def test_few():
    assert len(db.orders(2)) == 2

@pytest.mark.pylens(calls={"app.db:query": 3})
def test_many():
    db.orders(5)

@pytest.mark.pylens(peak_memory="1 MB")
def test_big():
    x = bytearray(5_000_000)
    del x

@pytest.mark.pylens(peak_memory="10 MB")
def test_small():
    x = bytearray(100_000)
    del x

@pytest.mark.pylens(calls={"app.db:qury": 1})
def test_typo():
    db.orders(1)

@pytest.mark.pylens(cals={"app.db:query": 1})
def test_badkey():
    pass

@pytest.mark.pylens(calls={"app.db:query": 10})
@pytest.mark.parametrize("n", [1, 20])
def test_param(n, tmp_path):
    db.orders(n)

@pytest.mark.pylens(calls={"app.db:query": 1})
class TestClass:
    def test_one(self):
        db.orders(1)

    @pytest.mark.pylens(calls={"app.db:query": 4})
    def test_closest_wins(self):
        db.orders(4)

@pytest.mark.pylens(calls={"app.lazy:step": 2})
def test_lazy_import():
    from app import lazy
    lazy.load(3)

def test_plain_fail():
    assert 1 == 2

def test_plain_pass():
    db.orders(100)
`;

function project(): { dir: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'pylens-pytest-'));
  mkdirSync(join(dir, 'app'));
  mkdirSync(join(dir, 'tests'));
  writeFileSync(join(dir, 'app/__init__.py'), '');
  writeFileSync(join(dir, 'app/db.py'), DB);
  writeFileSync(join(dir, 'app/lazy.py'), LAZY);
  writeFileSync(join(dir, 'tests/test_orders.py'), TESTS);
  // pytest's rootdir and import mode: the project's folder on sys.path, as a user's conftest would
  writeFileSync(join(dir, 'tests/conftest.py'), 'import os, sys\nsys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))\n');
  return { dir, done: () => rmSync(dir, { recursive: true, force: true }) };
}

interface Report {
  exitstatus: number;
  tests: { nodeid: string; outcome: string; message: string | null; line: number; budgets: { kind: string; spec?: string; value: number | null; verdict: string | null; error: string | null; source: { file: string; line: number } | null }[] }[];
}

test('pytest -p pylens.pytest: budgets as markers fail and pass like tests, with the numbers; bad markers and unknown names say how to fix them', { skip: PYS.length === 0 && 'no CPython with pytest (apt-get install python3-pytest)', timeout: 240_000 }, () => {
  for (const py of PYS) {
    const p = project();
    try {
      const report = join(p.dir, 'report.json');
      const r = spawnSync(py.exe, ['-m', 'pytest', '-p', 'pylens.pytest', '-p', 'no:cacheprovider', '-q', 'tests'], {
        cwd: p.dir,
        encoding: 'utf8',
        env: { ...process.env, PYTHONPATH: [PKG, py.path].filter(Boolean).join(':'), PYLENS_PYTEST_REPORT: report },
      });
      const out = r.stdout + r.stderr;
      assert.equal(r.status, 1, `${py.label}: ${out}`);
      // the failures carry the numbers, as pytest failures
      assert.match(out, /test_many\b[\s\S]*pylens budget broken: calls of app\.db:query: 5 > 3/, py.label);
      assert.match(out, /pylens budget broken: peak memory: 4\.\d MiB > 1 MB/, py.label);
      assert.match(out, /calls of app\.db:qury: module app\.db \(.*app\/db\.py\) has no function qury \(did you mean app\.db:query\?\)/, py.label);
      assert.match(out, /ERROR at setup of test_badkey[\s\S]*unknown budget 'cals' \(did you mean calls\?\)/, py.label);
      assert.doesNotMatch(out, /During handling of the above exception/, py.label);
      // the summary section
      assert.match(out, /=+ pylens budgets =+/, py.label);
      assert.match(out, /^ok {3}tests\/test_orders\.py::test_few: calls of app\.db:query: 2 <= 3$/m, py.label);
      assert.match(out, /^FAIL tests\/test_orders\.py::test_param\[20\]: calls of app\.db:query: 20 > 10$/m, py.label);
      const doc = JSON.parse(readFileSync(report, 'utf8')) as Report;
      assert.equal(doc.exitstatus, 1);
      const t = (id: string) => doc.tests.find((x) => x.nodeid === `tests/test_orders.py::${id}`)!;
      const calls = (id: string) => t(id).budgets.find((b) => b.kind === 'calls')!;
      assert.deepEqual([calls('test_few').value, calls('test_few').verdict, t('test_few').outcome], [2, 'pass', 'passed'], py.label);
      assert.deepEqual([calls('test_many').value, calls('test_many').verdict, t('test_many').outcome], [5, 'fail', 'failed'], py.label);
      assert.match(calls('test_few').source!.file, /app\/db\.py$/);
      assert.equal(calls('test_few').source!.line, 1);
      assert.equal(t('test_few').line, 4, 'the test is located at its marker');
      const big = t('test_big').budgets[0]!;
      assert.ok(big.value! >= 5_000_000 && big.value! < 5_200_000, `${py.label}: ${big.value}`);
      const small = t('test_small').budgets[0]!;
      assert.ok(small.value! >= 100_000 && small.value! < 300_000 && small.verdict === 'pass', `${py.label}: ${small.value}`);
      assert.equal(calls('test_typo').value, null);
      assert.match(calls('test_typo').error!, /did you mean app\.db:query/);
      assert.equal(t('test_badkey').outcome, 'error');
      assert.equal(calls('test_param[1]').value, 1);
      assert.equal(calls('test_param[20]').value, 20);
      // a class's marker applies to its methods; a method's own marker wins
      assert.deepEqual([calls('TestClass::test_one').value, calls('TestClass::test_one').verdict], [1, 'pass']);
      assert.deepEqual([calls('TestClass::test_closest_wins').value, calls('TestClass::test_closest_wins').verdict], [4, 'pass'], py.label);
      // a module first imported inside the test is still counted
      assert.deepEqual([calls('test_lazy_import').value, calls('test_lazy_import').verdict], [3, 'fail'], py.label);
      // tests without budgets: only failures are reported, and nothing measured them
      assert.equal(t('test_plain_fail').outcome, 'failed');
      assert.equal(t('test_plain_fail').message, 'assert 1 == 2');
      assert.equal(doc.tests.some((x) => x.nodeid.endsWith('test_plain_pass')), false);
      // every budget kept: exit 0; PYLENS_PYTEST=off measures nothing
      const keep = spawnSync(py.exe, ['-m', 'pytest', '-p', 'pylens.pytest', '-p', 'no:cacheprovider', '-q', 'tests', '-k', 'few or small or param and 1 or TestClass'], { cwd: p.dir, encoding: 'utf8', env: { ...process.env, PYTHONPATH: [PKG, py.path].filter(Boolean).join(':') } });
      assert.equal(keep.status, 0, `${py.label}: ${keep.stdout}${keep.stderr}`);
      const off = spawnSync(py.exe, ['-m', 'pytest', '-p', 'pylens.pytest', '-p', 'no:cacheprovider', '-q', 'tests', '-k', 'many'], { cwd: p.dir, encoding: 'utf8', env: { ...process.env, PYTHONPATH: [PKG, py.path].filter(Boolean).join(':'), PYLENS_PYTEST: 'off' } });
      assert.equal(off.status, 0, `${py.label}: ${off.stdout}`);
    } finally {
      p.done();
    }
  }
});

test('check with pytest = "…": a row per test and budget, tests failing for other reasons, exit 1, JUnit; a kept project exits 0; setup errors are named', { skip: PYS.length === 0 && 'no CPython with pytest (apt-get install python3-pytest)', timeout: 180_000 }, () => {
  const py = PYS.find((x) => !x.path)!;
  const p = project();
  const check = (toml: string, ...args: string[]) => {
    writeFileSync(join(p.dir, 'pyproject.toml'), toml);
    return spawnSync(process.execPath, [MAIN, 'check', ...args], { cwd: p.dir, encoding: 'utf8', env: { ...process.env, GITHUB_ACTIONS: '' } });
  };
  try {
    const r = check(`[[tool.pylens.check]]\nname = "perf tests"\npytest = "tests -q -p no:cacheprovider"\npython = "${py.exe}"\n`, '--junit', 'out/pylens.xml');
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stdout, /^ {2}tests\/test_orders\.py::test_few: calls app\.db:query ≤ 3 +2 +pass$/m);
    assert.match(r.stdout, /^ {2}tests\/test_orders\.py::test_many: calls app\.db:query ≤ 3 +5 +FAIL$/m);
    assert.match(r.stdout, /^ {2}tests\/test_orders\.py::test_big: peak memory ≤ 1 MB +4\.\d+ MiB +FAIL$/m);
    assert.match(r.stdout, /test_typo: calls app\.db:qury ≤ 1: module app\.db .* \(did you mean app\.db:query\?\)/);
    assert.match(r.stdout, /test_plain_fail passes: the test failed: assert 1 == 2/);
    assert.match(r.stdout, /test_badkey passes: the test errored: .*unknown budget 'cals'/);
    assert.match(r.stdout, /pylens check: 4 of 1\d budgets broken, 3 could not be measured/);
    // pytest's own output went to stderr, next to pylens's progress
    assert.match(r.stderr, /pylens budgets/);
    const xml = readFileSync(join(p.dir, 'out/pylens.xml'), 'utf8');
    assert.match(xml, /<testcase [^>]*name="tests\/test_orders\.py::test_many: calls app\.db:query ≤ 3"[^>]*>\s*<failure/);
    // a kept project
    const ok = check(`[[tool.pylens.check]]\nname = "kept"\npytest = ["tests", "-q", "-p", "no:cacheprovider", "-k", "few or small"]\npython = "${py.exe}"\n`, '--json');
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    const doc = JSON.parse(ok.stdout);
    assert.equal(doc.checks[0].budgets.length, 2);
    assert.deepEqual(doc.outcome, { budgets: 2, failed: 0, unsure: 0, errors: 0 });
    // no marked test and no budget of its own: said, not passed
    const none = check(`[[tool.pylens.check]]\nname = "none"\npytest = "tests -q -p no:cacheprovider -k plain_pass"\npython = "${py.exe}"\n`);
    assert.equal(none.status, 1);
    assert.match(none.stdout, /no test under pytest tests .* carries @pytest\.mark\.pylens budgets/);
    // a pytest check's own budgets time the pytest run with the plugin passive
    const timed = check(`[[tool.pylens.check]]\nname = "timed"\npytest = "tests -q -p no:cacheprovider -k plain_pass"\npython = "${py.exe}"\nrepeat = 2\nwall-time = { max = "60 s" }\n`);
    assert.equal(timed.status, 0, timed.stdout + timed.stderr);
    assert.match(timed.stdout, /wall time ≤ 60 s \(median of 2\) +[\d.]+ m?s/);
    // an interpreter without pytest
    const bare = installedPythons().find((x) => !PYS.some((y) => y.exe === x.exe && !y.path));
    if (bare) {
      const b = check(`[[tool.pylens.check]]\nname = "bare"\npytest = "tests"\npython = "${bare.exe}"\n`);
      assert.equal(b.status, 1);
      assert.match(b.stdout, /exited with 1 and wrote no pylens report: .*No module named pytest.* \(is pytest installed for .*\? set python = "…" in the check\)/);
    }
    // configuration errors
    const both = check(`[[tool.pylens.check]]\nname = "x"\nrun = "python3 a.py"\npytest = "tests"\n`);
    assert.equal(both.status, 2);
    assert.match(both.stderr, /pyproject\.toml:4: pytest: check "x" has both run and pytest/);
    const stray = check(`[[tool.pylens.check]]\nname = "x"\nrun = "python3 a.py"\npython = "python3"\ncalls = { "a:f" = 1 }\n`);
    assert.equal(stray.status, 2);
    assert.match(stray.stderr, /pyproject\.toml:4: python: python names the interpreter of a pytest check/);
  } finally {
    p.done();
  }
});
