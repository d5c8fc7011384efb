/**
 * `_Py_DebugOffsets` → Layout (src/capture/sampler/debug-offsets.ts):
 * (a) a live CPython 3.13: the table's layout equals the generated one field by field and
 *     walks the same stacks;
 * (b) corrupt tables fail with a DebugOffsetsError naming the address and the field;
 * (c) a synthetic 3.14 process (no 3.14 is installed): table, interpreter, two threads,
 *     tagged f_executable, shim frames, unicode names, a 3.11+ location table → exact stacks;
 *     a 3.15 table is an unsupported-version error.
 *
 * The tables are written here from the field lists of CPython's headers (3.13:
 * Include/internal/pycore_runtime.h; 3.14: Include/internal/pycore_debug_offsets.h),
 * independently of the parser's own lists, so a parser with a wrong field order fails.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  debugOffsetsSize,
  layoutForRuntime,
  layoutFromDebugOffsets,
  readCodeObjectGeneration,
  readDebugOffsets,
} from '../../src/capture/sampler/debug-offsets.ts';
import { gilHolder } from '../../src/capture/sampler/threads.ts';
import { layoutFor, type Layout } from '../../src/capture/sampler/layouts/index.ts';
import { layout as generated313 } from '../../src/capture/sampler/layouts/cpython-3.13.ts';
import { ImageMemory, ProcMemory, type Address } from '../../src/capture/sampler/memory.ts';
import { DebugOffsetsError, UnsupportedVersionError, decodeVersionHex, locateRuntime } from '../../src/capture/sampler/runtime.ts';
import { WalkError, walkThreads, type Frame } from '../../src/capture/sampler/walker.ts';
import { AsyncioDebugError, parseAsyncioDebugOffsets } from '../../src/capture/sampler/asyncio-debug.ts';
import { newAsyncReadState, readAsyncTasks } from '../../src/capture/sampler/asyncio.ts';
import { firstLine, installedPythons } from './pythons.ts';

// ---- building tables -------------------------------------------------------------------

/** [section, field] in table order after the 24-byte header, as the headers declare them. */
type Order = readonly (readonly [string, readonly string[]])[];

const ORDER_313: Order = [
  ['runtime_state', ['size', 'finalizing', 'interpreters_head']],
  ['interpreter_state', ['size', 'id', 'next', 'threads_head', 'gc', 'imports_modules', 'sysdict', 'builtins', 'ceval_gil', 'gil_runtime_state', 'gil_runtime_state_enabled', 'gil_runtime_state_locked', 'gil_runtime_state_holder']],
  ['thread_state', ['size', 'prev', 'next', 'interp', 'current_frame', 'thread_id', 'native_thread_id', 'datastack_chunk', 'status']],
  ['interpreter_frame', ['size', 'previous', 'executable', 'instr_ptr', 'localsplus', 'owner']],
  ['code_object', ['size', 'filename', 'name', 'qualname', 'linetable', 'firstlineno', 'argcount', 'localsplusnames', 'localspluskinds', 'co_code_adaptive']],
  ['pyobject', ['size', 'ob_type']],
  ['type_object', ['size', 'tp_name', 'tp_repr', 'tp_flags']],
  ['tuple_object', ['size', 'ob_item', 'ob_size']],
  ['list_object', ['size', 'ob_item', 'ob_size']],
  ['dict_object', ['size', 'ma_keys', 'ma_values']],
  ['float_object', ['size', 'ob_fval']],
  ['long_object', ['size', 'lv_tag', 'ob_digit']],
  ['bytes_object', ['size', 'ob_size', 'ob_sval']],
  ['unicode_object', ['size', 'state', 'length', 'asciiobject_size']],
  ['gc', ['size', 'collecting']],
];

const ORDER_314: Order = [
  ['runtime_state', ['size', 'finalizing', 'interpreters_head']],
  ['interpreter_state', ['size', 'id', 'next', 'threads_head', 'threads_main', 'gc', 'imports_modules', 'sysdict', 'builtins', 'ceval_gil', 'gil_runtime_state', 'gil_runtime_state_enabled', 'gil_runtime_state_locked', 'gil_runtime_state_holder', 'code_object_generation', 'tlbc_generation']],
  ['thread_state', ['size', 'prev', 'next', 'interp', 'current_frame', 'thread_id', 'native_thread_id', 'datastack_chunk', 'status']],
  ['interpreter_frame', ['size', 'previous', 'executable', 'instr_ptr', 'localsplus', 'owner', 'stackpointer', 'tlbc_index']],
  ['code_object', ['size', 'filename', 'name', 'qualname', 'linetable', 'firstlineno', 'argcount', 'localsplusnames', 'localspluskinds', 'co_code_adaptive', 'co_tlbc']],
  ['pyobject', ['size', 'ob_type']],
  ['type_object', ['size', 'tp_name', 'tp_repr', 'tp_flags']],
  ['tuple_object', ['size', 'ob_item', 'ob_size']],
  ['list_object', ['size', 'ob_item', 'ob_size']],
  ['set_object', ['size', 'used', 'table', 'mask']],
  ['dict_object', ['size', 'ma_keys', 'ma_values']],
  ['float_object', ['size', 'ob_fval']],
  ['long_object', ['size', 'lv_tag', 'ob_digit']],
  ['bytes_object', ['size', 'ob_size', 'ob_sval']],
  ['unicode_object', ['size', 'state', 'length', 'asciiobject_size']],
  ['gc', ['size', 'collecting']],
  ['gen_object', ['size', 'gi_name', 'gi_iframe', 'gi_frame_state']],
  ['llist_node', ['next', 'prev']],
  ['debugger_support', ['eval_breaker', 'remote_debugger_support', 'remote_debugging_enabled', 'debugger_pending_call', 'debugger_script_path', 'debugger_script_path_size']],
];

type Values = Record<string, Record<string, number>>;

/** The 73 words of a live 3.13.0's table after the header (read with ctypes from `_PyRuntime`). */
const WORDS_3130 = [
  283320, 608, 632, 194968, 7272, 7264, 7344, 7400, 7656, 7640, 7648, 16, 7752, 0, 7768, 7760, 304, 0, 8, 16, 72, 152, 160,
  232, 32, 80, 8, 0, 56, 72, 70, 208, 112, 120, 128, 136, 68, 52, 96, 104, 200, 16, 8, 416, 24, 88, 168, 32, 24, 16, 40,
  24, 16, 48, 32, 40, 24, 16, 32, 16, 24, 40, 16, 32, 64, 32, 16, 40, 240, 200,
];

function valuesFromWords(order: Order, words: readonly number[]): Values {
  const out: Values = {};
  let i = 0;
  for (const [s, fields] of order) {
    out[s] = {};
    for (const f of fields) out[s]![f] = words[i++]!;
  }
  assert.equal(i, words.length, 'word count');
  return out;
}

