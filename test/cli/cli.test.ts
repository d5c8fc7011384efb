import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers/format-checks.ts';
import { ProfileBuilder } from '../../src/model/builder.ts';
import { encodePylens, decodePylens } from '../../src/formats/pylens.ts';
import { foldedStacks } from '../../src/model/query.ts';

const MAIN = join(ROOT, 'src', 'cli', 'main.ts');

function pylens(args: string[], cwd = ROOT) {
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd, encoding: 'utf8' });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'pylens-cli-'));
}

function sampleProfileFile(dir: string): string {
  const b = new ProfileBuilder({ meta: { backend: 'test', mode: 'cpu', name: 'demo' } });
  const main = b.frame({ name: 'main', file: '/app/main.py', line: 5 });
  const hot = b.frame({ name: 'hot', qualname: 'Worker.hot', file: '/app/work.py', line: 42 });
  const cold = b.frame({ name: 'cold', file: '/app/work.py', line: 60 });
  const t1 = b.thread(10, 10, 'MainThread');
  const t2 = b.thread(10, 11, 'pool-1');
  for (let i = 0; i < 30; i++) b.sample(b.stackOf([main, hot]), 1, t1, 'on-cpu', i * 1e7);
  for (let i = 0; i < 10; i++) b.sample(b.stackOf([main, cold]), 1, t2, 'idle', i * 1e7);
  const path = join(dir, 'demo.pylens');
  writeFileSync(path, encodePylens(b.build()));
  return path;
}

test('--version and --help', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const v = pylens(['--version']);
  assert.equal(v.code, 0);
  assert.equal(v.out.trim(), `pylens ${pkg.version}`);
  const h = pylens(['--help']);
  assert.equal(h.code, 0);
  for (const c of ['convert', 'view', 'report']) assert.match(h.out, new RegExp(`\\n  ${c} `));
});

test('every command has --help with examples', () => {
  for (const c of ['convert', 'view', 'report', 'record', 'dump']) {
    const r = pylens([c, '--help']);
    assert.equal(r.code, 0, c);
    assert.match(r.out, /Usage: pylens /);
    assert.match(r.out, /Examples:\n  pylens /);
  }
});

