/**
 * The pure parts of `pylens top`: aggregation (own vs total, recursion counted once per
 * sample, idle threads), sorting by each column, the line toggle, fitting a frame into a
 * width and height, the ANSI / plain renderings, the key parser and state machine, and
 * pause / reset in the controller.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  applyKey,
  fitLabel,
  frameToAnsi,
  frameToText,
  INITIAL_VIEW,
  parseKeys,
  renderTopFrame,
  sortRows,
  TopController,
  TopStats,
  truncateLeft,
  type LiveFrame,
  type LiveThread,
  type TopInfo,
  type TopRow,
  type ViewState,
} from '../../src/render/top-live.ts';

function f(qualname: string, line: number, file = 'app.py', firstLine = 1): LiveFrame {
  return { name: qualname.split('.').at(-1)!, qualname, file, line, firstLine };
}

/** a thread from root-first frames (easier to read), stored leaf first */
function th(rootFirst: LiveFrame[], state = 'on-cpu', holdsGil = false): LiveThread {
  return { frames: [...rootFirst].reverse(), state, holdsGil };
}

const INFO: TopInfo = { pid: 42, command: 'python3.12 app.py', version: '3.12.1', rateHz: 100 };

function row(rows: readonly TopRow[], qualname: string, line: number | null = null): TopRow {
  const r = rows.find((x) => x.qualname === qualname && (line === null || x.line === line));
  assert.ok(r, `no row for ${qualname}${line !== null ? `:${line}` : ''} in ${JSON.stringify(rows)}`);
  return r;
}

test('own counts leaves, total counts each function once per sample even when it recurses', () => {
  const s = new TopStats();
  // main → fib → fib → fib (leaf), recursion at the same line and at another line
  s.add({ threads: [th([f('main', 10), f('fib', 3), f('fib', 3), f('fib', 2)])], errors: 0 });
  // main → work (leaf)
  s.add({ threads: [th([f('main', 11), f('work', 20)])], errors: 0 });
  // main → fib (leaf)
  s.add({ threads: [th([f('main', 10), f('fib', 2)])], errors: 0 });
  const snap = s.snapshot();
  assert.equal(snap.ticks, 3);
  assert.equal(snap.samples, 3);
  const fib = row(snap.byFunction, 'fib');
  assert.equal(fib.own, 2);
  assert.equal(fib.total, 2, 'fib appears 3 times in the first stack but counts once');
  const main = row(snap.byFunction, 'main');
  assert.equal(main.own, 0);
  assert.equal(main.total, 3);
  assert.equal(row(snap.byFunction, 'work').own, 1);
  // by line: fib:3 only ever a caller (twice in one stack → 1), fib:2 the leaf twice
  assert.deepEqual([row(snap.byLine, 'fib', 3).own, row(snap.byLine, 'fib', 3).total], [0, 1]);
  assert.deepEqual([row(snap.byLine, 'fib', 2).own, row(snap.byLine, 'fib', 2).total], [2, 2]);
  assert.deepEqual([row(snap.byLine, 'main', 10).total, row(snap.byLine, 'main', 11).total], [2, 1]);
  assert.equal(snap.byFunction.length, 3);
  assert.equal(snap.byLine.length, 5);
});

test('idle threads stay out of the table unless idle; header counters see every thread', () => {
  const tick = {
    threads: [th([f('main', 1), f('hot', 5)], 'on-cpu', true), th([f('worker', 1), f('wait', 9, 'threading.py')], 'idle'), th([f('other', 1)], 'unknown')],
    errors: 1,
  };
  const s = new TopStats();
  s.add(tick);
  s.add({ threads: [th([f('main', 1), f('hot', 5)], 'on-cpu', false)], errors: 0 });
  let snap = s.snapshot();
  assert.equal(snap.byFunction.some((r) => r.qualname === 'wait'), false);
  assert.ok(snap.byFunction.some((r) => r.qualname === 'other'), 'unknown state is kept');
  assert.equal(snap.threadSamples, 4);
  assert.equal(snap.samples, 3);
  assert.equal(snap.onCpu, 2);
  assert.equal(snap.gilTicks, 1);
  assert.equal(snap.errors, 1);
  assert.equal(snap.threads, 1, 'threads of the last tick');
  const withIdle = new TopStats({ idle: true });
  withIdle.add(tick);
  snap = withIdle.snapshot();
  assert.equal(row(snap.byFunction, 'wait').own, 1);
  const header = renderTopFrame(INFO, s.snapshot(), INITIAL_VIEW, { width: 200 }).map((l) => l.text);
  assert.match(header[1]!, /GIL 50\.00%/);
  assert.match(header[1]!, /Active 50\.00%/);
  assert.match(header[1]!, /Threads 1 {2}Errors 1/);
});

