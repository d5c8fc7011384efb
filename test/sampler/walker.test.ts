import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { layoutFor } from '../../src/capture/sampler/layouts/index.ts';
import { addTypeObjects, putStruct } from './synthetic.ts';
import { BadReadError, BaseMemory, ImageMemory, ProcMemory, type Address } from '../../src/capture/sampler/memory.ts';
import { locateRuntime } from '../../src/capture/sampler/runtime.ts';
import { CodeTypeCheck, readCode, readUnicode, walkThreads, type Frame, type ThreadStack } from '../../src/capture/sampler/walker.ts';
import { firstLine, installedPythons } from './pythons.ts';

// ---- synthetic ----------------------------------------------------------------------

function unicodeObject(minor: number, text: string, kind: 1 | 2 | 4, ascii: boolean): Uint8Array {
  const L = layoutFor(3, minor)!.unicode;
  const start = ascii ? L.ascii_size : L.compact_size;
  const cps = [...text].map((c) => c.codePointAt(0)!);
  const b = new Uint8Array(start + (cps.length + 1) * kind);
  const d = new DataView(b.buffer);
  d.setBigInt64(L.length, BigInt(cps.length), true);
  d.setUint32(L.state, (kind << 2) | (1 << 5) | (ascii ? 1 << 6 : 0), true);
  cps.forEach((cp, i) => {
    if (kind === 1) d.setUint8(start + i, cp);
    else if (kind === 2) d.setUint16(start + i * 2, cp, true);
    else d.setUint32(start + i * 4, cp, true);
  });
  return b;
}

test('readUnicode: compact ASCII, latin-1, UCS2, UCS4 on 3.11 and 3.12 layouts; length bound', () => {
  for (const minor of [11, 12]) {
    const layout = layoutFor(3, minor)!;
    const cases: [string, 1 | 2 | 4, boolean][] = [
      ['<module>', 1, true],
      ['größe', 1, false],
      ['汉字', 2, false],
      ['𠀀x', 4, false],
      ['', 1, true],
    ];
    for (const [text, kind, ascii] of cases) {
      const mem = new ImageMemory([[0x1000, unicodeObject(minor, text, kind, ascii)]]);
      assert.equal(readUnicode(mem, layout, 0x1000), text, `3.${minor} ${text}`);
    }
    const long = new ImageMemory([[0x1000, unicodeObject(minor, 'x'.repeat(5000), 1, true)]]);
    assert.throws(() => readUnicode(long, layout, 0x1000), /length 5000/);
  }
});

/** A synthetic 3.10 process: runtime, one interpreter, thread states and frames built from the layout. */
function synthetic310(threads: { frames: Address[]; next?: Address }[], frameLinks: Map<Address, Address>) {
  const layout = layoutFor(3, 10)!;
  const mem = new ImageMemory();
  const put = (addr: Address, size: number, fill: (d: DataView) => void) => putStruct(mem, addr, size, fill);
  const RT = 0x10000;
  const INTERP = 0x20000;
  const CODE = 0x30000;
  const NAME = 0x31000;
  const FILE = 0x32000;
  const TABLE = 0x33000;
  const typeOf = addTypeObjects(mem, layout, 0x34000);
  const typed = (b: Uint8Array, t: keyof typeof typeOf) => {
    new DataView(b.buffer, b.byteOffset).setBigUint64(layout.object.ob_type, BigInt(typeOf[t]), true);
    return b;
  };
  mem.add(NAME, typed(unicodeObject(10, 'f', 1, true), 'str'));
  mem.add(FILE, typed(unicodeObject(10, 'x.py', 1, true), 'str'));
  put(TABLE, layout.bytes.ob_sval + 2, (d) => {
    d.setBigUint64(layout.object.ob_type, BigInt(typeOf.bytes), true);
    d.setBigInt64(layout.bytes.ob_size, 2n, true);
    d.setUint8(layout.bytes.ob_sval, 100); // 100 bytes of bytecode ...
    d.setUint8(layout.bytes.ob_sval + 1, 1); // ... on firstlineno + 1
  });
  put(CODE, layout.code.size, (d) => {
    d.setBigUint64(layout.object.ob_type, BigInt(typeOf.code), true);
    d.setInt32(layout.code.firstlineno, 7, true);
    d.setBigUint64(layout.code.name, BigInt(NAME), true);
    d.setBigUint64(layout.code.filename, BigInt(FILE), true);
    d.setBigUint64(layout.code.linetable, BigInt(TABLE), true);
  });
  put(RT, 64, (d) => d.setBigUint64(layout.runtime.interpreters_head, BigInt(INTERP), true));
  const tstates = threads.map((_, i) => 0x40000 + i * 0x1000);
  put(INTERP, 64, (d) => d.setBigUint64(layout.interp.threads_head, BigInt(tstates[0]!), true));
  threads.forEach((t, i) => {
    put(tstates[i]!, layout.tstate.size, (d) => {
      d.setBigUint64(layout.tstate.next, BigInt(t.next ?? tstates[i + 1] ?? 0), true);
      d.setBigUint64(layout.tstate.frame!, BigInt(t.frames[0] ?? 0), true);
      d.setBigUint64(layout.tstate.thread_id, BigInt(1000 + i), true);
    });
  });
  for (const t of threads) {
    for (const f of t.frames) {
      if (f >= 0xdead0000) continue; // unmapped on purpose
      put(f, layout.frame.size, (d) => {
        d.setBigUint64(layout.frame.code, BigInt(CODE), true);
        d.setBigUint64(layout.frame.previous, BigInt(frameLinks.get(f) ?? 0), true);
        d.setInt32(layout.frame.lasti!, 10, true); // byte 20: line 8
      });
    }
  }
  return { mem, layout, rt: { runtimeAddress: RT } };
}