/** A synthetic 3.14.0 table (default build); self-consistent values in the range of a real one. */
const VALUES_314: Values = {
  runtime_state: { size: 2048, finalizing: 776, interpreters_head: 800 },
  interpreter_state: {
    size: 4096, id: 8, next: 0, threads_head: 72, threads_main: 80, gc: 96, imports_modules: 200, sysdict: 184, builtins: 192,
    ceval_gil: 16, gil_runtime_state: 256, gil_runtime_state_enabled: 0, gil_runtime_state_locked: 272, gil_runtime_state_holder: 264,
    code_object_generation: 464, tlbc_generation: 0,
  },
  thread_state: { size: 320, prev: 0, next: 8, interp: 16, current_frame: 72, thread_id: 152, native_thread_id: 160, datastack_chunk: 232, status: 32 },
  interpreter_frame: { size: 88, previous: 8, executable: 0, instr_ptr: 56, localsplus: 80, owner: 74, stackpointer: 64, tlbc_index: 0 },
  code_object: {
    size: 216, filename: 112, name: 120, qualname: 128, linetable: 136, firstlineno: 68, argcount: 52, localsplusnames: 96,
    localspluskinds: 104, co_code_adaptive: 208, co_tlbc: 0,
  },
  pyobject: { size: 16, ob_type: 8 },
  type_object: { size: 416, tp_name: 24, tp_repr: 88, tp_flags: 168 },
  tuple_object: { size: 32, ob_item: 24, ob_size: 16 },
  list_object: { size: 40, ob_item: 24, ob_size: 16 },
  set_object: { size: 200, used: 24, table: 40, mask: 32 },
  dict_object: { size: 48, ma_keys: 32, ma_values: 40 },
  float_object: { size: 24, ob_fval: 16 },
  long_object: { size: 32, lv_tag: 16, ob_digit: 24 },
  bytes_object: { size: 40, ob_size: 16, ob_sval: 32 },
  unicode_object: { size: 64, state: 32, length: 16, asciiobject_size: 40 },
  gc: { size: 360, collecting: 8 },
  gen_object: { size: 112, gi_name: 40, gi_iframe: 80, gi_frame_state: 72 },
  llist_node: { next: 0, prev: 8 },
  debugger_support: {
    eval_breaker: 24, remote_debugger_support: 272, remote_debugging_enabled: 3000, debugger_pending_call: 0, debugger_script_path: 4,
    debugger_script_path_size: 512,
  },
};

function encodeTable(order: Order, values: Values, versionHex: bigint, opts: { cookie?: string; freeThreaded?: bigint; raw?: Map<number, bigint> } = {}): Uint8Array {
  const words = order.reduce((n, [, f]) => n + f.length, 0);
  const b = new Uint8Array(24 + 8 * words);
  const d = new DataView(b.buffer);
  b.set(Buffer.from(opts.cookie ?? 'xdebugpy', 'latin1').subarray(0, 8));
  d.setBigUint64(8, versionHex, true);
  d.setBigUint64(16, opts.freeThreaded ?? 0n, true);
  let pos = 24;
  for (const [s, fields] of order) {
    for (const f of fields) {
      const v = values[s]?.[f];
      assert.ok(v !== undefined, `test table lacks ${s}.${f}`);
      d.setBigUint64(pos, BigInt(v), true);
      pos += 8;
    }
  }
  for (const [at, v] of opts.raw ?? []) d.setBigUint64(at, v, true);
  return b;
}

const clone = (v: Values): Values => JSON.parse(JSON.stringify(v)) as Values;

test('table sizes: 584 bytes for 3.13, 760 for 3.14, none for other versions', () => {
  assert.equal(debugOffsetsSize(13), 584);
  assert.equal(debugOffsetsSize(14), 760);
  assert.equal(debugOffsetsSize(12), undefined);
  assert.equal(debugOffsetsSize(15), undefined);
  assert.equal(encodeTable(ORDER_313, valuesFromWords(ORDER_313, WORDS_3130), 0x030d00f0n).length, 584);
  assert.equal(encodeTable(ORDER_314, VALUES_314, 0x030e00f0n).length, 760);
});

// ---- (b) 3.13 tables, good and corrupt ---------------------------------------------------

const AT = 0x7f0000010000;
const V3130 = decodeVersionHex(0x030d00f0);

/** The layout fields the 3.13 table carries: "section.field" in the table → "section.field" in Layout. */
const CARRIED_313: readonly (readonly [string, string])[] = [
  ['runtime_state.size', 'runtime.size'],
  ['runtime_state.finalizing', 'runtime.finalizing'],
  ['runtime_state.interpreters_head', 'runtime.interpreters_head'],
  ['interpreter_state.size', 'interp.size'],
  ['interpreter_state.id', 'interp.id'],
  ['interpreter_state.next', 'interp.next'],
  ['interpreter_state.threads_head', 'interp.threads_head'],
  ['interpreter_state.imports_modules', 'interp.modules'],
  ['interpreter_state.sysdict', 'interp.sysdict'],
  ['interpreter_state.builtins', 'interp.builtins'],
  ['interpreter_state.ceval_gil', 'interp.ceval_gil'],
  ['thread_state.size', 'tstate.size'],
  ['thread_state.prev', 'tstate.prev'],
  ['thread_state.next', 'tstate.next'],
  ['thread_state.interp', 'tstate.interp'],
  ['thread_state.current_frame', 'tstate.current_frame'],
  ['thread_state.thread_id', 'tstate.thread_id'],
  ['thread_state.native_thread_id', 'tstate.native_thread_id'],
  ['thread_state.datastack_chunk', 'tstate.datastack_chunk'],
  ['thread_state.status', 'tstate.status'],
  ['interpreter_frame.size', 'frame.size'],
  ['interpreter_frame.previous', 'frame.previous'],
  ['interpreter_frame.executable', 'frame.code'],
  ['interpreter_frame.instr_ptr', 'frame.instr_ptr'],
  ['interpreter_frame.localsplus', 'frame.localsplus'],
  ['interpreter_frame.owner', 'frame.owner'],
  ['code_object.size', 'code.size'],
  ['code_object.filename', 'code.filename'],
  ['code_object.name', 'code.name'],
  ['code_object.qualname', 'code.qualname'],
  ['code_object.linetable', 'code.linetable'],
  ['code_object.firstlineno', 'code.firstlineno'],
  ['code_object.argcount', 'code.argcount'],
  ['code_object.co_code_adaptive', 'code.code_adaptive'],
  ['pyobject.size', 'object.size'],
  ['pyobject.ob_type', 'object.ob_type'],
  ['type_object.size', 'type.size'],
  ['type_object.tp_name', 'type.tp_name'],
  ['type_object.tp_flags', 'type.tp_flags'],
  ['tuple_object.ob_item', 'tuple.ob_item'],
  ['tuple_object.ob_size', 'tuple.ob_size'],
  ['list_object.ob_item', 'list.ob_item'],
  ['list_object.ob_size', 'list.ob_size'],
  ['dict_object.size', 'dict.size'],
  ['dict_object.ma_keys', 'dict.ma_keys'],
  ['dict_object.ma_values', 'dict.ma_values'],
  ['bytes_object.ob_size', 'bytes.ob_size'],
  ['bytes_object.ob_sval', 'bytes.ob_sval'],
  ['unicode_object.size', 'unicode.size'],
  ['unicode_object.state', 'unicode.state'],
  ['unicode_object.length', 'unicode.length'],
  ['unicode_object.asciiobject_size', 'unicode.ascii_size'],
];

