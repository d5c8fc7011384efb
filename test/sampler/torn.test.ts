/**
 * The torn-walk validator and the re-reads, on synthetic memory images (walker.ts): a
 * "flipbook" memory shows the target one way until it is refreshed and the next way after,
 * as a running target does between two reads of the same thread; a "camera" stands behind the
 * page cache's twinned pictures, each page's two copies from two images of the target.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { layoutFor } from '../../src/capture/sampler/layouts/index.ts';
import { addTypeObjects, putAsciiStr, putCode, putStruct } from './synthetic.ts';
import { BaseMemory, ImageMemory, ProcMemory, type Address } from '../../src/capture/sampler/memory.ts';
import { syscalls } from '../../src/capture/sampler/syscalls.ts';
import { PageCacheMemory, walkStack, walkThreads, type RefreshableMemory, type ThreadStack } from '../../src/capture/sampler/walker.ts';

/** A memory that shows `images[k]` after k refreshes (the last one from then on). */
class Flipbook extends BaseMemory implements RefreshableMemory {
  private images: ImageMemory[];
  refreshes = 0;
  constructor(images: ImageMemory[]) {
    super();
    this.images = images;
  }
  read(addr: Address, len: number): Uint8Array {
    return this.images[Math.min(this.refreshes, this.images.length - 1)]!.read(addr, len);
  }
  refresh(): void {
    this.refreshes++;
  }
  close(): void {}
}

interface FrameSpec {
  addr: Address;
  /** the code object: 'f' (a function), 'g' (a generator's code: co_flags CO_GENERATOR) */
  code: 'f' | 'g';
  previous: Address;
  /** 3.11+: frame owner (0 thread, 1 generator, 3 C-stack entry) */
  owner?: number;
  /** 3.8/3.9 f_executing, 3.10 f_state */
  state?: number;
}

const RT = 0x10000;
const INTERP = 0x20000;
const TSTATE = 0x40000;
const CFRAME = 0x48000;
const CODE_F = 0x30000;
const CODE_G = 0x30400;

/** One thread whose stack is `frames` (leaf first), for CPython 3.`minor`; its current frame `current` (default: the leaf). */
function image(minor: number, frames: FrameSpec[], current?: Address): ImageMemory {
  const layout = layoutFor(3, minor)!;
  const mem = new ImageMemory();
  const put = (addr: Address, size: number, fill: (d: DataView) => void) => putStruct(mem, addr, size, fill);
  const typeOf = addTypeObjects(mem, layout, 0x34000);
  const str = (at: Address, text: string) => putAsciiStr(mem, layout, at, text, typeOf.str);
  const TABLE = 0x33000;
  put(TABLE, layout.bytes.ob_sval + 2, (d) => {
    d.setBigUint64(layout.object.ob_type, BigInt(typeOf.bytes), true);
    d.setBigInt64(layout.bytes.ob_size, 0n, true);
  });
  str(0x31000, 'x.py');
  for (const [at, name, flags] of [
    [CODE_F, 'f', 0],
    [CODE_G, 'gen', 0x20],
  ] as const) {
    str(at + 0x200, name);
    putCode(mem, layout, at, { codeType: typeOf.code, name: at + 0x200, file: 0x31000, table: TABLE, firstLine: 7, flags });
  }
  put(RT, layout.runtime.interpreters_head + 8, (d) => d.setBigUint64(layout.runtime.interpreters_head, BigInt(INTERP), true));
  put(INTERP, Math.max(128, layout.interp.threads_head + 8), (d) => d.setBigUint64(layout.interp.threads_head, BigInt(TSTATE), true));
  const leaf = current ?? frames[0]?.addr ?? 0;
  put(TSTATE, layout.tstate.size, (d) => {
    d.setBigUint64(layout.tstate.thread_id, 1000n, true);
    if (minor <= 10) d.setBigUint64(layout.tstate.frame!, BigInt(leaf), true);
    else if (minor <= 12) d.setBigUint64(layout.tstate.cframe!, BigInt(CFRAME), true);
    else d.setBigUint64(layout.tstate.current_frame!, BigInt(leaf), true);
  });
  if (minor === 11 || minor === 12) put(CFRAME, 16, (d) => d.setBigUint64(layout.cframe.current_frame!, BigInt(leaf), true));
  for (const f of frames) {
    const code = f.code === 'f' ? CODE_F : CODE_G;
    put(f.addr, layout.frame.size, (d) => {
      d.setBigUint64(layout.frame.code, BigInt(code), true);
      d.setBigUint64(layout.frame.previous, BigInt(f.previous), true);
      if (minor <= 10) {
        d.setInt32(layout.frame.lasti!, 4, true);
        // executing unless said otherwise: 3.8/3.9 f_executing = 1, 3.10 f_state = EXECUTING (0)
        d.setInt8(minor <= 9 ? layout.frame.executing! : layout.frame.state!, f.state ?? (minor <= 9 ? 1 : 0));
      } else {
        d.setUint8(layout.frame.owner!, f.owner ?? 0);
        d.setBigUint64(layout.frame.instr_ptr!, BigInt(code + layout.code.code_adaptive! + 8), true);
      }
    });
  }
  return mem;
}