test('walkThreads (synthetic 3.10): cycles, unmapped frames and depth caps stay inside their thread', () => {
  const A = 0x50000;
  const B = 0x51000;
  const C = 0x52000;
  const D = 0x53000;
  const BAD = 0xdead0000;
  // thread 0: A → B → A (cycle); thread 1: C → unmapped; thread 2: D alone; the thread list loops back to thread 0
  const links = new Map([[A, B], [B, A], [C, BAD]]);
  const { mem, layout, rt } = synthetic310([{ frames: [A, B] }, { frames: [C, BAD] }, { frames: [D], next: 0x40000 }], links);
  const threads = walkThreads(mem, rt, layout, { major: 3, minor: 10 });
  assert.equal(threads.length, 3, 'the looping thread list is followed once');
  assert.match(threads[0]!.error!, /loops at 0x50000/);
  assert.match(threads[1]!.error!, /cannot read .* at 0xdead0000/);
  assert.equal(threads[2]!.tid, 1002);
  assert.equal(threads[2]!.pthreadId, 1002n);
  assert.deepEqual(threads[2]!.frames, [{ name: 'f', qualname: 'f', file: 'x.py', line: 8, firstLine: 7 }]);
  const capped = walkThreads(mem, rt, layout, { major: 3, minor: 10 }, { maxDepth: 1 });
  assert.equal(capped[0]!.frames!.length, 1);
  assert.equal(capped[0]!.truncated, true);
  assert.throws(() => walkThreads(mem, rt, layout, { major: 3, minor: 7 }), /no stack walker/);
});

// ---- live processes -----------------------------------------------------------------

const DEPTH = 1500;

const SCRIPT = `import sys, threading, time
sys.setrecursionlimit(10000)
events = []

def leaf():
    time.sleep(60)  # @leaf

class K:
    def middle(self):
        leaf()  # @middle

def outer():
    K().middle()  # @outer

def worker():
    ev.set()
    time.sleep(60)  # @worker

def gen_body():
    ev.set()
    time.sleep(60)  # @gen
    yield 1

def gen_driver():
    next(gen_body())  # @gendriver

def 𠀀():
    ev.set()
    time.sleep(60)  # @ucs4

def 汉字():
    𠀀()  # @ucs2

def größe():
    汉字()  # @latin1

def recurse(n):
    if n:
        return recurse(n - 1)  # @recurse
    ev.set()
    time.sleep(60)  # @deep

ids = {}
def start(name, target, *args):
    global ev
    ev = threading.Event()
    t = threading.Thread(target=target, args=args, name=name, daemon=True)
    t.start()
    ev.wait()
    ids[name] = (t.native_id, t.ident)

start("worker", worker)
start("unicode", größe)
start("deep", recurse, ${DEPTH})
start("gen", gen_driver)
ids["main"] = (threading.get_native_id(), threading.get_ident())
print("ready", " ".join(f"{k}={v[0]},{v[1]}" for k, v in ids.items()), flush=True)
outer()  # @module
`;

function lineOf(marker: string): number {
  const i = SCRIPT.split('\n').findIndex((l) => l.endsWith(`# @${marker}`));
  assert.ok(i >= 0, marker);
  return i + 1;
}
function defLine(name: string): number {
  const i = SCRIPT.split('\n').findIndex((l) => l.trimStart().startsWith(`def ${name}(`));
  assert.ok(i >= 0, name);
  return i + 1;
}

