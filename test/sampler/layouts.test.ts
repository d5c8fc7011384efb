/**
 * The generated layouts (tools/gen-layouts.sh) against the numbers in
 * docs/cpython-internals.md, which were measured on these exact builds and confirmed by
 * walking live processes; for 3.13 also against the `_Py_DebugOffsets` read from a live
 * 3.13.0. A mismatch means the generator or the doc is wrong: find out which.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { layoutFor, SUPPORTED_LAYOUTS, type Layout } from '../../src/capture/sampler/layouts/index.ts';

function layout(minor: number): Layout {
  const l = layoutFor(3, minor);
  assert.ok(l, `no layout for 3.${minor}`);
  return l;
}

/** Flatten to "section.field" → value so one table row is one assertion message. */
function pick(l: Layout, paths: readonly string[]): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  for (const p of paths) {
    const [section, field] = p.split('.') as [keyof Layout, string];
    out[p] = (l[section] as Record<string, number | null>)[field]!;
  }
  return out;
}

function expectFields(minor: number, expected: Record<string, number | null>): void {
  assert.deepEqual(pick(layout(minor), Object.keys(expected)), expected, `CPython 3.${minor}`);
}

test('one layout per minor version 3.8–3.13, generated from the builds the doc measured', () => {
  assert.deepEqual(SUPPORTED_LAYOUTS.map(([a, b]) => `${a}.${b}`), ['3.8', '3.9', '3.10', '3.11', '3.12', '3.13']);
  const patch: Record<number, string> = { 8: '3.8.18', 9: '3.9.18', 10: '3.10.13', 11: '3.11.7', 12: '3.12.1', 13: '3.13.0' };
  for (const [minor, version] of Object.entries(patch)) {
    const l = layout(Number(minor));
    assert.equal(l.version, version);
    assert.equal(l.hexversion >> 24, 3);
    assert.equal((l.hexversion >> 16) & 0xff, Number(minor));
  }
  assert.equal(layoutFor(3, 7), null);
  assert.equal(layoutFor(3, 14), null);
  assert.equal(layoutFor(2, 7), null);
});

test('3.8–3.10 chain, frame and code offsets (doc §4)', () => {
  for (const minor of [8, 9, 10]) {
    expectFields(minor, {
      'runtime.interpreters_head': 32,
      'interp.threads_head': 8,
      'tstate.next': 8,
      'tstate.frame': 24,
      'tstate.thread_id': 176,
      'tstate.cframe': null,
      'tstate.native_thread_id': null,
      'frame.previous': 24,
      'frame.code': 32,
      'frame.lasti': minor === 10 ? 96 : 104,
      'frame.instr_ptr': null,
      'code.firstlineno': 40,
      'code.filename': 104,
      'code.name': 112,
      'code.linetable': 120,
      'code.qualname': null,
    });
  }
});

test('3.11 / 3.12 / 3.13 chain, frame and code offsets (doc §3 table)', () => {
  const columns = {
    'runtime.interpreters_head': [40, 40, 632],
    'interp.next': [0, 0, 7264],
    'interp.threads_head': [16, 72, 7344],
    'interp.id': [48, 8, 7272],
    'tstate.next': [8, 8, 8],
    'tstate.interp': [16, 16, 16],
    'tstate.cframe': [56, 56, null],
    'cframe.current_frame': [8, 0, null],
    'tstate.current_frame': [null, null, 72],
    'tstate.thread_id': [152, 136, 152],
    'tstate.native_thread_id': [160, 144, 160],
    'frame.code': [32, 0, 0],
    'frame.previous': [48, 8, 8],
    'frame.instr_ptr': [56, 56, 56],
    'frame.is_entry': [68, null, null],
    'frame.owner': [69, 70, 70],
    'code.firstlineno': [72, 68, 68],
    'code.filename': [112, 112, 112],
    'code.name': [120, 120, 120],
    'code.qualname': [128, 128, 128],
    'code.linetable': [136, 136, 136],
    'code.firsttraceable': [168, 176, 184],
    'code.code_adaptive': [184, 192, 200],
  } satisfies Record<string, (number | null)[]>;
  [11, 12, 13].forEach((minor, i) => {
    expectFields(minor, Object.fromEntries(Object.entries(columns).map(([k, v]) => [k, v[i]!])));
  });
});