function get(obj: object, path: string): unknown {
  const [a, b] = path.split('.') as [string, string];
  return (obj as Record<string, Record<string, unknown>>)[a]?.[b];
}

/** Every carried field: table value = Layout value = generated 3.13 value (one message per field). */
function assertCarriedAgree(table: Values, layout: Layout, label: string): void {
  for (const [t, l] of CARRIED_313) {
    const tv = get(table, t);
    assert.equal(get(layout, l), tv, `${label}: ${l} vs table ${t}`);
    assert.equal(get(generated313, l), tv, `${label}: generated ${l} vs table ${t}`);
  }
  const is = table['interpreter_state']!;
  assert.equal(layout.gil.last_holder, is['gil_runtime_state_holder']! - is['gil_runtime_state']!, `${label}: gil.last_holder`);
  assert.equal(layout.gil.locked, is['gil_runtime_state_locked']! - is['gil_runtime_state']!, `${label}: gil.locked`);
  assert.equal(generated313.gil.last_holder, layout.gil.last_holder);
  assert.equal(generated313.gil.locked, layout.gil.locked);
}

/** The layout without the fields only debug-offsets layouts have. */
function withoutDebugOnly(l: Layout): Layout {
  const { source: _s, frame_owner: _o, ...rest } = l;
  return rest;
}

test('3.13.0 table (as read from a live 3.13.0) → the generated 3.13 layout, field by field', () => {
  const values = valuesFromWords(ORDER_313, WORDS_3130);
  const mem = new ImageMemory([[AT, encodeTable(ORDER_313, values, 0x030d00f0n)]]);
  const t = readDebugOffsets(mem, AT, V3130);
  assert.equal(t.bytes, 584);
  assert.deepEqual(t.sections, values);
  const layout = layoutFromDebugOffsets(t);
  assertCarriedAgree(values, layout, 'synthetic 3.13.0');
  assert.deepEqual(withoutDebugOnly(layout), generated313);
  assert.equal(layout.source, 'debug-offsets');
  assert.deepEqual(layout.frame_owner, { thread: 0, generator: 1, frame_object: 2, interpreter: null, cstack: 3 });
  assert.equal(layout.frame.executable_tag_bits, undefined);
  assert.equal(layout.interp.code_object_generation, undefined);
});

test('corrupt 3.13 tables: DebugOffsetsError naming the address and the field', () => {
  const good = valuesFromWords(ORDER_313, WORDS_3130);
  const at = (section: string, field: string): number => {
    let pos = 24;
    for (const [s, fields] of ORDER_313) {
      for (const f of fields) {
        if (s === section && f === field) return AT + pos;
        pos += 8;
      }
    }
    throw new Error(`${section}.${field}`);
  };
  const hex = (n: number) => `0x${n.toString(16)}`;
  const check = (img: Uint8Array, re: RegExp, fieldAddr?: number, expected = V3130) => {
    const mem = new ImageMemory([[AT, img]]);
    assert.throws(
      () => layoutFromDebugOffsets(readDebugOffsets(mem, AT, expected)),
      (e: unknown) => {
        assert.ok(e instanceof DebugOffsetsError, String(e));
        assert.equal(e.address, AT);
        assert.match(e.message, new RegExp(`^_Py_DebugOffsets at ${hex(AT)}: `));
        assert.match(e.message, re);
        if (fieldAddr !== undefined) assert.ok(e.message.includes(`field at ${hex(fieldAddr)}`), e.message);
        return true;
      },
    );
  };
  const withField = (s: string, f: string, v: number) => {
    const x = clone(good);
    x[s]![f] = v;
    return encodeTable(ORDER_313, x, 0x030d00f0n);
  };

  check(encodeTable(ORDER_313, good, 0x030d00f0n, { cookie: 'xdebugpx' }), /cookie "xdebugpx" is not "xdebugpy"/);
  check(encodeTable(ORDER_313, good, 0x030d01f0n), /version 3\.13\.1 disagrees with Py_Version 3\.13\.0/);
  check(encodeTable(ORDER_313, good, 0x030d00f0n, { freeThreaded: 1n }), /free-threaded/);
  check(withField('code_object', 'size', 1_000_000), /code_object\.size = 1000000 is not a plausible struct size \(expected 64\.\.4096\)/, at('code_object', 'size'));
  check(withField('interpreter_frame', 'size', 8), /interpreter_frame\.size = 8 is not a plausible struct size/, at('interpreter_frame', 'size'));
  check(withField('code_object', 'name', 5000), /code_object\.name = 5000 is not inside the struct \(code_object\.size = 208\)/, at('code_object', 'name'));
  check(withField('thread_state', 'native_thread_id', 304), /thread_state\.native_thread_id = 304 is not inside the struct/, at('thread_state', 'native_thread_id'));
  check(withField('unicode_object', 'asciiobject_size', 65), /unicode_object\.asciiobject_size = 65 is not a size within unicode_object\.size = 64/);
  check(withField('runtime_state', 'interpreters_head', 40), /runtime_state\.interpreters_head = 40 lies inside the 584-byte _Py_DebugOffsets/);
  check(withField('interpreter_state', 'gil_runtime_state_enabled', 4), /gil_runtime_state_enabled = 4, but only a free-threaded build/);
  check(withField('interpreter_state', 'gil_runtime_state_locked', 16), /gil_runtime_state_locked = 16 is not inside interpreter_state\.gil_runtime_state \(7752\)/);
  // a word far beyond any struct
  check(encodeTable(ORDER_313, good, 0x030d00f0n, { raw: new Map([[at('code_object', 'filename') - AT, 1n << 40n]]) }), /code_object\.filename = 0x10000000000 is not a plausible offset or size/, at('code_object', 'filename'));
  // valid on its own, but the constants pylens fills in would be wrong for it
  check(withField('code_object', 'co_code_adaptive', 192), /_co_firsttraceable: pylens assumes 184 for Python 3\.13, but the table implies 176/);
  check(withField('unicode_object', 'size', 72), /PyUnicodeObject data: pylens assumes 56 for Python 3\.13, but the table implies 64/);
  // the table is shorter than the 3.13 struct: the read fails
  const short = encodeTable(ORDER_313, good, 0x030d00f0n).subarray(0, 300);
  assert.throws(() => readDebugOffsets(new ImageMemory([[AT, short]]), AT, V3130), /cannot read 584 bytes/);
  // the good one passes
  assert.equal(layoutFromDebugOffsets(readDebugOffsets(new ImageMemory([[AT, encodeTable(ORDER_313, good, 0x030d00f0n)]]), AT, V3130)).code.name, 120);
});

