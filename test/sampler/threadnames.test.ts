/**
 * Thread names (threadnames.ts) against live CPython 3.8–3.13: the map read out of process
 * must equal what the script itself reports through the public API
 * (`{t.ident: t.name for t in threading.enumerate()}`), for names of every string kind,
 * a Thread subclass, a name set after start, threads whose attributes moved out of the
 * shared-key values into a real dict, and a `_DummyThread`. Plus: a process without
 * `threading`, torn reads, the ThreadNames cache, and the generated layout sections.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dumpProcess, type DumpResult } from '../../src/capture/sampler/dump.ts';
import { layoutFor, SUPPORTED_LAYOUTS, type Layout } from '../../src/capture/sampler/layouts/index.ts';
import { BadReadError, BaseMemory, ImageMemory, ProcMemory, type Address, type ProcessMemory } from '../../src/capture/sampler/memory.ts';
import { locateRuntime } from '../../src/capture/sampler/runtime.ts';
import { hasObjectLayout, mainInterpreter, ObjectReader, readThreadNames, ThreadNames } from '../../src/capture/sampler/threadnames.ts';
import { parseArgs } from '../../src/cli/args.ts';
import { dumpSpec, runDump } from '../../src/cli/dump.ts';
import { firstLine, installedPythons } from './pythons.ts';
import { captureStdout } from '../helpers/stdout.ts';

const SCRIPT = String.raw`import threading, time, sys, json, _thread
ev = threading.Event()

class Sub(threading.Thread):
    def run(self):
        ev.wait()

names = ["worker-\u03b1", "io_pool_1", "x" * 200, "caf\u00e9", "\U0001f9f5 spool"]
ts = [threading.Thread(target=ev.wait, name=n, daemon=True) for n in names]
ts.append(Sub(name="subclassed", daemon=True))
late = threading.Thread(target=ev.wait, daemon=True)
ts.append(late)
# attributes no longer in the shared-key values: a materialised __dict__, and one grown
# past what shared keys hold
mat = threading.Thread(target=ev.wait, name="materialised", daemon=True)
mat.__dict__["marker"] = 1
ts.append(mat)
rich = threading.Thread(target=ev.wait, name="rich", daemon=True)
for i in range(40):
    setattr(rich, "extra_%d" % i, i)
ts.append(rich)
for t in ts:
    t.start()
late.name = "renamed-after-start"
# a thread not started by threading: current_thread() registers a _DummyThread for it
got = threading.Event()
def raw():
    threading.current_thread()
    got.set()
    ev.wait()
_thread.start_new_thread(raw, ())
got.wait()
# a finished thread is gone from _active
done = threading.Thread(target=lambda: None, name="finished")
done.start(); done.join()
truth = {str(t.ident): t.name for t in threading.enumerate()}
print(json.dumps({"main": threading.get_ident(), "late": late.ident, "truth": truth}), flush=True)
ev.wait(60)
`;

const dir = mkdtempSync(join(tmpdir(), 'pylens-threadnames-'));
const scriptPath = join(dir, 'threadnames_script.py');
writeFileSync(scriptPath, SCRIPT);
test.after(() => rmSync(dir, { recursive: true, force: true }));

interface Ready {
  main: number;
  late: number;
  truth: Record<string, string>;
}

/** JSON numbers lose precision above 2^53: re-read the idents as bigints from the raw text. */
function parseReady(line: string): { main: bigint; late: bigint; truth: Map<bigint, string> } {
  const doc = JSON.parse(line) as Ready;
  const main = BigInt(/"main": (\d+)/.exec(line)![1]!);
  const late = BigInt(/"late": (\d+)/.exec(line)![1]!);
  return { main, late, truth: new Map(Object.entries(doc.truth).map(([k, v]) => [BigInt(k), v])) };
}


interface Attached {
  mem: ProcMemory;
  layout: Layout;
  interp: Address;
  minor: number;
}