test('strings and bytes (doc §6)', () => {
  for (const minor of [8, 9, 10, 11, 12, 13]) {
    const old = minor <= 11;
    expectFields(minor, {
      'unicode.length': 16,
      'unicode.state': 32,
      'unicode.ascii_size': old ? 48 : 40,
      'unicode.compact_size': old ? 72 : 56,
      'unicode.data': old ? 72 : 56,
      'bytes.ob_size': 16,
      'bytes.ob_sval': 32,
      'object.ob_type': 8,
    });
  }
});

test('GIL (doc §7)', () => {
  const runtimeGil: Record<number, [number, number, number]> = {
    8: [1160, 1168, 1368],
    9: [360, 368, 568],
    10: [360, 368, 568],
    11: [368, 376, 576],
  };
  for (const [minor, [holder, locked, current]] of Object.entries(runtimeGil)) {
    expectFields(Number(minor), {
      'runtime.gil_last_holder': holder,
      'runtime.gil_locked': locked,
      'runtime.gilstate_tstate_current': current,
      'interp.ceval_gil': null,
    });
  }
  expectFields(12, { 'interp.ceval_gil': 384, 'runtime.gil_last_holder': null, 'gil.last_holder': 8, 'gil.locked': 16 });
  expectFields(13, { 'interp.ceval_gil': 16, 'runtime.gil_last_holder': null, 'gil.last_holder': 8, 'gil.locked': 16 });
});

test('3.13 generated offsets agree with the live _Py_DebugOffsets (doc §2)', () => {
  expectFields(13, {
    'runtime.debug_offsets': 0,
    'runtime.size': 283320,
    'runtime.finalizing': 608,
    'runtime.interpreters_head': 632,
    'interp.size': 194968,
    'interp.id': 7272,
    'interp.next': 7264,
    'interp.threads_head': 7344,
    'interp.modules': 7656,
    'interp.sysdict': 7640,
    'interp.builtins': 7648,
    'interp.ceval_gil': 16,
    'tstate.size': 304,
    'tstate.prev': 0,
    'tstate.next': 8,
    'tstate.interp': 16,
    'tstate.current_frame': 72,
    'tstate.thread_id': 152,
    'tstate.native_thread_id': 160,
    'tstate.datastack_chunk': 232,
    'tstate.status': 32,
    'frame.size': 80,
    'frame.previous': 8,
    'frame.code': 0,
    'frame.instr_ptr': 56,
    'frame.localsplus': 72,
    'frame.owner': 70,
    'code.size': 208,
    'code.filename': 112,
    'code.name': 120,
    'code.qualname': 128,
    'code.linetable': 136,
    'code.firstlineno': 68,
    'code.argcount': 52,
    'code.code_adaptive': 200,
    'object.size': 16,
    'object.ob_type': 8,
    'type.size': 416,
    'type.tp_name': 24,
    'type.tp_flags': 168,
    'tuple.ob_item': 24,
    'tuple.ob_size': 16,
    'list.ob_item': 24,
    'list.ob_size': 16,
    'dict.ma_keys': 32,
    'dict.ma_values': 40,
    'bytes.ob_size': 16,
    'bytes.ob_sval': 32,
    'unicode.size': 64,
    'unicode.state': 32,
    'unicode.length': 16,
    'unicode.ascii_size': 40,
  });
  // _Py_DebugOffsets gives the GIL inside the interpreter: gil_runtime_state 7752,
  // holder 7760, locked 7768, i.e. the struct offsets 8 and 16 we generate.
  const l = layout(13);
  assert.equal(7752 + l.gil.last_holder, 7760);
  assert.equal(7752 + l.gil.locked, 7768);
});

test('every layout is complete for its version (null exactly where the field does not exist)', () => {
  for (const [, minor] of SUPPORTED_LAYOUTS) {
    const l = layout(minor);
    assert.equal(l.tstate.frame !== null, minor <= 10);
    assert.equal(l.tstate.cframe !== null, minor === 11 || minor === 12);
    assert.equal(l.tstate.current_frame !== null, minor >= 13);
    assert.equal(l.frame.lasti !== null, minor <= 10);
    assert.equal(l.frame.instr_ptr !== null, minor >= 11);
    assert.equal(l.code.code_adaptive !== null, minor >= 11);
    assert.equal(l.code.firsttraceable !== null, minor >= 11);
    assert.equal(l.code.qualname !== null, minor >= 11);
    assert.equal(l.runtime.gil_locked !== null, minor <= 11);
    assert.equal(l.interp.ceval_gil !== null, minor >= 12);
    assert.equal(l.dict_keys.dk_indices !== null, minor >= 11);
  }
});
