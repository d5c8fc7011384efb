/**
 * CPython's own frames in native stacks, and folding them away.
 *
 * A perf stack of a Python program interleaves the program's Python frames (`py::` perf-map
 * or jitdump symbols, or frames the sampler spliced in) with the interpreter that runs
 * them: the eval loop, the call machinery (vectorcall, tp_call, method wrappers), the perf
 * trampoline, and the startup chain from `_start` to `PyRun_*`. To a Python engineer these
 * are noise. `hideInterpreter` rewrites each stack so it reads like Python with native and
 * kernel leaves:
 *
 * - before the outermost Python frame: every frame but markers (thread/process roots) goes
 *   (process startup, thread bootstrap, perf's broken-unwind `[unknown]`);
 * - between Python frames: frames of the interpreter's own binary (libpython / the python
 *   executable) go, frames of other libraries stay (a C extension calling back into Python
 *   is real information);
 * - after the innermost Python frame: only the call machinery goes, so the C function
 *   that holds the time stays (`bytes_new`, `list_sort`, `deflate`, `sha256_update`…).
 *
 * Stacks without any Python frame are left as they are.
 */
import type { FrameKind, IndexIntoFrames, Profile } from '../model/profile.ts';
import { mapSamples } from '../model/query.ts';

/** libpython3.X.so[.1.0], libpython3.Xd.so, or a python executable (static builds). */
const INTERPRETER_LIB = /^(?:libpython\d+(?:\.\d+)?[a-z]*\.so(?:\.[\d.]+)?|python\d*(?:\.\d+)?[a-z]*)$/;

export function isInterpreterLib(lib: string | null | undefined): boolean {
  return lib !== null && lib !== undefined && INTERPRETER_LIB.test(lib);
}

/**
 * The eval loop: a native frame of this name runs Python code. The frames the eval loop
 * executes sit right above it (rootward) in perf's trampoline stacks, and it is the
 * boundary `record --native` splices native frames at.
 */
const EVAL_FRAME = /^(?:_PyEval_EvalFrameDefault|PyEval_EvalFrameEx|_PyEval_EvalFrame|PyEval_EvalFrame|_PyEval_EvalFrameDefault\.cold(?:\.\d+)?|py_trampoline_evaluator|_TAIL_CALL_\w+)$/;

export function isEvalFrame(name: string): boolean {
  return EVAL_FRAME.test(name);
}

/**
 * The call machinery between the eval loop and the function that does the work, plus the
 * startup and thread-bootstrap chains. Names from CPython 3.8–3.14's Objects/call.c,
 * Python/ceval.c, Objects/methodobject.c, Objects/descrobject.c, Objects/typeobject.c,
 * Python/pythonrun.c, Modules/main.c, Modules/_threadmodule.c, Python/perf_trampoline.c.
 */
const PLUMBING = new RegExp(
  '^(?:' +
    [
      // eval loop and code evaluation
      '_?PyEval_EvalFrame\\w*', '_PyEval_Vector', '_?PyEval_EvalCode\\w*', '_PyEval_EvalCodeWithName', 'py_trampoline_evaluator',
      'function_code_fastcall', '_PyFunction_Vectorcall', '_PyFunction_FastCall\\w*', 'call_function', 'do_call_core', '_PyEval_EvalFrameDefault\\.cold(?:\\.\\d+)?',
      // generic calls
      '_?PyObject_Vectorcall\\w*', '_?PyObject_Call\\w*', '_PyObject_MakeTpCall', '_?PyObject_FastCall\\w*', 'object_vacall',
      '_?PyVectorcall_Call', 'PyVectorcall_Function', '_PyStack_\\w+',
      // builtin functions and methods
      'cfunction_\\w+', '_?PyCFunction_\\w+', 'method_vectorcall\\w*', 'vectorcall_\\w+', 'method_call', 'wrapperdescr_call', 'wrapper_call',
      'method_get', 'classmethod_get', 'slot_tp_call', 'type_call', 'partial_call', 'partial_vectorcall',
      // startup, exec, threads
      'builtin_exec(?:_impl)?', 'exec_code_in_module', 'run_eval_code_obj', 'run_mod', 'pyrun_\\w+', '_?PyRun_\\w+', 'pymain_\\w+', 'Py_RunMain', 'Py_BytesMain', 'Py_Main',
      'main', '_start', '__libc_start_\\w+', 'thread_run', 't_bootstrap', 'pythread_wrapper', 'start_thread', 'clone3?', '__clone\\w*',
    ].join('|') +
    ')$',
);

/** A native frame that is interpreter call machinery (see PLUMBING). Inlined frames carry the lib of their host. */
export function isPlumbing(name: string, lib: string | null | undefined): boolean {
  if (lib !== null && lib !== undefined && !isInterpreterLib(lib) && !/^libc[.-]|^ld-linux/.test(lib)) return false;
  return PLUMBING.test(name);
}

/** Options for hideInterpreter. */
export interface HideOptions {
  /** Also drop kernel frames (perf `--no-kernel` after the fact). */
  dropKernel?: boolean;
}

/**
 * Fold CPython's own frames out of every stack (rules at the top of this file). Returns a
 * new profile; `p` is not changed. Samples keep their order, times, threads and values.
 */
export function hideInterpreter(p: Profile, opts: HideOptions = {}): Profile {
  const kind = p.frames.kind;
  const drop = new Uint8Array(p.frames.length); // 1 = interpreter lib frame, 2 = plumbing too, 4 = startup-ish
  for (let f = 0; f < p.frames.length; f++) {
    const k: FrameKind = kind[f]!;
    if (k !== 'native') continue;
    const lib = p.frames.lib[f]! >= 0 ? p.strings[p.frames.lib[f]!]! : null;
    const name = p.strings[p.frames.name[f]!]!;
    let d = 0;
    if (isInterpreterLib(lib)) d |= 1;
    if (isPlumbing(name, lib)) d |= 2;
    drop[f] = d;
  }
  const perStack = new Map<number, IndexIntoFrames[]>();
  const out = mapSamples(p, (frames, i) => {
    const s = p.samples.stack[i]!;
    const hit = perStack.get(s);
    if (hit) return hit;
    const r = foldStack(frames, kind, drop, opts.dropKernel ?? false);
    perStack.set(s, r);
    return r;
  });
  out.meta.extra = { ...(out.meta.extra ?? {}), interpreterFrames: 'hidden' };
  return out;
}

function foldStack(frames: IndexIntoFrames[], kind: FrameKind[], drop: Uint8Array, dropKernel: boolean): IndexIntoFrames[] {
  let first = -1;
  let last = -1;
  for (let j = 0; j < frames.length; j++) {
    if (kind[frames[j]!] === 'python') {
      if (first < 0) first = j;
      last = j;
    }
  }
  const r: IndexIntoFrames[] = [];
  for (let j = 0; j < frames.length; j++) {
    const f = frames[j]!;
    const k = kind[f]!;
    if (k === 'kernel' && dropKernel) continue;
    // rootward of the outermost Python frame only startup can be: native frames, and perf's
    // broken-unwind marker (address ffffffffffffffff, read as a kernel address)
    if (j < first && k !== 'marker') continue;
    if (first >= 0 && k === 'native') {
      if (j < last && drop[f]! & 1) continue;
      if (drop[f]! & 2) continue;
    }
    r.push(f);
  }
  return r;
}