const A = 0x50000;
const B = 0x51000;
const C = 0x52000;
const S = 0x53000;
const names = (t: ThreadStack) => (t.frames ?? []).map((f) => f.name).join(' < ');

/** a whole stack, leaf first: f (A) < gen (B) < f (C), plus the C-stack entry frame S on 3.12+ */
function whole(minor: number): FrameSpec[] {
  const base = minor >= 12 ? [{ addr: S, code: 'f' as const, previous: 0, owner: 3 }] : [];
  return [
    { addr: A, code: 'f', previous: B },
    { addr: B, code: 'g', previous: C, owner: 1 },
    { addr: C, code: 'f', previous: base.length ? S : 0 },
    ...base,
  ];
}

/** the leaf part of a walk that caught a generator just after it yielded: gen has no caller */
function tornAtGenerator(minor: number): FrameSpec[] {
  return [
    { addr: A, code: 'f', previous: B },
    { addr: B, code: 'g', previous: 0, owner: 1, ...(minor <= 9 ? { state: 0 } : minor === 10 ? { state: -1 } : {}) },
  ];
}

const walk = (mem: ImageMemory | Flipbook, minor: number, opts: Parameters<typeof walkThreads>[4] = {}) =>
  walkThreads(mem, { runtimeAddress: RT }, layoutFor(3, minor)!, { major: 3, minor }, { pageCache: false, ...opts })[0]!;

for (const minor of [8, 9, 10, 11, 12]) {
  test(`3.${minor}: a whole stack validates on the first read`, () => {
    const t = walk(image(minor, whole(minor)), minor);
    assert.equal(names(t), 'f < gen < f');
    assert.equal(t.truncated, undefined);
    assert.equal(t.retries, undefined);
  });

  test(`3.${minor}: a walk that ends at a generator with no caller is torn, read again, and the next read is kept`, () => {
    const w = walkStack(image(minor, tornAtGenerator(minor)), layoutFor(3, minor)!, minor, TSTATE);
    assert.equal(w.complete, false, 'the validator catches it');
    assert.ok(w.why);
    const mem = new Flipbook([image(minor, tornAtGenerator(minor)), image(minor, whole(minor))]);
    const t = walk(mem, minor);
    assert.equal(names(t), 'f < gen < f');
    assert.equal(t.retries, 1);
    assert.equal(t.truncated, undefined);
  });

  test(`3.${minor}: a stack torn on every read is kept under the truncated mark, never passed off as whole`, () => {
    const mem = new Flipbook([image(minor, tornAtGenerator(minor))]);
    const t = walk(mem, minor, { maxRetries: 3 });
    // the frames read before the tear (before 3.11 the suspended generator itself fails the check)
    assert.equal(names(t), minor <= 10 ? 'f' : 'f < gen', 'the longest partial read');
    assert.equal(t.truncated, true);
    assert.equal(t.torn, true);
    assert.equal(t.retries, 3);
    assert.equal(mem.refreshes, 3);
  });

  test(`3.${minor}: after the re-reads, the thread is stopped and read once more; it is resumed exactly once`, () => {
    const torn = image(minor, tornAtGenerator(minor));
    const mem = new Flipbook([torn, torn, torn, image(minor, whole(minor))]);
    let resumed = 0;
    const asked: number[] = [];
    const t = walk(mem, minor, {
      maxRetries: 2,
      pause: {
        first: false,
        pause: (th) => {
          asked.push(th.tid);
          return () => resumed++;
        },
      },
    });
    assert.equal(names(t), 'f < gen < f');
    assert.equal(t.paused, true);
    assert.deepEqual(asked, [minor >= 11 ? 0 : 1000]);
    assert.equal(resumed, 1);
  });
}