test('--help and -h after -- are the launched program\u2019s, not pylens\u2019s', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pylens-help-'));
  try {
    const out = join(dir, 'p.pylens');
    const r = pylens(['record', '-o', out, '--', 'python3', '-c', 'import sys; print(sys.argv[1:])', '--help', '-h']);
    assert.equal(r.code, 0, r.err);
    assert.doesNotMatch(r.out, /Usage: pylens/);
    assert.match(r.out, /\['--help', '-h'\]/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('usage errors exit 2 with one line and the fix', () => {
  const cases: Array<[string[], RegExp]> = [
    [[], /Usage: pylens <command>/],
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['report'], /missing argument/],
    [['report', 'x', '--by', 'package'], /--by must be one of function, line, file, module/],
    [['report', 'x', '--limit', 'many'], /--limit expects a number/],
    [['convert', 'x.folded'], /missing -o OUT/],
    [['convert', 'x.folded', '-o', 'out.weird'], /cannot tell the output format from 'out\.weird'/],
    [['report', 'x', '--bogus'], /unknown option --bogus/],
  ];
  for (const [args, re] of cases) {
    const r = pylens(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, re, args.join(' '));
    if (args.length) assert.match(r.err, /fix: run 'pylens/);
  }
});

test('failures exit 1 naming the file, with a fix', () => {
  const dir = tmp();
  const missing = pylens(['report', join(dir, 'nope.folded')]);
  assert.equal(missing.code, 1);
  assert.match(missing.err, /cannot read '.*nope\.folded': no such file\n  fix: check the path/);
  const junk = join(dir, 'junk.bin');
  writeFileSync(junk, Buffer.from([0, 1, 2, 3, 255, 254, 10, 0]));
  const unknown = pylens(['report', junk]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.err, /junk\.bin: not a profile format pylens knows/);
  const good = readFileSync(sampleProfileFile(dir));
  const cut = join(dir, 'cut.pylens');
  writeFileSync(cut, good.subarray(0, good.length - 20));
  const truncated = pylens(['report', cut]);
  assert.equal(truncated.code, 1);
  assert.match(truncated.err, /cut\.pylens at byte 12: .*truncated/);
  assert.match(truncated.err, /fix: /);
  assert.equal(truncated.err.trim().split('\n').length, 2, 'one line plus the fix');
});

test('report: text and json, by function and line, filters', () => {
  const dir = tmp();
  const f = sampleProfileFile(dir);
  const text = pylens(['report', f]);
  assert.equal(text.code, 0, text.err);
  assert.match(text.out, /Worker\.hot/);
  // provenance first: lens, tool, mode; the overhead, or that an import carries none
  assert.match(text.out, /^Profile: \w+ lens · test · cpu.* · \d+ samples$/m);
  assert.match(text.out, /^Overhead: not recorded \(imported from /m);
  const j = JSON.parse(pylens(['report', f, '--json']).out);
  assert.equal(j.grandTotal, 40);
  assert.equal(j.rows[0].name, 'Worker.hot');
  assert.equal(j.rows[0].self, 30);
  assert.equal(j.rows[0].selfPct, 75);
  const main = j.rows.find((r: { name: string }) => r.name === 'main');
  assert.equal(main.total, 40);
  const idle = JSON.parse(pylens(['report', f, '--json', '--state', 'idle']).out);
  assert.equal(idle.grandTotal, 10);
  assert.equal(idle.rows[0].name, 'cold');
  const t = JSON.parse(pylens(['report', f, '--json', '--tid', '10']).out);
  assert.equal(t.grandTotal, 30);
  const lim = JSON.parse(pylens(['report', f, '--json', '-n', '1']).out);
  assert.equal(lim.rows.length, 1);
  // --limit 0 is every row, in text as in JSON
  const all = pylens(['report', f, '--limit', '0']);
  assert.equal(all.out.split('\n').filter((l) => /^\s*[\d.]+%/.test(l)).length, j.rows.length, all.out);
  assert.doesNotMatch(all.out, /showing the top|more functions/);
  const focused = JSON.parse(pylens(['report', f, '--json', '--focus', 'Worker.hot']).out);
  assert.equal(focused.grandTotal, 30);
  const bad = pylens(['report', f, '--state', 'sleepy']);
  assert.equal(bad.code, 2);
});

test('convert: format from extension or --format; output re-imports', () => {
  const dir = tmp();
  const f = sampleProfileFile(dir);
  const src = decodePylens(readFileSync(f));
  const out = join(dir, 'copy.pylens');
  const r = pylens(['convert', f, '-o', out]);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out.trim(), out);
  assert.deepEqual(foldedStacks(decodePylens(readFileSync(out))), foldedStacks(src));
  const forced = join(dir, 'copy.bin');
  assert.equal(pylens(['convert', f, '-o', forced, '--format', 'pylens']).code, 0);
  assert.ok(existsSync(forced));
});

test('view writes a self-contained page and prints its path', () => {
  const dir = tmp();
  const f = sampleProfileFile(dir);
  const r = pylens(['view', f], dir);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out.trim(), join(dir, 'demo.html'));
  const html = readFileSync(join(dir, 'demo.html'), 'utf8');
  assert.match(html, /<html/i);
  assert.doesNotMatch(html, /<script[^>]+src=["']https?:/i);
});

test('report on a call-counting profile (cProfile dump): pstats columns, the same numbers as python -m pstats, sortable; JSON rows', { skip: spawnSync('python3', ['-V']).status !== 0 && 'no python3' }, () => {
  const dir = tmp();
  const dump = join(dir, 'x.pstats');
  const py = spawnSync('python3', ['-c', `import cProfile\ndef f(n):\n    return sum(i * i for i in range(n))\ndef g():\n    for _ in range(20):\n        f(2000)\ncProfile.run('g()', ${JSON.stringify(dump)})`], { encoding: 'utf8' });
  assert.equal(py.status, 0, py.stderr);
  const theirs = spawnSync('python3', ['-c', `import pstats\npstats.Stats(${JSON.stringify(dump)}).sort_stats('calls').print_stats()`], { encoding: 'utf8' }).stdout;
  const r = pylens(['report', dump, '--sort', 'calls', '-n', '0']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^ncalls +tottime +percall +cumtime +percall +filename:lineno\(function\)$/m);
  assert.match(r.out, /^Ordered by: call count \(times in seconds\)$/m);
  // every function's ncalls and cumtime as pstats prints them
  const rows = (text: string) => new Map([...text.matchAll(/^\s*(\d+(?:\/\d+)?)\s+[\d.]+\s+[\d.]+\s+([\d.]+)\s+[\d.]+\s+(\S.*\((?:f|g)\))$/gm)].map((m) => [m[3]!.replace(/^.*:(\d+)\((\w+)\)$/, '$2:$1'), `${m[1]} ${m[2]}`]));
  const mine = rows(r.out);
  const ref = rows(theirs);
  assert.equal(mine.size, 2, r.out);
  assert.deepEqual(mine, ref);
  // the genexpr is called 20 × 2001 times: it leads by calls
  assert.match(r.out.split('\n').find((l) => /^\s*\d+\s+[\d.]+\s/.test(l))!, /^\s*40020\s.*genexpr/);
  const j = JSON.parse(pylens(['report', dump, '--json', '-n', '3', '--sort', 'self']).out);
  assert.equal(j.pstats.length, 3);
  assert.ok(j.pstats[0].tottime >= j.pstats[1].tottime && j.pstats[1].tottime >= j.pstats[2].tottime);
  for (const k of ['function', 'file', 'line', 'ncalls', 'primitiveCalls', 'tottime', 'cumtime', 'percallTottime', 'percallCumtime']) assert.ok(k in j.pstats[0], k);
  // asking for a top table gets one
  assert.match(pylens(['report', dump, '--by', 'function']).out, /%Own/);
});

test('report header: the environment in one line (Python and its executable, OS, kernel, CPUs, host)', async () => {
  const { environmentLine } = await import('../../src/render/header.ts');
  assert.equal(
    environmentLine({ python: { version: '3.12.1', implementation: 'CPython', executable: '/usr/bin/python3' }, os: 'Debian GNU/Linux 12 (bookworm)', kernel: '6.1.0-18-amd64', cpuCores: 8, cpuModel: 'EPYC', hostname: 'web-1' }),
    'CPython 3.12.1 (/usr/bin/python3) · Debian GNU/Linux 12 (bookworm) · Linux 6.1.0-18-amd64 · 8 CPUs (EPYC) · host web-1',
  );
  assert.equal(environmentLine({ kernel: 'Linux 6.18.44' }), 'Linux 6.18.44');
  assert.equal(environmentLine({}), '');
});
