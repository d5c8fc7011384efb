/**
 * `pylens store` from the command line: add files of several formats (a real cProfile dump
 * among them), list with filters as a table and JSON, export to another format, remove, gc;
 * `--save` on a recording; and the errors: bad labels, no store, unknown ids and subcommands.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { installedPythons } from '../sampler/pythons.ts';

const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');
const py = installedPythons().find((p) => p.minor === 11) ?? installedPythons()[0]!;

test('store add | ls | export | rm | gc, and --save on count; errors name what is wrong', { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'pylens-store-cli-'));
  const DB = join(dir, 'store', 'profiles.db');
  const run = (...a: string[]) => spawnSync(process.execPath, [MAIN, ...a], { cwd: dir, encoding: 'utf8', env: { ...process.env, PYLENS_STORE: DB } });
  try {
    writeFileSync(join(dir, 'a.folded'), 'main;handler;query 7\nmain;handler;encode 3\n');
    writeFileSync(join(dir, 'app.py'), 'def f(n):\n    return sum(range(n))\nfor _ in range(50):\n    f(10000)\n');
    const prof = spawnSync(py.exe, ['-m', 'cProfile', '-o', join(dir, 'app.pstats'), 'app.py'], { cwd: dir });
    assert.equal(prof.status, 0, String(prof.stderr));
    // nothing stored yet: ls says where it looked
    const none = run('store', 'ls');
    assert.equal(none.status, 1);
    assert.match(none.stderr, /no profile store at .*profiles\.db/);
    const add = run('store', 'add', 'a.folded', 'app.pstats', '--label', 'env=ci,team=perf');
    assert.equal(add.status, 0, add.stderr);
    assert.match(add.stdout, /^#1\ta\.folded\ta\t10 samples$/m);
    assert.match(add.stdout, /^#2\tapp\.pstats\t/m);
    const ls = run('store', 'ls');
    assert.match(ls.stdout, /^id +started +service +lens +mode +samples +duration +labels$/m);
    assert.match(ls.stdout, /2 of 2 profiles in .*profiles\.db/);
    assert.match(ls.stdout, /env=ci,team=perf/);
    const js = JSON.parse(run('store', 'ls', '--json', '--function', 'query').stdout) as { total: number; profiles: { id: number; labels: Record<string, string> }[] };
    assert.equal(js.total, 1);
    assert.equal(js.profiles[0]!.id, 1);
    // a count run saved as well
    const count = run('count', '--function', '__main__:f', '--save', '--label', 'kind=count', '--', py.exe, 'app.py');
    assert.equal(count.status, 0, count.stderr);
    assert.match(count.stderr, /pylens count: saved as #3 in /);
    assert.equal(JSON.parse(run('store', 'ls', '--json', '--where', 'kind=count').stdout).profiles[0].lens, 'interpreter');
    // export to another format, readable again
    const ex = run('store', 'export', '1', '-o', 'out/a.speedscope.json');
    assert.equal(ex.status, 0, ex.stderr);
    assert.match(readFileSync(join(dir, 'out/a.speedscope.json'), 'utf8'), /speedscope/);
    assert.equal(run('report', 'out/a.speedscope.json', '--json').status, 0);
    // remove, gc
    assert.match(run('store', 'rm', '#2').stdout, /removed 1 profile/);
    assert.match(run('store', 'gc', '--older-than', '30d').stdout, /removed 0 profiles/);
    assert.equal(JSON.parse(run('store', 'ls', '--json').stdout).total, 2);
    // errors
    const cases: [string[], number, RegExp][] = [
      [['store', 'rm', '99'], 1, /no profile #99 in .*profiles\.db/],
      [['store', 'rm', 'x1'], 2, /'x1' is not a profile id/],
      [['store', 'export', '1'], 2, /needs -o OUT/],
      [['store', 'gc', '--older-than', 'soon'], 2, /'soon' is not an age/],
      [['store', 'frob'], 2, /unknown subcommand 'frob'/],
      [['store', 'add', 'missing.folded'], 1, /missing\.folded/],
      [['store', 'add', 'a.folded', '--label', 'novalue'], 2, /label 'novalue' is not key=value/],
      [['record', '--label', 'a=b', '--', py.exe, 'app.py'], 2, /--label labels a saved profile: add --save/],
      [['store', 'ls', '--since', 'tuesday'], 2, /--since 'tuesday' is neither an age/],
    ];
    for (const [args, code, re] of cases) {
      const r = run(...args);
      assert.equal(r.status, code, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re, args.join(' '));
    }
    // a file that is not a store
    writeFileSync(join(dir, 'notes.db'), 'plain text notes, definitely not an SQLite database file at all.........');
    const bad = run('store', 'ls', '--store', 'notes.db');
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /notes\.db is not a pylens profile store/);
    assert.ok(existsSync(DB));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