test('3.8/3.9 and 3.10: a frame that returned or was freed (not executing) tears the walk', () => {
  for (const [minor, state] of [
    [8, 0],
    [10, 1],
    [10, -2],
  ] as const) {
    // under the innermost frame (which may be caught entering or leaving: see below)
    const frames = whole(minor).map((f, i) => (i === 1 ? { ...f, state } : f));
    const w = walkStack(image(minor, frames), layoutFor(3, minor)!, minor, TSTATE);
    assert.equal(w.complete, false, `3.${minor} state ${state}`);
    assert.match(w.why!, /not executing/);
  }
  // the innermost frame caught entering (created) or leaving (suspended), linked to its caller: a real stack
  for (const [minor, state] of [
    [9, 0],
    [10, -2],
    [10, -1],
  ] as const) {
    const frames = whole(minor).map((f, i) => (i === 0 ? { ...f, state } : f));
    assert.equal(walkStack(image(minor, frames), layoutFor(3, minor)!, minor, TSTATE).complete, true, `3.${minor} leaf state ${state}`);
  }
  // 3.10 FRAME_UNWINDING (2): an exception passing through a running frame
  const unwinding = whole(10).map((f, i) => (i === 2 ? { ...f, state: 2 } : f));
  assert.equal(walkStack(image(10, unwinding), layoutFor(3, 10)!, 10, TSTATE).complete, true);
});