// ---- (c) a synthetic 3.14 process ---------------------------------------------------------

const V3140 = decodeVersionHex(0x030e00f0);

/** 3.11+ location table entry: header byte (bit 7, code, length − 1) and its payload bytes. */
function entry(code: number, units: number, payload: number[] = []): number[] {
  assert.ok(units >= 1 && units <= 8 && code >= 0 && code <= 15);
  return [0x80 | (code << 3) | (units - 1), ...payload];
}
function varint(u: number): number[] {
  const out: number[] = [];
  do {
    let b = u & 63;
    u >>>= 6;
    if (u) b |= 64;
    out.push(b);
  } while (u);
  return out;
}
function svarint(n: number): number[] {
  return varint(n < 0 ? ((-n) << 1) | 1 : n << 1);
}

interface Synthetic314 {
  mem: ImageMemory;
  layout: Layout;
  rt: { pid: number; runtimeAddress: Address; version: typeof V3140 };
  tstateA: Address;
  tstateB: Address;
}

function synthetic314(): Synthetic314 {
  const V = VALUES_314;
  const mem = new ImageMemory();
  const put = (addr: Address, size: number, fill: (d: DataView) => void) => {
    const b = new Uint8Array(size);
    fill(new DataView(b.buffer));
    mem.add(addr, b);
  };
  const ptr = (d: DataView, off: number, v: number | bigint) => d.setBigUint64(off, BigInt(v), true);

  // types of the objects the walker type-checks (code, str, bytes)
  const STR_TYPE = 0x705000;
  const BYTES_TYPE = 0x706000;
  // strings: compact ASCII at +40, compact non-ASCII at +56 (PyCompactUnicodeObject)
  let next = 0x600000;
  const str = (text: string): Address => {
    const cps = [...text].map((c) => c.codePointAt(0)!);
    const max = Math.max(0, ...cps);
    const ascii = max < 0x80;
    const kind = max < 0x100 ? 1 : max < 0x10000 ? 2 : 4;
    const start = ascii ? 40 : 56;
    const addr = next;
    next += 0x400;
    put(addr, start + (cps.length + 1) * kind, (d) => {
      ptr(d, 8, STR_TYPE);
      d.setBigInt64(16, BigInt(cps.length), true);
      d.setUint32(32, (kind << 2) | (1 << 5) | (ascii ? 1 << 6 : 0), true);
      cps.forEach((cp, i) => (kind === 1 ? d.setUint8(start + i, cp) : kind === 2 ? d.setUint16(start + i * 2, cp, true) : d.setUint32(start + i * 4, cp, true)));
    });
    return addr;
  };
  const cstr = (text: string): Address => {
    const addr = next;
    next += 0x100;
    mem.add(addr, Uint8Array.from(Buffer.from(`${text}\0`, 'latin1')));
    return addr;
  };
  const bytesObj = (content: number[]): Address => {
    const addr = next;
    next += 0x400;
    put(addr, 32 + content.length + 1, (d) => {
      ptr(d, 8, BYTES_TYPE);
      d.setBigInt64(16, BigInt(content.length), true);
      content.forEach((b, i) => d.setUint8(32 + i, b));
    });
    return addr;
  };
  // types and non-code objects
  const type = (name: string, addr: Address) => put(addr, 416, (d) => ptr(d, 24, cstr(name)));
  const CODE_TYPE = 0x700000;
  const NONE_TYPE = 0x701000;
  const FUNC_TYPE = 0x702000;
  type('code', CODE_TYPE);
  type('NoneType', NONE_TYPE);
  type('function', FUNC_TYPE);
  type('str', STR_TYPE);
  type('bytes', BYTES_TYPE);
  const NONE = 0x703000;
  const FUNC = 0x704000;
  put(NONE, 16, (d) => ptr(d, 8, NONE_TYPE));
  put(FUNC, 64, (d) => ptr(d, 8, FUNC_TYPE));

  const C = V['code_object']!;
  const code = (addr: Address, o: { name: string; qualname: string; file: string; firstLine: number; firstTraceable: number; table: number[] }) =>
    put(addr, C['size']! + 64, (d) => {
      ptr(d, 8, CODE_TYPE);
      ptr(d, C['name']!, str(o.name));
      ptr(d, C['qualname']!, str(o.qualname));
      ptr(d, C['filename']!, str(o.file));
      ptr(d, C['linetable']!, bytesObj(o.table));
      d.setInt32(C['firstlineno']!, o.firstLine, true);
      d.setInt32(192, o.firstTraceable, true); // _co_firsttraceable = co_code_adaptive − 16
    });
  const C1 = 0x300000;
  const C2 = 0x301000;
  const C3 = 0x302000;
  const C4 = 0x303000;
  const C5 = 0x304000;
  // C1 (first line 10): [0,4) 11 · [4,10) 12 · [10,12) none · [12,16) 15 · [16,32) 15 · [32,36) 11
  code(C1, {
    name: 'inner', qualname: 'Outer.inner', file: 'app.py', firstLine: 10, firstTraceable: 2,
    table: [
      ...entry(13, 2, svarint(1)),
      ...entry(11, 3, [4, 9]),
      ...entry(15, 1),
      ...entry(14, 2, [...svarint(3), ...varint(0), ...varint(1), ...varint(5)]),
      ...entry(0, 8, [7]),
      ...entry(13, 2, svarint(-4)),
    ],
  });
  // C2 (first line 40): [0,8) 41 · [8,12) 81 (a two-chunk varint)
  code(C2, { name: 'größe', qualname: 'größe', file: '/srv/汉字.py', firstLine: 40, firstTraceable: 0, table: [...entry(13, 4, svarint(1)), ...entry(13, 2, svarint(40))] });
  // C3 (first line 1): [0,2) 1 · [2,10) 5
  code(C3, { name: '<module>', qualname: '<module>', file: 'main.py', firstLine: 1, firstTraceable: 1, table: [...entry(13, 1, svarint(0)), ...entry(13, 4, svarint(4))] });
  // C4 (first line 20): [0,16) 21
  code(C4, { name: 'gen', qualname: 'gen', file: 'main.py', firstLine: 20, firstTraceable: 3, table: entry(13, 8, svarint(1)) });
  // C5 (first line 30): [0,8) 30 · [8,16) 32
  code(C5, { name: '𠀀', qualname: 'K.𠀀', file: 'main.py', firstLine: 30, firstTraceable: 0, table: [...entry(10, 4, [1, 2]), ...entry(12, 4, [1, 2])] });

  // frames: [address, tagged f_executable, owner, instr offset or null (no instr_ptr), previous]
  const FR = V['interpreter_frame']!;
  const frame = (addr: Address, exec: number | bigint, owner: number, code: Address | null, offset: number, previous: Address) =>
    put(addr, FR['size']!, (d) => {
      ptr(d, FR['executable']!, exec);
      ptr(d, FR['previous']!, previous);
      ptr(d, FR['instr_ptr']!, code === null ? 0 : code + C['co_code_adaptive']! + offset);
      d.setUint8(FR['owner']!, owner);
    });
  const TAG = 1; // Py_TAG_REFCNT / deferred: the low bit of a _PyStackRef
  // thread A: inner@15 < (interpreter-owned shim) < 𠀀@32 < größe@81 < (C-stack frame) ; leaf first
  frame(0x500000, C1 + TAG, 0, C1, 14, 0x500100);
  frame(0x500100, C4 + TAG, 3, C4, 8, 0x500200); // FRAME_OWNED_BY_INTERPRETER: skipped by owner even with a code executable
  frame(0x500200, C5, 0, C5, 10, 0x500300); // untagged executable works too
  frame(0x500300, C2 + TAG, 0, C2, 8, 0x500400);
  frame(0x500400, C3 + TAG, 4, C3, 4, 0); // FRAME_OWNED_BY_CSTACK: skipped although its executable is code
  // thread B (main): (incomplete) < gen@21 < (function object) < inner@11 < inner@none < <module>@5 < (NULL ref) < (interpreter frame)
  frame(0x510000, C1 + TAG, 0, C1, 2, 0x510100); // before _co_firsttraceable: incomplete, hidden
  frame(0x510100, C4 + TAG, 1, C4, 2, 0x510200); // generator: shown even before firsttraceable
  frame(0x510200, FUNC + TAG, 0, null, 0, 0x510300); // not a code object
  frame(0x510300, C1 + TAG, 0, C1, 32, 0x510400);
  frame(0x510400, C1 + TAG, 0, C1, 10, 0x510500); // code 15: no location
  frame(0x510500, C3 + TAG, 0, C3, 4, 0x510600);
  frame(0x510600, TAG, 0, null, 0, 0x510700); // PyStackRef_NULL
  frame(0x510700, NONE + TAG, 3, null, 0, 0);

  const RT = 0x100000;
  const INTERP = 0x200000;
  const TA = 0x400000;
  const TB = 0x410000;
  const RS = V['runtime_state']!;
  const IS = V['interpreter_state']!;
  const TS = V['thread_state']!;
  const rtBytes = new Uint8Array(RS['size']!);
  rtBytes.set(encodeTable(ORDER_314, V, 0x030e00f0n));
  const rtd = new DataView(rtBytes.buffer);
  ptr(rtd, RS['interpreters_head']!, INTERP);
  mem.add(RT, rtBytes);
  put(INTERP, IS['size']!, (d) => {
    ptr(d, IS['next']!, 0);
    ptr(d, IS['threads_head']!, TA);
    ptr(d, IS['threads_main']!, TB);
    ptr(d, IS['ceval_gil']!, INTERP + IS['gil_runtime_state']!); // the interpreter's own _gil
    ptr(d, IS['gil_runtime_state_holder']!, TA);
    d.setInt32(IS['gil_runtime_state_locked']!, 1, true);
    ptr(d, IS['code_object_generation']!, 7);
  });
  const tstate = (addr: Address, nextTs: Address, prev: Address, top: Address, tid: number, pthread: bigint) =>
    put(addr, TS['size']!, (d) => {
      ptr(d, TS['next']!, nextTs);
      ptr(d, TS['prev']!, prev);
      ptr(d, TS['interp']!, INTERP);
      ptr(d, TS['current_frame']!, top);
      ptr(d, TS['thread_id']!, pthread);
      ptr(d, TS['native_thread_id']!, tid);
    });
  tstate(TA, TB, 0, 0x500000, 4242, 0x7f00aa000700n);
  tstate(TB, 0, TA, 0x510000, 4241, 0x7f00bb000740n);

  const rt = { pid: 0, runtimeAddress: RT, version: V3140 };
  const layout = layoutForRuntime(rt, mem);
  return { mem, layout, rt, tstateA: TA, tstateB: TB };
}