function attach(pid: number): Attached {
  const rt = locateRuntime(pid);
  const layout = layoutFor(rt.version.major, rt.version.minor);
  assert.ok(layout, `layout for ${rt.version.text}`);
  const mem = ProcMemory.open(pid);
  return { mem, layout, interp: mainInterpreter(mem, layout, rt.runtimeAddress), minor: rt.version.minor };
}

/** A memory that fails (BadReadError) or returns corrupted bytes on a random share of reads. */
class FlakyMemory extends BaseMemory {
  private inner: ProcessMemory;
  private state: number;
  private p: number;
  private mode: 'fail' | 'corrupt';
  reads = 0;
  constructor(inner: ProcessMemory, seed: number, p: number, mode: 'fail' | 'corrupt') {
    super();
    this.inner = inner;
    this.state = seed >>> 0 || 1;
    this.p = p;
    this.mode = mode;
  }
  private rnd(): number {
    // xorshift32
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state / 2 ** 32;
  }
  read(addr: Address, len: number): Uint8Array {
    this.reads++;
    if (this.mode === 'fail' && this.rnd() < this.p) throw new BadReadError(addr, len, 'injected');
    const b = this.inner.read(addr, len);
    if (this.mode === 'corrupt' && this.rnd() < this.p) {
      const c = b.slice();
      for (let i = 0; i < 4; i++) c[Math.floor(this.rnd() * c.length)] = Math.floor(this.rnd() * 256);
      return c;
    }
    return b;
  }
  close(): void {}
}

class CountingMemory extends BaseMemory {
  private inner: ProcessMemory;
  reads = 0;
  constructor(inner: ProcessMemory) {
    super();
    this.inner = inner;
  }
  read(addr: Address, len: number): Uint8Array {
    this.reads++;
    return this.inner.read(addr, len);
  }
  close(): void {}
}

const pythons = installedPythons().filter((p) => p.minor >= 8 && p.minor <= 13);

test('installed interpreters cover 3.8–3.13 (else the live tests below prove little)', (t) => {
  const minors = new Set(pythons.map((p) => p.minor));
  t.diagnostic(`live: ${pythons.map((p) => p.label).join(', ')}`);
  for (const m of [8, 9, 10, 11, 12, 13]) if (!minors.has(m)) t.diagnostic(`3.${m} not installed: not tested live`);
  assert.ok(pythons.length > 0, 'no CPython 3.8–3.13 installed');
});