async function startScript(exe: string, path: string): Promise<{ child: ChildProcess; ids: Map<string, [number, bigint]> }> {
  const child = spawn(exe, [path], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const line = await firstLine(child, exe);
    const ids = new Map<string, [number, bigint]>();
    for (const kv of line.split(' ').slice(1)) {
      const [k, v] = kv.split('=') as [string, string];
      const [native, ident] = v.split(',') as [string, string];
      ids.set(k, [Number(native), BigInt(ident)]);
    }
    // "ready" is printed just before outer(): give the main thread time to block in leaf().
    await new Promise((r) => setTimeout(r, 300));
    return { child, ids };
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
}

/** Fails the first `layout.frame.size`-byte read: the first frame of the first thread walked. */
class FailFirstFrameRead extends BaseMemory {
  private inner: ProcMemory;
  private size: number;
  private failed = false;
  constructor(inner: ProcMemory, size: number) {
    super();
    this.inner = inner;
    this.size = size;
  }
  read(addr: Address, len: number): Uint8Array {
    if (!this.failed && len === this.size) {
      this.failed = true;
      throw new BadReadError(addr, len, 'injected');
    }
    return this.inner.read(addr, len);
  }
  close(): void {}
}

const brief = (f: Frame) => `${f.qualname}@${f.line}`;

const pythons = installedPythons().filter((p) => p.minor >= 8 && p.minor <= 13);
const dir = mkdtempSync(join(tmpdir(), 'pylens-walker-'));
const scriptPath = join(dir, 'walker_scrïpt.py');
writeFileSync(scriptPath, SCRIPT);
test.after(() => rmSync(dir, { recursive: true, force: true }));

for (const py of pythons) {
  test(`walkThreads on live ${py.label}`, async (t) => {
    const { child, ids } = await startScript(py.exe, scriptPath);
    let mem: ProcMemory | undefined;
    try {
      const rt = locateRuntime(child.pid!);
      const layout = layoutFor(rt.version.major, rt.version.minor)!;
      assert.ok(layout);
      mem = ProcMemory.open(child.pid!);
      const threads = walkThreads(mem, rt, layout, rt.version);
      const minor = rt.version.minor;
      const q = (name: string, qual: string) => (minor >= 11 ? qual : name);

      assert.equal(threads.length, 5, threads.map((th) => th.error ?? th.frames!.map(brief).join(' < ')).join('\n'));
      for (const th of threads) assert.equal(th.error, undefined, th.error);
      // identity: native TID on 3.11+, pthread_t (threading.get_ident) everywhere
      const byName = new Map<string, ThreadStack>();
      for (const [name, [native, ident]] of ids) {
        const th = threads.find((x) => x.pthreadId === ident);
        assert.ok(th, `thread ${name} (ident ${ident}) not found`);
        if (minor >= 11) assert.equal(th.tid, native, name);
        else assert.equal(BigInt(th.tid), ident, name);
        byName.set(name, th);
      }
      assert.equal(byName.get('main')!.tid, minor >= 11 ? child.pid : Number(ids.get('main')![1]));
      assert.equal(threads.at(-1), byName.get('main'), 'main thread last');

      // main thread: exactly leaf, middle, outer, <module>
      const main = byName.get('main')!.frames!;
      assert.deepEqual(
        main.map((f) => ({ name: f.name, qualname: f.qualname, file: f.file, line: f.line, firstLine: f.firstLine })),
        [
          { name: 'leaf', qualname: 'leaf', file: scriptPath, line: lineOf('leaf'), firstLine: defLine('leaf') },
          { name: 'middle', qualname: q('middle', 'K.middle'), file: scriptPath, line: lineOf('middle'), firstLine: defLine('middle') },
          { name: 'outer', qualname: 'outer', file: scriptPath, line: lineOf('outer'), firstLine: defLine('outer') },
          { name: '<module>', qualname: '<module>', file: scriptPath, line: lineOf('module'), firstLine: 1 },
        ],
      );

      const threadTail = (frames: Frame[], n: number) => {
        const tail = frames.slice(n);
        assert.ok(tail.length >= 2, 'threading frames below the target');
        for (const f of tail) assert.match(f.file, /threading\.py$/, brief(f));
        assert.equal(tail.at(-1)!.name, '_bootstrap');
      };

      const worker = byName.get('worker')!.frames!;
      assert.deepEqual(worker.slice(0, 1).map(brief), [`worker@${lineOf('worker')}`]);
      threadTail(worker, 1);

      const uni = byName.get('unicode')!.frames!;
      assert.deepEqual(uni.slice(0, 3).map(brief), [`𠀀@${lineOf('ucs4')}`, `汉字@${lineOf('ucs2')}`, `größe@${lineOf('latin1')}`]);
      threadTail(uni, 3);

      const gen = byName.get('gen')!.frames!;
      assert.deepEqual(gen.slice(0, 2).map(brief), [`gen_body@${lineOf('gen')}`, `gen_driver@${lineOf('gendriver')}`]);
      threadTail(gen, 2);

      const deep = byName.get('deep')!.frames!;
      const rec = deep.filter((f) => f.name === 'recurse');
      assert.equal(rec.length, DEPTH + 1);
      assert.deepEqual(deep.slice(0, DEPTH + 1), rec, 'recurse frames are contiguous at the leaf end');
      assert.equal(rec[0]!.line, lineOf('deep'));
      for (const f of rec.slice(1)) assert.equal(f.line, lineOf('recurse'));
      threadTail(deep, DEPTH + 1);

      // without the page cache the result is the same
      assert.deepEqual(walkThreads(mem, rt, layout, rt.version, { pageCache: false }), threads);

      // a capped walk is marked truncated
      const capped = walkThreads(mem, rt, layout, rt.version, { maxDepth: 100 });
      const cappedDeep = capped.find((x) => x.pthreadId === byName.get('deep')!.pthreadId)!;
      assert.equal(cappedDeep.frames!.length, 100);
      assert.equal(cappedDeep.truncated, true);

      // a read error in one thread is that thread's error, the others still walk
      const failing = walkThreads(new FailFirstFrameRead(mem, layout.frame.size), rt, layout, rt.version, { pageCache: false });
      assert.equal(failing.length, 5);
      assert.match(failing[0]!.error ?? '', /injected/);
      assert.equal(failing[0]!.frames, undefined);
      for (const th of failing.slice(1)) assert.ok(th.frames && th.frames.length > 0);

      // timing: one full walk (≈1,500 + 20 frames, 4 threads), cold and warm code cache
      const median = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1]!.toFixed(0);
      const time = (opts: Parameters<typeof walkThreads>[4]) => {
        const xs: number[] = [];
        for (let i = 0; i < 20; i++) {
          const t0 = performance.now();
          walkThreads(mem!, rt, layout, rt.version, opts);
          xs.push((performance.now() - t0) * 1000);
        }
        return median(xs);
      };
      const cache = new Map();
      walkThreads(mem, rt, layout, rt.version, { cache });
      const frames = threads.reduce((n, th) => n + th.frames!.length, 0);
      t.diagnostic(
        `${py.label}: one full walk, ${threads.length} threads / ${frames} frames, median µs: ` +
          `${time({ cache })} (page cache + warm code cache), ${time({})} (page cache, cold code cache), ` +
          `${time({ cache, pageCache: false })} (no page cache, warm code cache); ` +
          `shallow (maxDepth 10, ${walkThreads(mem, rt, layout, rt.version, { maxDepth: 10 }).reduce((n, th) => n + th.frames!.length, 0)} frames): ` +
          `${time({ cache, maxDepth: 10 })} (page cache + warm code cache)`,
      );
    } finally {
      mem?.close();
      child.kill('SIGKILL');
    }
  });
}

test('readCode type-checks what a torn read may hand it: a code object, str names, a bytes line table', () => {
  const { mem, layout } = synthetic310([{ frames: [] }], new Map());
  const types = new CodeTypeCheck(mem, layout);
  // 0x30000 is the code object, 0x31000 its name (a str), 0x33000 its line table (bytes)
  const ok = readCode(mem, layout, 10, 0x30000, new Map(), undefined, types);
  assert.equal(ok.name, 'f');
  assert.throws(() => readCode(mem, layout, 10, 0x31000, new Map(), undefined, types), /the frame's code object at 0x31000 is a "str" object, not code/);
  // a code object whose co_name points at the line table
  const code = mem.read(0x30000, layout.code.size).slice();
  new DataView(code.buffer).setBigUint64(layout.code.name, 0x33000n, true);
  mem.add(0x90000, code);
  assert.throws(() => readCode(mem, layout, 10, 0x90000, new Map(), undefined, types), /co_name at 0x33000 is a "bytes" object, not str/);
});