const fr = (name: string, qualname: string, file: string, line: number | null, firstLine: number): Frame => ({ name, qualname, file, line, firstLine });

test('3.14 layout from a synthetic table: carried fields, written-down constants, 3.14-only fields', () => {
  const { layout } = synthetic314();
  assert.equal(layout.version, '3.14.0');
  assert.equal(layout.hexversion, 0x030e00f0);
  assert.equal(layout.source, 'debug-offsets');
  assert.deepEqual(layout.runtime, { interpreters_head: 800, gilstate_tstate_current: null, gil_last_holder: null, gil_locked: null, debug_offsets: 0, finalizing: 776, size: 2048 });
  assert.deepEqual(layout.interp, { next: 0, id: 8, threads_head: 72, modules: 200, ceval_gil: 16, sysdict: 184, builtins: 192, size: 4096, threads_main: 80, code_object_generation: 464 });
  assert.deepEqual(layout.gil, { last_holder: 8, locked: 16, size: 208 });
  assert.deepEqual(layout.frame, { code: 0, previous: 8, instr_ptr: 56, lasti: null, owner: 74, is_entry: null, globals: null, localsplus: 80, executing: null, state: null, size: 88, executable_tag_bits: 3, stackpointer: 64 });
  // what the asyncio reader needs on 3.14: coroutine fields and ints (lazy task names)
  assert.deepEqual(layout.gen, { gi_name: 40, gi_iframe: 80, gi_frame_state: 72 });
  assert.deepEqual(layout.long, { ob_size: null, lv_tag: 16, ob_digit: 24, non_size_bits: 3, sign_mask: 3, digit_size: 4, shift: 30 });
  assert.deepEqual(layout.frame_owner, { thread: 0, generator: 1, frame_object: 2, interpreter: 3, cstack: 4 });
  assert.deepEqual(layout.code, { argcount: 52, firstlineno: 68, filename: 112, name: 120, qualname: 128, linetable: 136, code: null, firsttraceable: 192, code_adaptive: 208, size: 216 });
  assert.deepEqual(layout.unicode, { length: 16, state: 32, ascii_size: 40, compact_size: 56, data: 56, size: 64 });
  assert.deepEqual(layout.var_object, { ob_size: 16, size: 24 });
  assert.equal(layout.tstate.current_frame, 72);
  assert.equal(layout.tstate.frame, null);
  assert.equal(layout.cframe.current_frame, null);
});