for (const py of pythons) {
  test(`readThreadNames on live ${py.label}: exactly the names the process reports`, async (t) => {
    const child: ChildProcess = spawn(py.exe, [scriptPath], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const ready = parseReady(await firstLine(child, py.exe));
      const pid = child.pid!;
      const { truth } = ready;
      // the script's own view holds what we set up (else the comparison below proves little)
      assert.equal(truth.get(ready.main), 'MainThread');
      assert.equal(truth.get(ready.late), 'renamed-after-start');
      const expectNames = ['worker-α', 'io_pool_1', 'x'.repeat(200), 'café', '🧵 spool', 'subclassed', 'materialised', 'rich'];
      for (const n of expectNames) assert.ok([...truth.values()].includes(n), `script reports ${n}`);
      assert.ok([...truth.values()].some((n) => /^Dummy-\d+$/.test(n)), 'script reports a _DummyThread');
      assert.equal(truth.size, 11, 'main, 9 started here, 1 dummy');

      const a = attach(pid);
      try {
        assert.equal(a.minor, py.minor);
        const names = readThreadNames(a.mem, a.layout, a.interp, a.minor);
        assert.deepEqual(names, truth);

        // every way of keeping instance attributes was read: shared-key values (3.11
        // pre-header, 3.12 tagged word), 3.13 inline values, a real dict (split or combined)
        assert.ok(hasObjectLayout(a.layout));
        const L = a.layout;
        const r: ObjectReader = new ObjectReader(a.mem, L);
        const md = a.mem.readPtr(r.dictGetStr(a.mem.readPtr(a.interp + L.interp.modules), 'threading') + L.module.md_dict);
        const storage = new Map<string | null, string>();
        for (const { value } of r.dictItems(r.dictGetStr(md, '_active'))) storage.set(r.readStr(r.instanceAttr(value, '_name'), 20), r.instanceStorage(value).kind);
        const kinds = py.minor <= 10 ? ['dict', 'dict', 'dict'] : py.minor <= 12 ? ['values', 'dict', 'dict'] : ['inline', 'inline', 'dict'];
        assert.deepEqual(['MainThread', 'materialised', 'rich'].map((n) => storage.get(n)), kinds, 'attribute storage per version');

        // bounded names: cut with an ellipsis
        const short = readThreadNames(a.mem, a.layout, a.interp, a.minor, { maxNameChars: 50 });
        assert.equal([...short.values()].find((n) => n.startsWith('xxx')), 'x'.repeat(50) + '…');
        assert.equal(short.get(ready.main), 'MainThread');
        // bounded thread count
        assert.equal(readThreadNames(a.mem, a.layout, a.interp, a.minor, { maxThreads: 3 }).size, 3);
        // no page cache: same answer
        assert.deepEqual(readThreadNames(a.mem, a.layout, a.interp, a.minor, { pageCache: false }), truth);

        // the cached wrapper answers every ident
        const tn = new ThreadNames(a.mem, a.layout, a.interp, a.minor);
        for (const [ident, name] of truth) assert.equal(tn.get(ident), name);
        assert.equal(tn.reads, 1, 'one read for all known idents');
        // the interpreter resolved at each read
        const lazy = new ThreadNames(a.mem, a.layout, () => a.interp, a.minor);
        assert.equal(lazy.get(ready.main), 'MainThread');
        const broken = new ThreadNames(a.mem, a.layout, () => { throw new BadReadError(0, 8); }, a.minor);
        assert.equal(broken.get(ready.main), undefined);
      } finally {
        a.mem.close();
      }

      // pylens dump (library and --json CLI) carries the names
      const d = dumpProcess(pid);
      assert.equal(d.threads.length, truth.size, 'one Python thread state per thread');
      for (const th of d.threads) assert.equal(th.name, truth.get(BigInt(th.pthreadId)), `name of ${th.pthreadId}`);
      const json = captureStdout(() => runDump(parseArgs(dumpSpec, ['-p', String(pid), '--json'])));
      assert.equal(json.code, 0);
      const doc = JSON.parse(json.out) as DumpResult;
      assert.deepEqual(new Map(doc.threads.map((th) => [BigInt(th.pthreadId), th.name])), truth);
      const main = doc.threads.find((th) => th.tid === pid);
      assert.equal(main?.name, 'MainThread');
      const text = captureStdout(() => runDump(parseArgs(dumpSpec, ['-p', String(pid)])));
      assert.match(text.out, new RegExp(`^Thread ${pid} \\((active|idle)\\) "MainThread"`, 'm'));
      assert.match(text.out, /^Thread \d+ \((active|idle)\) "worker-α"/m);
      t.diagnostic(`${py.label}: ${truth.size} names matched`);
    } finally {
      child.kill('SIGKILL');
    }
  });

  test(`readThreadNames on live ${py.label} without threading imported: empty, no error`, async () => {
    const code = 'import sys, time\nprint("threading" in sys.modules, flush=True)\nwhile True: time.sleep(1)';
    const child = spawn(py.exe, ['-S', '-I', '-c', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      assert.equal(await firstLine(child, py.exe), 'False', 'threading must not be imported');
      const a = attach(child.pid!);
      try {
        assert.notEqual(a.interp, 0);
        assert.deepEqual(readThreadNames(a.mem, a.layout, a.interp, a.minor), new Map());
        const tn = new ThreadNames(a.mem, a.layout, a.interp, a.minor);
        assert.equal(tn.get(1n), undefined);
      } finally {
        a.mem.close();
      }
      const d = dumpProcess(child.pid!);
      assert.equal(d.threads.length, 1);
      assert.equal(d.threads[0]!.name, undefined);
      assert.ok(!('name' in d.threads[0]!), 'no name key at all');
    } finally {
      child.kill('SIGKILL');
    }
  });
}

// Torn reads: one interpreter per minor version is enough.
const perMinor = [...new Map(pythons.map((p) => [p.minor, p])).values()].sort((x, y) => x.minor - y.minor);

for (const py of perMinor) {
  test(`readThreadNames on live ${py.label} through failing / corrupting memory: never throws`, async (t) => {
    const child = spawn(py.exe, [scriptPath], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const { truth } = parseReady(await firstLine(child, py.exe));
      const a = attach(child.pid!);
      try {
        let partial = 0;
        let complete = 0;
        for (let seed = 1; seed <= 150; seed++) {
          const names = readThreadNames(new FlakyMemory(a.mem, seed, 0.03, 'fail'), a.layout, a.interp, a.minor);
          for (const [ident, name] of names) assert.equal(name, truth.get(ident), `seed ${seed}: a failed read never invents a name`);
          if (names.size === truth.size) complete++;
          else partial++;
        }
        assert.ok(partial > 0 && complete > 0, `failures injected (${partial} partial, ${complete} complete)`);
        let nonEmpty = 0;
        for (let seed = 1; seed <= 150; seed++) {
          const names = readThreadNames(new FlakyMemory(a.mem, seed, 0.05, 'corrupt'), a.layout, a.interp, a.minor);
          assert.ok(names instanceof Map && names.size <= 4096);
          if (names.size > 0) nonEmpty++;
        }
        t.diagnostic(`${py.label}: fail mode ${complete} complete / ${partial} partial; corrupt mode ${nonEmpty} non-empty of 150`);
      } finally {
        a.mem.close();
      }
    } finally {
      child.kill('SIGKILL');
    }
  });
}

test('ThreadNames: re-reads every refreshMs, or (rate-limited, once) for an unknown ident', async (t) => {
  const py = perMinor.at(-1);
  if (!py) return t.skip('no CPython installed');
  const child = spawn(py.exe, [scriptPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const { main, truth } = parseReady(await firstLine(child, py.exe));
    const a = attach(child.pid!);
    try {
      const mem = new CountingMemory(a.mem);
      let clock = 0;
      const tn = new ThreadNames(mem, a.layout, a.interp, a.minor, { now: () => clock, refreshMs: 1000, maxRefreshMs: 1000, minRefreshMs: 100 });
      assert.equal(tn.supported, true);
      assert.equal(tn.get(main), 'MainThread');
      assert.equal(tn.reads, 1);
      const afterFirst = mem.reads;
      // a 100 Hz sampler inside the refresh window: no memory read at all
      for (clock = 10; clock < 1000; clock += 10) for (const ident of truth.keys()) tn.get(ident);
      assert.equal(tn.reads, 1);
      assert.equal(mem.reads, afterFirst, 'known idents cost no read');
      // periodic
      clock = 1000;
      assert.equal(tn.get(main), 'MainThread');
      assert.equal(tn.reads, 2);
      // unknown ident: not sooner than minRefreshMs after the last read …
      clock = 1050;
      assert.equal(tn.get(42n), undefined);
      assert.equal(tn.reads, 2);
      // … then once, and not again until the next periodic read
      clock = 1100;
      assert.equal(tn.get(42n), undefined);
      assert.equal(tn.reads, 3);
      for (clock = 1110; clock < 2100; clock += 10) assert.equal(tn.get(42n), undefined);
      assert.equal(tn.reads, 3);
      clock = 2100;
      tn.get(42n);
      assert.equal(tn.reads, 4, 'periodic read at 2100');
      // the periodic read did not find it either: it stays missing until the next one
      clock = 2200;
      assert.equal(tn.get(42n), undefined);
      assert.equal(tn.reads, 4, 'no second read right after a periodic one');
      assert.deepEqual(new Map(tn.snapshot()), truth);
      // the second read of the same process reuses where the keys were found: far fewer reads
      const before = mem.reads;
      tn.refresh();
      const warm = mem.reads - before;
      const cold = new CountingMemory(a.mem);
      readThreadNames(cold, a.layout, a.interp, a.minor);
      t.diagnostic(`${py.label}: a refresh costs ${warm} reads warm, ${cold.reads} cold`);
      assert.ok(warm <= cold.reads, `warm ${warm} ≤ cold ${cold.reads}`);
    } finally {
      a.mem.close();
    }
  } finally {
    child.kill('SIGKILL');
  }
});

test('ThreadNames: each re-read that finds nothing changed doubles the wait, up to maxRefreshMs; a change brings it back', async (t) => {
  const py = perMinor.at(-1);
  if (!py) return t.skip('no CPython installed');
  const script = String.raw`import threading, sys
ev = threading.Event()
w = threading.Thread(target=ev.wait, name="before", daemon=True)
w.start()
print(w.ident, flush=True)
for line in sys.stdin:
    w.name = line.strip()
    print("renamed", flush=True)
`;
  const child = spawn(py.exe, ['-c', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    const lines = child.stdout!.setEncoding('utf8');
    const ident = BigInt((await firstLine(child, py.exe)).trim());
    const a = attach(child.pid!);
    try {
      let clock = 0;
      const tn = new ThreadNames(a.mem, a.layout, a.interp, a.minor, { now: () => clock, refreshMs: 1000, maxRefreshMs: 8000 });
      const readsAt = (ms: number): number => ((clock = ms), tn.get(ident), tn.reads);
      assert.equal(readsAt(0), 1);
      assert.equal(tn.get(ident), 'before');
      // unchanged: read at 1000, then 2000 later, then 4000 later, then capped at 8000
      assert.equal(readsAt(999), 1);
      assert.equal(readsAt(1000), 2);
      assert.equal(readsAt(2999), 2);
      assert.equal(readsAt(3000), 3);
      assert.equal(readsAt(6999), 3);
      assert.equal(readsAt(7000), 4);
      assert.equal(readsAt(14999), 4);
      assert.equal(readsAt(15000), 5);
      assert.equal(readsAt(22999), 5, 'capped at maxRefreshMs');
      assert.equal(readsAt(23000), 6);
      // a rename: seen at the next periodic read, and the wait starts again from refreshMs
      const renamed = new Promise<void>((r) => lines.once('data', () => r()));
      child.stdin!.write('after\n');
      await renamed;
      assert.equal(readsAt(30999), 6);
      assert.equal(tn.get(ident), 'before', 'not re-read before it is due');
      assert.equal(readsAt(31000), 7);
      assert.equal(tn.get(ident), 'after');
      assert.equal(readsAt(31999), 7);
      assert.equal(readsAt(32000), 8, 'back to refreshMs after a change');
    } finally {
      a.mem.close();
    }
  } finally {
    child.kill('SIGKILL');
  }
});

test('bad arguments are programmer errors; a layout without the object sections gives no names', () => {
  const l = layoutFor(3, 12)!;
  const mem = new ImageMemory();
  assert.throws(() => readThreadNames(mem, l, -1, 12), TypeError);
  assert.throws(() => readThreadNames(mem, l, 0x1000, 7), RangeError);
  assert.throws(() => readThreadNames(mem, l, 0x1000, 11), /layout is for 3\.12/);
  assert.deepEqual(readThreadNames(mem, l, 0, 12), new Map(), 'no interpreter yet');
  assert.deepEqual(readThreadNames(mem, l, 0x1000, 12), new Map(), 'unreadable interpreter');
  const { dict_table: _a, ...older } = l;
  assert.equal(hasObjectLayout(older), false);
  assert.deepEqual(readThreadNames(mem, older, 0x1000, 12), new Map());
  assert.equal(new ThreadNames(mem, older, 0x1000, 12).get(1n), undefined);
});

/** A synthetic int object (and its type) in an ImageMemory, for ObjectReader.readInt. */
function intImage(l: Layout, value: bigint, tagged: boolean): ImageMemory {
  const G = l.long!;
  const type = new Uint8Array(l.type.size);
  const tv = new DataView(type.buffer);
  tv.setBigUint64(l.type.tp_name, 0x3000n, true);
  tv.setBigUint64(l.type.tp_flags, 0n, true);
  const digits: number[] = [];
  for (let v = value < 0n ? -value : value; v > 0n; v >>= BigInt(G.shift)) digits.push(Number(v & ((1n << BigInt(G.shift)) - 1n)));
  const obj = new Uint8Array(G.ob_digit + Math.max(1, digits.length) * 4);
  const ov = new DataView(obj.buffer);
  ov.setBigUint64(l.object.ob_type, 0x1000n, true);
  if (tagged) {
    const sign = value === 0n ? 1n : value < 0n ? 2n : 0n;
    ov.setBigUint64(G.lv_tag!, (BigInt(digits.length) << BigInt(G.non_size_bits!)) | sign, true);
  } else {
    ov.setBigInt64(G.ob_size!, BigInt(value < 0n ? -digits.length : digits.length), true);
  }
  digits.forEach((d, i) => ov.setUint32(G.ob_digit + i * 4, d, true));
  return new ImageMemory([
    [0x1000, type],
    [0x2000, obj],
    [0x3000, new TextEncoder().encode('int\0'.padEnd(64, '\0'))],
  ]);
}

test('ObjectReader.readInt: 30-bit digits, sign, zero (ob_size 3.8–3.11, lv_tag 3.12+)', () => {
  for (const minor of [11, 12, 13]) {
    const l = layoutFor(3, minor)!;
    assert.ok(hasObjectLayout(l));
    for (const v of [0n, 1n, -1n, (1n << 30n) - 1n, 1n << 30n, 140161303694208n, -(1n << 62n) - 12345n, (1n << 64n) - 1n]) {
      const r: ObjectReader = new ObjectReader(intImage(l, v, minor >= 12), l);
      assert.equal(r.readInt(0x2000), v, `3.${minor}: ${v}`);
    }
  }
});

test('generated object sections: present for every version, with the per-version shape', () => {
  for (const [, minor] of SUPPORTED_LAYOUTS) {
    const l = layoutFor(3, minor)!;
    assert.ok(hasObjectLayout(l), `3.${minor} has the object sections`);
    const K = l.dict_table;
    assert.equal(K.dk_size !== null, minor <= 10);
    assert.equal(K.dk_log2_index_bytes !== null, minor >= 11);
    assert.equal(K.entry_size, 24);
    assert.equal(K.unicode_entry_size, minor >= 11 ? 16 : null);
    assert.equal(l.dict_values.values, minor >= 13 ? 8 : 0);
    assert.equal(l.dict_values.valid !== null, minor >= 13);
    assert.equal(l.long.ob_digit, 24);
    assert.equal(l.long.shift, 30);
    assert.equal(l.long.lv_tag !== null, minor >= 12);
    assert.equal(l.module.md_dict, 16);
    assert.equal(l.type_ext.flag_heaptype, 1 << 9);
    assert.equal(l.type_ext.flag_managed_dict, minor >= 11 ? 1 << 4 : null);
    assert.equal(l.type_ext.flag_inline_values, minor >= 13 ? 1 << 2 : null);
    const I = l.instance_dict;
    assert.deepEqual(
      [I.managed_dict, I.managed_values, I.tagged_values, I.inline_values],
      minor <= 10 ? [null, null, false, null] : minor === 11 ? [-24, -32, false, null] : minor === 12 ? [-24, null, true, null] : [-24, null, false, 16],
    );
  }
  // 3.8–3.10 keys table (dict-common.h mirror): refcnt, size, lookup, usable, nentries, indices
  assert.deepEqual([8, 9, 10].map((m) => [layoutFor(3, m)!.dict_table!.dk_size, layoutFor(3, m)!.dict_table!.dk_nentries, layoutFor(3, m)!.dict_table!.dk_indices]), [
    [8, 32, 40],
    [8, 32, 40],
    [8, 32, 40],
  ]);
});