test('file names go through fileName once per file', () => {
  const calls: string[] = [];
  const s = new TopStats({ fileName: (x) => (calls.push(x), x.replace(/^\/srv\//, '')) });
  for (let i = 0; i < 3; i++) s.add({ threads: [th([f('main', 1, '/srv/app.py'), f('hot', 2, '/srv/app.py')])], errors: 0 });
  assert.deepEqual(calls, ['/srv/app.py']);
  assert.equal(s.snapshot().byLine[0]!.file, 'app.py');
});

const ROWS: TopRow[] = [
  { qualname: 'a', file: 'x.py', line: 1, own: 5, total: 5 },
  { qualname: 'b', file: 'x.py', line: 2, own: 1, total: 9 },
  { qualname: 'c', file: 'x.py', line: 3, own: 3, total: 3 },
  { qualname: 'd', file: 'x.py', line: 4, own: 3, total: 7 },
];

test('sorting: each column, and reverse', () => {
  const names = (sort: number, rev = false) => sortRows(ROWS, sort, rev).map((r) => r.qualname).join('');
  assert.equal(names(0), 'adcb', '%Own, ties by total');
  assert.equal(names(2), 'adcb', 'OwnTime sorts like %Own');
  assert.equal(names(1), 'bdac', '%Total');
  assert.equal(names(3), 'bdac');
  assert.equal(names(4), 'abcd', 'function ascending');
  assert.equal(names(0, true), 'bcda');
  assert.equal(names(4, true), 'dcba');
  // keys drive it
  let v: ViewState = INITIAL_VIEW;
  v = applyKey(v, '2').state;
  assert.equal(v.sort, 1);
  v = applyKey(v, 'right').state;
  v = applyKey(v, 'right').state;
  v = applyKey(v, 'right').state;
  v = applyKey(v, 'right').state;
  assert.equal(v.sort, 4, 'right stops at the last column');
  v = applyKey(v, 'left').state;
  assert.equal(v.sort, 3);
  v = applyKey(v, 'r').state;
  assert.equal(v.reverse, true);
  assert.equal(applyKey(v, 'r').state.reverse, false);
});

test('line toggle switches between function+line rows and function rows', () => {
  const s = new TopStats();
  s.add({ threads: [th([f('main', 1), f('hot', 5)])], errors: 0 });
  s.add({ threads: [th([f('main', 1), f('hot', 6)])], errors: 0 });
  s.add({ threads: [th([f('main', 2), f('cold', 9)])], errors: 0 });
  const ctl = new TopController(INFO, s);
  const table = () => ctl.frame(0, { width: 120 }).map((l) => l.text).slice(4);
  let t = table();
  assert.match(t[0]!, /Function \(file:line\)$/);
  assert.equal(t.filter((l) => /hot \(app\.py:\d\)/.test(l)).length, 2);
  assert.equal(ctl.key('l', 0), 'redraw');
  t = table();
  assert.match(t[0]!, /Function \(file\)$/);
  assert.equal(t.filter((l) => /hot \(app\.py\)/.test(l)).length, 1);
  assert.match(t[1]!, /^ +66\.67% +66\.67% +0\.02s +0\.02s {2}hot \(app\.py\)$/, 'hot merged: 2 of 3 ticks, 2 samples / 100 Hz');
  assert.match(t.find((l) => l.includes('main'))!, /^ +0\.00% +100\.00% +0\.00s +0\.03s {2}main \(app\.py\)$/);
});

test('labels are cut from the left: directories first, then the function name', () => {
  assert.equal(fitLabel('hot', 'app.py:5', 40), 'hot (app.py:5)');
  assert.equal(fitLabel('hot', '/very/long/path/to/app.py:5', 22), 'hot (..th/to/app.py:5)');
  assert.equal(fitLabel('hot', '/very/long/path/to/app.py:5', 16), 'hot (..app.py:5)');
  const cut = fitLabel('Outer.method.<locals>.inner', '/p/app.py:5', 26);
  assert.equal(cut.length, 26);
  assert.match(cut, /^\.\..*\.inner \(\.\.app\.py:5\)$/);
  assert.equal(fitLabel('x', 'f\x1b[2J.py:1', 40), 'x (f?[2J.py:1)', 'control characters are not passed to the terminal');
  assert.equal(truncateLeft('abcdef', 4), '..ef');
  assert.equal(truncateLeft('ab', 4), 'ab');
  assert.equal(truncateLeft('åßçdéf', 5), '..déf', 'code points, not UTF-16 units');
});

test('a frame fits the width and height; rows are cut, footer at the bottom', () => {
  const s = new TopStats();
  for (let i = 0; i < 30; i++) s.add({ threads: [th([f('main', 1, '/a/very/long/directory/name/that/goes/on/main.py'), f(`fn_with_a_rather_long_name_${i}`, i + 10, '/a/very/long/directory/name/that/goes/on/main.py')])], errors: 0 });
  const snap = s.snapshot();
  for (const width of [50, 80, 120]) {
    for (const height of [3, 10, 24]) {
      const frame = renderTopFrame(INFO, snap, INITIAL_VIEW, { width, height, footer: true });
      assert.equal(frame.length, height, `${width}x${height}`);
      for (const l of frame) assert.ok(Array.from(l.text).length <= width, `${width}x${height}: ${JSON.stringify(l.text)} too wide`);
      assert.match(frame.at(-1)!.text, /^Keys: 1-5/);
      assert.equal(frame.at(-1)!.style, 'reverse');
    }
  }
  const frame = renderTopFrame(INFO, snap, INITIAL_VIEW, { width: 80, height: 12, footer: true });
  assert.equal(frame.filter((l) => /long_name_\d+ \(/.test(l.text)).length, 12 - 5 - 1);
  assert.match(frame[5]!.text, /\.\.main\.py:1\d\)$/, 'long path cut from the left');
  // no height: maxRows rows and a "more" line
  const text = frameToText(renderTopFrame(INFO, snap, INITIAL_VIEW, { width: Infinity, maxRows: 10 }));
  assert.equal(text.split('\n').filter((l) => /fn_with/.test(l)).length, 10);
  assert.match(text, /\.\.\. 21 more rows/);
  assert.doesNotMatch(text, /\x1b/);
  assert.match(text, /\/a\/very\/long\/directory\/name\/that\/goes\/on\/main\.py/, 'no truncation without a width');
});

test('ANSI frame: home, clear, bold/reverse only, no newline after the last line', () => {
  const s = new TopStats();
  s.add({ threads: [th([f('main', 1), f('hot', 2)])], errors: 0 });
  const lines = renderTopFrame(INFO, s.snapshot(), INITIAL_VIEW, { width: 60, height: 10, footer: true });
  const out = frameToAnsi(lines, 60);
  assert.ok(out.startsWith('\x1b[H'));
  assert.ok(out.endsWith('\x1b[J'));
  assert.equal(out.split('\r\n').length, 10);
  const escapes = new Set(out.match(/\x1b\[[0-9;?]*[A-Za-z]/g));
  for (const e of escapes) assert.ok(['\x1b[H', '\x1b[K', '\x1b[J', '\x1b[0m', '\x1b[1m', '\x1b[7m'].includes(e), `unexpected escape ${JSON.stringify(e)}`);
  // a line exactly as wide as the screen gets no clear-to-end (it would erase its last column)
  const full = frameToAnsi([{ text: 'x'.repeat(60), style: 'plain' }], 60);
  assert.equal(full, '\x1b[H' + 'x'.repeat(60) + '\x1b[J');
});

test('parseKeys: characters, arrows in CSI and SS3 form, Ctrl-C, unknown sequences', () => {
  assert.deepEqual(parseKeys('l2q'), ['l', '2', 'q']);
  assert.deepEqual(parseKeys('\x1b[C\x1b[D\x1bOC\x1b[1;5D'), ['right', 'left', 'right', 'left']);
  assert.deepEqual(parseKeys('\x03'), ['ctrl-c']);
  assert.deepEqual(parseKeys('\x1b[15~x'), ['unknown', 'x']);
  assert.deepEqual(parseKeys('\x1b'), ['escape']);
  assert.deepEqual(parseKeys(' p'), [' ', 'p']);
});

test('applyKey: quit keys, reset effect, unknown keys do nothing', () => {
  for (const k of ['q', 'Q', 'ctrl-c']) assert.equal(applyKey(INITIAL_VIEW, k).effect, 'quit');
  assert.equal(applyKey(INITIAL_VIEW, 'x').effect, 'reset');
  assert.deepEqual(applyKey(INITIAL_VIEW, 'z'), { state: INITIAL_VIEW, effect: 'none' });
  assert.equal(applyKey(INITIAL_VIEW, ' ').state.paused, true);
  assert.equal(applyKey(applyKey(INITIAL_VIEW, 'p').state, 'p').state.paused, false);
  assert.equal(applyKey(INITIAL_VIEW, 'l').state.lines, false);
});

test('pause freezes the display while counting goes on; reset clears the counts', () => {
  const s = new TopStats({ startNs: 0 });
  const ctl = new TopController(INFO, s);
  const hot = { threads: [th([f('main', 1), f('hot', 2)])], errors: 0 };
  const cold = { threads: [th([f('main', 1), f('cold', 3)])], errors: 0 };
  ctl.add(hot, 1e9);
  assert.equal(ctl.key('p', 1e9), 'redraw');
  assert.equal(ctl.view.paused, true);
  ctl.add(cold, 2e9);
  ctl.add(cold, 3e9);
  let snap = ctl.snapshot(3e9);
  assert.equal(snap.ticks, 1, 'frozen at the pause');
  assert.equal(snap.elapsedS, 1);
  assert.equal(snap.byFunction.some((r) => r.qualname === 'cold'), false);
  let text = frameToText(ctl.frame(3e9, { width: 120 }));
  assert.match(text, /\[PAUSED\]/);
  // the view still reacts while paused (sort, lines) on the frozen data
  ctl.key('l', 3e9);
  assert.match(frameToText(ctl.frame(3e9, { width: 120 })), /hot \(app\.py\)/);
  ctl.key('l', 3e9);
  ctl.key(' ', 3e9);
  assert.equal(ctl.view.paused, false);
  snap = ctl.snapshot(3e9);
  assert.equal(snap.ticks, 3, 'sampling went on while paused');
  assert.equal(row(snap.byFunction, 'cold').own, 2);
  text = frameToText(ctl.frame(3e9, { width: 120 }));
  assert.doesNotMatch(text, /PAUSED/);
  // reset
  assert.equal(ctl.key('x', 4e9), 'redraw');
  snap = ctl.snapshot(4e9);
  assert.equal(snap.ticks, 0);
  assert.equal(snap.byFunction.length, 0);
  assert.equal(snap.elapsedS, 4, 'elapsed runs from the start');
  assert.equal(snap.windowS, 0);
  assert.match(frameToText(ctl.frame(4e9, { width: 120 })), /no samples yet/);
  ctl.add(hot, 5e9);
  snap = ctl.snapshot(5e9);
  assert.equal(snap.ticks, 1);
  assert.equal(snap.windowS, 1);
  assert.match(frameToText(ctl.frame(5e9, { width: 120 })), /Samples\/s 1\.0/);
  // reset while paused shows the cleared counts at once, still paused
  ctl.key('p', 5e9);
  ctl.add(hot, 6e9);
  ctl.key('x', 6e9);
  assert.equal(ctl.view.paused, true);
  assert.equal(ctl.snapshot(7e9).ticks, 0);
  ctl.add(hot, 7e9);
  assert.equal(ctl.snapshot(7e9).ticks, 0, 'still frozen');
  assert.equal(ctl.key('q', 7e9), 'quit');
});