test('walkThreads on a synthetic 3.14 process: tagged executables, shim frames skipped, exact stacks and lines', () => {
  const { mem, layout, rt, tstateA, tstateB } = synthetic314();
  for (const pageCache of [true, false]) {
    const threads = walkThreads(mem, rt, layout, V3140, { pageCache });
    assert.deepEqual(
      threads.map((t) => ({ tid: t.tid, pthreadId: t.pthreadId, tstate: t.tstate, error: t.error, truncated: t.truncated })),
      [
        { tid: 4242, pthreadId: 0x7f00aa000700n, tstate: tstateA, error: undefined, truncated: undefined },
        { tid: 4241, pthreadId: 0x7f00bb000740n, tstate: tstateB, error: undefined, truncated: undefined },
      ],
    );
    assert.deepEqual(threads[0]!.frames, [
      fr('inner', 'Outer.inner', 'app.py', 15, 10),
      fr('𠀀', 'K.𠀀', 'main.py', 32, 30),
      fr('größe', 'größe', '/srv/汉字.py', 81, 40),
    ]);
    assert.deepEqual(threads[1]!.frames, [
      fr('gen', 'gen', 'main.py', 21, 20),
      fr('inner', 'Outer.inner', 'app.py', 11, 10),
      fr('inner', 'Outer.inner', 'app.py', null, 10),
      fr('<module>', '<module>', 'main.py', 5, 1),
    ]);
  }
  // a warm code cache gives the same answer
  const cache = new Map();
  const first = walkThreads(mem, rt, layout, V3140, { cache });
  assert.deepEqual(walkThreads(mem, rt, layout, V3140, { cache }), first);
  assert.equal(cache.size, 5);
  // depth cap
  const capped = walkThreads(mem, rt, layout, V3140, { maxDepth: 2 });
  assert.equal(capped[0]!.frames!.length, 2);
  assert.equal(capped[0]!.truncated, true);
});

// ---- 3.14 asyncio tasks: _Py_AsyncioModuleDebugOffsets and the per-thread task lists -------

/** a 3.14 `_Py_AsyncioModuleDebugOffsets` (default build: TaskObj as Modules/_asynciomodule.c lays it out) */
function asyncioTable314(tstateSize: number, interpSize: number): { bytes: Uint8Array; tstateExt: number } {
  const words = [
    168, 136, 96, 108, 109, 128, 152, // TaskObj: size, name, awaited_by, is_task, awaited_by_is_set, coro, node
    interpSize, interpSize - 64, // PyInterpreterState: size, asyncio_tasks_head
    tstateSize + 64, tstateSize + 8, tstateSize + 16, tstateSize + 24, // _PyThreadStateImpl: size, running loop, running task, tasks head
  ];
  const bytes = new Uint8Array(words.length * 8);
  words.forEach((w, i) => new DataView(bytes.buffer).setBigUint64(i * 8, BigInt(w), true));
  return { bytes, tstateExt: tstateSize };
}

/**
 * Thread A runs loop L with two tasks in its list: "fetcher" (its coroutine `inner` suspended
 * in an await of the coroutine `𠀀`, itself awaiting a FutureIter of the task's waiter) and an
 * unnamed one (lazy int name 7: "Task-7") whose coroutine `größe` has not started; thread B
 * and the interpreter have none.
 */
function withTasks314(x: Synthetic314): { table: Uint8Array; interp: Address; tasks: { fetcher: Address; seven: Address }; loop: Address } {
  const { mem, layout } = x;
  const put = (addr: Address, size: number, fill: (d: DataView) => void) => {
    const b = new Uint8Array(size);
    fill(new DataView(b.buffer));
    mem.add(addr, b);
  };
  const ptr = (d: DataView, off: number, v: number) => d.setBigUint64(off, BigInt(v), true);
  const V = VALUES_314;
  let next = 0x900000;
  const at = (size: number) => {
    const a = next;
    next += Math.ceil(size / 0x100) * 0x100;
    return a;
  };
  const type = (name: string): Address => {
    const a = at(416);
    const n = at(name.length + 1);
    mem.add(n, Uint8Array.from(Buffer.from(`${name}\0`, 'latin1')));
    put(a, 416, (d) => ptr(d, V['type_object']!['tp_name']!, n));
    return a;
  };
  const TASK = type('_asyncio.Task');
  const CORO = type('coroutine');
  const FUT = type('_asyncio.Future');
  const FITER = type('_asyncio.FutureIter');
  const STR = type('str');
  const INT = type('int');
  const str = (text: string): Address => {
    const a = at(64 + text.length);
    const ascii = /^[\x00-\x7f]*$/.test(text);
    const start = ascii ? 40 : 56;
    put(a, start + text.length + 1, (d) => {
      ptr(d, 8, STR);
      d.setBigInt64(16, BigInt(text.length), true);
      d.setUint32(32, (1 << 2) | (1 << 5) | (ascii ? 1 << 6 : 0), true);
      [...text].forEach((c, i) => d.setUint8(start + i, c.codePointAt(0)!));
    });
    return a;
  };
  const int = (v: number): Address => {
    const a = at(32);
    put(a, 32, (d) => {
      ptr(d, 8, INT);
      ptr(d, 16, 1 << 3); // one digit, positive
      d.setUint32(24, v, true);
    });
    return a;
  };
  const G = V['gen_object']!;
  const FR = V['interpreter_frame']!;
  const C = V['code_object']!;
  const TAG = 1;
  // a coroutine: its frame at gi_iframe (code, instruction, owner GENERATOR), its state, and
  // when suspended in an await the awaited object on top of its stack
  const coro = (qualname: string, code: Address, offset: number, state: number, awaits?: Address): Address => {
    const a = at(256);
    put(a, 256, (d) => {
      ptr(d, 8, CORO);
      ptr(d, G['gi_name']!, str(qualname.split('.').at(-1)!));
      ptr(d, G['gi_name']! + 8, str(qualname));
      d.setInt8(G['gi_frame_state']!, state);
      const f = G['gi_iframe']!;
      ptr(d, f + FR['executable']!, code + TAG);
      ptr(d, f + FR['instr_ptr']!, code + C['co_code_adaptive']! + offset);
      d.setUint8(f + FR['owner']!, 1); // FRAME_OWNED_BY_GENERATOR
      if (awaits !== undefined) {
        ptr(d, f + FR['localsplus']!, awaits + TAG); // a tagged _PyStackRef
        ptr(d, f + FR['stackpointer']!, a + f + FR['localsplus']! + 8);
      } else ptr(d, f + FR['stackpointer']!, a + f + FR['localsplus']!);
    });
    return a;
  };
  const C1 = 0x300000;
  const C2 = 0x301000;
  const C5 = 0x304000;
  const LOOP = at(64);
  const F1 = at(128);
  put(F1, 128, (d) => ptr(d, 8, FUT));
  const FI = at(32);
  put(FI, 32, (d) => {
    ptr(d, 8, FITER);
    ptr(d, 16, F1);
  });
  const inner = coro('K.𠀀', C5, 10, -1, FI);
  const outer = coro('Outer.inner', C1, 14, -1, inner);
  const fresh = coro('größe', C2, 8, -3);
  // the lists: thread A's ring, head → fetcher → seven → head (struct llist_node at +152)
  const TS = V['thread_state']!;
  const { bytes: table, tstateExt } = asyncioTable314(TS['size']!, V['interpreter_state']!['size']!);
  const headA = x.tstateA + tstateExt + 24;
  const headB = x.tstateB + tstateExt + 24;
  const fetcher = at(168);
  const seven = at(168);
  const nodeOf = (t: Address) => t + 152;
  const task = (a: Address, name: Address, c: Address, waiter: Address, nextNode: Address, prevNode: Address) =>
    put(a, 168, (d) => {
      ptr(d, 8, TASK);
      ptr(d, 16, LOOP); // fut_loop
      d.setInt32(104, 0, true); // fut_state: pending
      d.setUint8(108, 1); // fut_is_task
      ptr(d, 120, waiter);
      ptr(d, 128, c);
      ptr(d, 136, name);
      ptr(d, 152, nextNode);
      ptr(d, 160, prevNode);
    });
  task(fetcher, str('fetcher'), outer, F1, nodeOf(seven), headA);
  task(seven, int(7), fresh, 0, headA, nodeOf(fetcher));
  put(x.tstateA + tstateExt, 64, (d) => {
    ptr(d, 8, LOOP); // asyncio_running_loop
    ptr(d, 24, nodeOf(fetcher)); // head.next
    ptr(d, 32, nodeOf(seven)); // head.prev
  });
  put(x.tstateB + tstateExt, 64, (d) => {
    ptr(d, 24, headB);
    ptr(d, 32, headB);
  });
  const interp = mem.readPtr(x.rt.runtimeAddress + layout.runtime.interpreters_head);
  return { table, interp, tasks: { fetcher, seven }, loop: LOOP };
}