test('3.12: a chain that ends anywhere but the C-stack entry frame is torn', () => {
  const noBase: FrameSpec[] = [
    { addr: A, code: 'f', previous: C },
    { addr: C, code: 'f', previous: 0 },
  ];
  const w = walkStack(image(12, noBase), layoutFor(3, 12)!, 12, TSTATE);
  assert.equal(w.complete, false);
  assert.match(w.why!, /not the thread's entry frame/);
});

test('3.12/3.13: a generator resumed from C ends at an entry frame too — a chain that ends there, right under the generator, is torn (the shim\'s link read as 0)', () => {
  for (const minor of [12, 13]) {
    // f < gen < entry shim, whose link to gen's caller was read as 0 (the C stack it lives on, reused)
    const cut: FrameSpec[] = [
      { addr: A, code: 'f', previous: B },
      { addr: B, code: 'g', previous: S, owner: 1 },
      { addr: S, code: 'f', previous: 0, owner: 3 },
    ];
    const w = walkStack(image(minor, cut), layoutFor(3, minor)!, minor, TSTATE);
    assert.equal(w.complete, false, `3.${minor}`);
    assert.match(w.why!, /generator frame with no caller/);
    // the same chain going on to the generator's caller and the thread's own entry frame is whole
    const S2 = 0x54000;
    const whole: FrameSpec[] = [
      { addr: A, code: 'f', previous: B },
      { addr: B, code: 'g', previous: S, owner: 1 },
      { addr: S, code: 'f', previous: C, owner: 3 },
      { addr: C, code: 'f', previous: S2 },
      { addr: S2, code: 'f', previous: 0, owner: 3 },
    ];
    const ok = walkStack(image(minor, whole), layoutFor(3, minor)!, minor, TSTATE);
    assert.equal(ok.complete, true, `3.${minor}: ${ok.why}`);
    assert.deepEqual(ok.frames.map((f) => f.name), ['f', 'gen', 'f']);
  }
});

test('a blocking walk stops the thread before the first read; a memory that cannot be re-read is read once', () => {
  const mem = new Flipbook([image(12, tornAtGenerator(12)), image(12, whole(12))]);
  let resumed = 0;
  let paused = 0;
  const t = walk(mem, 12, {
    pause: {
      first: true,
      pause: () => {
        paused++;
        return () => resumed++;
      },
    },
  });
  assert.equal(names(t), 'f < gen < f');
  assert.equal(t.paused, true);
  // stopped mid-yield (the first image): it runs on and is stopped again
  assert.equal(paused, 2);
  assert.equal(resumed, 2);
  // a plain image is not refreshable: one read, kept as torn
  const once = walk(image(12, tornAtGenerator(12)), 12);
  assert.equal(once.torn, true);
  assert.equal(once.retries, undefined);
});

/*
 * Twinned pictures (walker.ts, "Torn pictures"): the tick's one call copies each page twice,
 * and the walk compares the copies. A `Camera` stands in for the target behind the page
 * cache: the k-th call of `readPagesToPool` copies each page first from `shots[k][0]`, its
 * second copy from `shots[k][1]` (the target as it was a moment later); pages read on demand
 * (not in the picture) come from the last shot's second image.
 */
const PAGE = 4096;
const PAGES = [RT, INTERP, INTERP + PAGE, 0x30000, 0x31000, 0x33000, 0x34000, TSTATE, CFRAME, A, B, C, S];

function pageBytes(img: ImageMemory, page: Address): Uint8Array | undefined {
  return img.span(page, PAGE);
}

function camera(shots: [ImageMemory, ImageMemory][]): { mem: PageCacheMemory; calls: () => number } {
  const inner = ProcMemory.open(process.pid);
  const cache = new Map<ImageMemory, Map<Address, Uint8Array | undefined>>();
  const page = (img: ImageMemory, p: Address) => {
    let m = cache.get(img);
    if (m === undefined) cache.set(img, (m = new Map()));
    if (!m.has(p)) m.set(p, pageBytes(img, p));
    return m.get(p);
  };
  let k = 0;
  const later = () => shots[Math.min(k, shots.length) - 1]?.[1] ?? shots[0]![0];
  Object.assign(inner, {
    readPagesToPool(addrs: readonly Address[], from: number, n: number, pool: { ensure(n: number): void; bufs: Uint8Array[] }, at: number): number {
      pool.ensure(at + Math.max(n, 1));
      const [first, second] = shots[Math.min(k, shots.length - 1)]!;
      k++;
      const seen = new Set<Address>();
      for (let i = 0; i < n; i++) {
        const p = addrs[from + i]!;
        const bytes = page(seen.has(p) ? second : first, p);
        if (bytes === undefined) return i; // the kernel stops at the first range it cannot read
        seen.add(p);
        pool.bufs[at + i]!.set(bytes);
      }
      return n;
    },
    read: (addr: Address, len: number) => later().read(addr, len),
    readInto(buf: Uint8Array, addr: Address, len: number) {
      buf.set(later().read(addr, len));
      return buf;
    },
  });
  const mem = new PageCacheMemory(inner, inner.newPagePool(PAGE));
  mem.twins = true;
  return { mem, calls: () => k };
}

/** one tick's walk over a twinned picture of `pages`; `running`: the threads whose unsteady walks are read again */
function pictureWalk(shots: [ImageMemory, ImageMemory][], minor: number, o: { pages?: Address[]; running?: Address[] } = {}) {
  const { mem, calls } = camera(shots);
  // the pages this version's image has (a page it has not would stop the call, as the kernel's does)
  const pages = (o.pages ?? PAGES).filter((p) => pageBytes(shots[0]![0], p) !== undefined);
  mem.prefetch(pages);
  mem.prefetched = true;
  // the thread's plan as the last tick left it: the pages of this picture
  const plans = new Map([[TSTATE, pages.filter((p) => p !== RT && p !== INTERP && p !== INTERP + PAGE)]]);
  const t = walkThreads(mem, { runtimeAddress: RT }, layoutFor(3, minor)!, { major: 3, minor }, { pageCache: false, plans, running: o.running ?? [TSTATE] })[0]!;
  return { t, calls: calls() };
}

const twinsWork = syscalls() !== undefined;
for (const minor of [8, 9, 10, 11, 12, 13]) {
  test(`3.${minor} twinned pictures: the same in both copies, a walk is taken at once; a frame that held another function is torn and read again`, { skip: !twinsWork && 'no native page pool (koffi)' }, () => {
    const still = image(minor, whole(minor));
    const one = pictureWalk([[still, still]], minor);
    assert.equal(names(one.t), 'f < gen < f');
    assert.equal(one.t.retries, undefined);
    assert.equal(one.t.unsteady, undefined);
    assert.equal(one.calls, 1, 'one call: the picture');
    // frame C held `gen` in the second copy: its function changed during the picture
    const other = image(minor, whole(minor).map((f) => (f.addr === C ? { ...f, code: 'g' as const } : f)));
    const torn = pictureWalk([[still, other], [still, still]], minor);
    assert.equal(names(torn.t), 'f < gen < f', 'the re-read, whose copies agree');
    assert.equal(torn.t.retries, 1);
    assert.equal(torn.t.torn, undefined);
    assert.equal(torn.calls, 2);
    // never still: the walk ends torn, marked, never given as whole
    const always = pictureWalk([[still, other]], minor);
    assert.equal(always.t.torn, true);
    assert.equal(always.t.truncated, true);
  });

  test(`3.${minor} twinned pictures: a current frame that moved between the copies is unsteady — read again for the GIL's holder (given after ${2} re-reads if it never holds still), taken as read for a thread that runs no Python`, { skip: !twinsWork && 'no native page pool (koffi)' }, () => {
    const still = image(minor, whole(minor));
    // the thread returned from A while the picture was copied: its current frame is B in the second copy
    const returned = image(minor, whole(minor), B);
    const settles = pictureWalk([[still, returned], [still, still]], minor);
    assert.equal(names(settles.t), 'f < gen < f');
    assert.equal(settles.t.retries, 1);
    assert.equal(settles.t.unsteady, undefined);
    const never = pictureWalk([[still, returned]], minor);
    assert.equal(names(never.t), 'f < gen < f', 'its last read, the functions that were there');
    assert.equal(never.t.unsteady, true);
    assert.equal(never.t.retries, 2);
    assert.equal(never.t.torn, undefined);
    // not the GIL's holder: its frames cannot change, the walk is taken as read
    const waiting = pictureWalk([[still, returned]], minor, { running: [] });
    assert.equal(waiting.t.retries, undefined);
    assert.equal(waiting.t.unsteady, undefined);
    assert.equal(waiting.calls, 1);
  });

  test(`3.${minor} twinned pictures: a frame on a page left out of the picture is compared with nothing — read again with its pages fetched together`, { skip: !twinsWork && 'no native page pool (koffi)' }, () => {
    const still = image(minor, whole(minor));
    const apart = pictureWalk([[still, still]], minor, { pages: PAGES.filter((p) => p !== C) });
    assert.equal(names(apart.t), 'f < gen < f');
    assert.equal(apart.t.retries, 1, 'read again once: the plan now has C');
    assert.equal(apart.t.unsteady, undefined);
    assert.equal(apart.calls, 3, 'the picture, C read on its own, the re-read of the plan');
  });
}