test('3.14 asyncio tasks on a synthetic process: the AsyncioDebug table, every thread\'s task list, await chains through tagged stack refs, lazy names', () => {
  const x = synthetic314();
  const { table, interp, tasks } = withTasks314(x);
  const D = parseAsyncioDebugOffsets(table, 'synthetic _asyncio', x.layout);
  assert.deepEqual(D.task, { size: 168, name: 136, awaitedBy: 96, isTask: 108, awaitedByIsSet: 109, coro: 128, node: 152 });
  const a = readAsyncTasks(x.mem, x.layout, interp, 14, { asyncioDebug: D });
  assert.equal(a.unreadable, undefined);
  assert.equal(a.asyncio, true);
  assert.equal(a.registered, 2);
  assert.equal(a.torn, 0);
  const byName = new Map(a.tasks.map((t) => [t.name, t]));
  assert.deepEqual([...byName.keys()].sort(), ['Task-7', 'fetcher']);
  const f = byName.get('fetcher')!;
  assert.equal(f.address, tasks.fetcher);
  assert.equal(f.state, 'pending');
  assert.equal(f.coroutine, 'Outer.inner');
  assert.equal(f.waitsOn, '_asyncio.Future');
  assert.equal(f.running, false);
  // innermost first: the awaited coroutine, then the task's own
  assert.deepEqual(f.stack, [fr('𠀀', 'K.𠀀', 'main.py', 32, 30), fr('inner', 'Outer.inner', 'app.py', 15, 10)]);
  // thread A runs the task's loop: its threading ident
  assert.equal(f.loopThread, String(0x7f00aa000700n));
  const s = byName.get('Task-7')!;
  assert.equal(s.coroutine, 'größe');
  assert.equal(s.waitsOn, null);
  assert.deepEqual(s.stack, [fr('größe', 'größe', '/srv/汉字.py', 81, 40)]);
  // read in turn: two turns of a stride of 2 give each task once (or both in one turn)
  const state = newAsyncReadState();
  const seen: Address[] = [];
  for (let i = 0; i < 2; i++) seen.push(...readAsyncTasks(x.mem, x.layout, interp, 14, { asyncioDebug: D, stride: 2, state }).tasks.map((t) => t.address));
  assert.deepEqual(seen.sort(), [tasks.fetcher, tasks.seven].sort());
  // without the table (no _asyncio loaded): no tasks, not an error; with none found: said so
  assert.equal(readAsyncTasks(x.mem, x.layout, interp, 14, { asyncioDebug: null }).asyncio, false);
  assert.match(readAsyncTasks(x.mem, x.layout, interp, 14).unreadable ?? '', /AsyncioDebug/);
});

test('3.14 asyncio table: a table that does not hold together is refused with what is wrong', () => {
  const x = synthetic314();
  const TS = VALUES_314['thread_state']!;
  const IS = VALUES_314['interpreter_state']!;
  const good = asyncioTable314(TS['size']!, IS['size']!).bytes;
  const withWord = (i: number, v: number) => {
    const b = good.slice();
    new DataView(b.buffer).setBigUint64(i * 8, BigInt(v), true);
    return b;
  };
  const refused = (b: Uint8Array, re: RegExp) => assert.throws(() => parseAsyncioDebugOffsets(b, '/x/_asyncio.so section .AsyncioDebug', x.layout), (e: unknown) => e instanceof AsyncioDebugError && re.test(e.message) && e.message.includes('/x/_asyncio.so'));
  refused(good.subarray(0, 80), /80 bytes/);
  refused(withWord(0, 20), /sizeof\(TaskObj\) 20/);
  refused(withWord(6, 160), /task node at 160/);
  refused(withWord(5, 112), /task_coro at 112 leaves no room for task_fut_waiter/);
  refused(withWord(7, IS['size']! + 8), /PyInterpreterState.*_Py_DebugOffsets say/);
  refused(withWord(9, 40), /sizeof\(_PyThreadStateImpl\) 40/);
  refused(withWord(12, TS['size']! + 60), /thread tasksHead/);
});

test('3.14 GIL holder and code_object_generation come from the debug-offsets layout', () => {
  const { mem, layout, rt, tstateA } = synthetic314();
  assert.equal(gilHolder(mem, layout, rt.runtimeAddress, 14), tstateA);
  assert.equal(readCodeObjectGeneration(mem, layout, rt.runtimeAddress), 7n);
  // generated layouts have no generation counter
  assert.equal(readCodeObjectGeneration(mem, layoutFor(3, 12)!, rt.runtimeAddress), null);
});

test('3.14 without the frame-owner values (a layout not from _Py_DebugOffsets) is refused, not guessed', () => {
  const { mem, layout, rt } = synthetic314();
  const { frame_owner: _o, ...bare } = layout;
  assert.throws(() => walkThreads(mem, rt, bare, V3140), (e: unknown) => e instanceof WalkError && /no frame-owner values/.test(e.message));
  assert.throws(() => walkThreads(mem, rt, layout, { major: 3, minor: 15 }), /no stack walker for Python 3\.15/);
});

test('3.14 tables: corrupt ones and a 3.14 table in a 3.13 library are DebugOffsetsErrors', () => {
  const img = (values: Values, hexv = 0x030e00f0n) => new ImageMemory([[AT, encodeTable(ORDER_314, values, hexv)]]);
  assert.equal(readDebugOffsets(img(VALUES_314), AT, V3140).bytes, 760);
  const bad = clone(VALUES_314);
  bad['debugger_support']!['remote_debugger_support'] = 400; // beyond thread_state.size 320
  assert.throws(() => readDebugOffsets(img(bad), AT, V3140), /debugger_support\.remote_debugger_support = 400 is not inside thread_state \(size 320\)/);
  const tlbc = clone(VALUES_314);
  tlbc['code_object']!['co_tlbc'] = 216;
  assert.throws(() => readDebugOffsets(img(tlbc), AT, V3140), /code_object\.co_tlbc = 216, but only a free-threaded build/);
  const gen = clone(VALUES_314);
  gen['gen_object']!['gi_iframe'] = 112;
  assert.throws(() => readDebugOffsets(img(gen), AT, V3140), /gen_object\.gi_iframe = 112 is not inside the struct/);
  assert.throws(() => readDebugOffsets(img(VALUES_314), AT, V3130), (e: unknown) => e instanceof DebugOffsetsError && /3\.14\.0 disagrees with Py_Version 3\.13\.0/.test(e.message));
  // a 3.14 table read as 3.13 (misaligned fields) does not validate either
  assert.throws(() => readDebugOffsets(new ImageMemory([[AT, encodeTable(ORDER_314, VALUES_314, 0x030d00f0n)]]), AT), DebugOffsetsError);
});

test('an unknown future version (3.15 table) is a clear unsupported-version error', () => {
  const mem = new ImageMemory([[AT, encodeTable(ORDER_314, VALUES_314, 0x030f00a1n)]]);
  assert.throws(
    () => readDebugOffsets(mem, AT),
    (e: unknown) => e instanceof DebugOffsetsError && /Python 3\.15\.0a1, an unsupported version: pylens reads _Py_DebugOffsets of 3\.13 and 3\.14 only/.test(e.message),
  );
  const v315 = decodeVersionHex(0x030f00a1);
  assert.throws(
    () => layoutForRuntime({ pid: 77, runtimeAddress: AT, version: v315 }, mem),
    (e: unknown) => e instanceof UnsupportedVersionError && e.pid === 77 && /process 77 runs Python 3\.15\.0a1.*supported: 3\.8 to 3\.14/.test(e.message),
  );
  // 3.8–3.12 use the generated layouts, untouched
  for (const minor of [8, 9, 10, 11, 12]) {
    assert.equal(layoutForRuntime({ pid: 1, runtimeAddress: AT, version: decodeVersionHex(0x030000f0 | (minor << 16)) }, mem), layoutFor(3, minor));
  }
});

// ---- (a) live CPython 3.13 ---------------------------------------------------------------

const SCRIPT = `import sys, threading, time

def leaf(ev):
    ev.set()
    time.sleep(60)  # @leaf

class K:
    def größe(self, ev):
        leaf(ev)  # @mid

def gen(ev):
    yield K().größe(ev)  # @gen

def run(ev):
    next(gen(ev))  # @run

ev = threading.Event()
threading.Thread(target=run, args=(ev,), daemon=True).start()
ev.wait()
print("ready", flush=True)

def main():
    time.sleep(60)  # @main

main()  # @module
`;

function lineOf(marker: string): number {
  const i = SCRIPT.split('\n').findIndex((l) => l.endsWith(`# @${marker}`));
  assert.ok(i >= 0, marker);
  return i + 1;
}

const py313 = installedPythons().filter((p) => p.minor === 13 && p.lib);
const dir = mkdtempSync(join(tmpdir(), 'pylens-dbgoff-'));
const scriptPath = join(dir, 'dbg_offsets.py');
writeFileSync(scriptPath, SCRIPT);
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('live 3.13: _Py_DebugOffsets layout = generated layout, same stacks', { skip: py313.length === 0 ? 'no CPython 3.13 installed' : false }, async () => {
  for (const py of py313) {
    const child = spawn(py.exe, [scriptPath], { stdio: ['ignore', 'pipe', 'inherit'] });
    let mem: ProcMemory | undefined;
    try {
      assert.equal(await firstLine(child, py.exe), 'ready');
      await new Promise((r) => setTimeout(r, 300));
      const rt = locateRuntime(child.pid!);
      assert.equal(rt.version.minor, 13);
      mem = ProcMemory.open(child.pid!);
      const table = readDebugOffsets(mem, rt.runtimeAddress, rt.version);
      assert.equal(table.bytes, 584);
      if (rt.version.text === '3.13.0') assert.deepEqual(table.sections, valuesFromWords(ORDER_313, WORDS_3130), 'the 3.13.0 words this file was written from');
      const fromTable = layoutFromDebugOffsets(table);
      assertCarriedAgree(table.sections, fromTable, py.label);
      assert.deepEqual({ ...withoutDebugOnly(fromTable), version: generated313.version, hexversion: generated313.hexversion }, generated313);
      // the attach-path entry point gives the same layout
      assert.deepEqual(layoutForRuntime(rt), fromTable);

      const viaTable = walkThreads(mem, rt, fromTable, rt.version);
      const viaGenerated = walkThreads(mem, rt, generated313, rt.version);
      assert.deepEqual(viaTable, viaGenerated);
      assert.equal(viaTable.length, 2);
      for (const t of viaTable) assert.equal(t.error, undefined, t.error);
      const brief = (f: Frame) => `${f.qualname}@${f.line}`;
      assert.deepEqual(viaTable[1]!.frames!.map(brief), [`main@${lineOf('main')}`, `<module>@${lineOf('module')}`]);
      assert.deepEqual(viaTable[0]!.frames!.slice(0, 4).map(brief), [
        `leaf@${lineOf('leaf')}`,
        `K.größe@${lineOf('mid')}`,
        `gen@${lineOf('gen')}`,
        `run@${lineOf('run')}`,
      ]);
      assert.equal(gilHolder(mem, fromTable, rt.runtimeAddress, 13), gilHolder(mem, generated313, rt.runtimeAddress, 13));
    } finally {
      mem?.close();
      child.kill('SIGKILL');
    }
  }
});
