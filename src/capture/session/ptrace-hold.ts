/**
 * Holding a launched Python that the python gate cannot hold (`-I`, `-E`, `-S`): the
 * program waits at the exec gate, is seized with ptrace (SEIZE: no signal, nothing reaches
 * its parent) and let go; it then runs from one system call to the next, stopped at each
 * (PTRACE_SYSCALL), and at the ones that open a Python file (the interpreter's imports,
 * then the script itself; every 8th other open too) pylens tries to attach its sampler. The first try that finds the
 * interpreter with a thread ends the hold: the tracee is detached and goes on, with the
 * sampler attached before any of the program's code ran.
 *
 * The interpreter's start makes a few hundred system calls; each stop costs the tracee a
 * round trip through pylens (µs), each try to attach 0.2–4 ms (pylens reads the process's
 * maps and runtime). Measured: held ~35 ms on 3.12/3.13, ~75 ms on 3.8/3.10. Nothing of the
 * program is missed however long it takes: the program is stopped meanwhile.
 *
 * Blocking: the whole hold runs synchronously on pylens's thread (the tracer must be the
 * thread that seized), so nothing else runs meanwhile: it is bounded by `timeoutMs`.
 */
import type { Syscalls } from '../sampler/syscalls.ts';

const PTRACE_O_TRACESYSGOOD = 0x1;
const PTRACE_O_TRACEEXEC = 0x10;
const PTRACE_EVENT_EXEC = 4;
const PTRACE_EVENT_STOP = 128;
const SIGTRAP = 5;
/** x86-64 `open` and `openat` (the path: argument 0, argument 1): where the interpreter opens what it imports, and the script */
const OPEN = 2;
const OPENAT = 257;
/**
 * a try at an open whose path is not Python's (`.py`, `.pyc`) every this many such opens: the
 * interpreter opens none of those before it has a thread (its first is `encodings`), and a
 * failed try costs ms (~4 on 3.8); the dynamic loader's and the path configuration's opens
 * come before
 */
const OTHER_OPENS_EVERY = 8;
/** where the system call's number cannot be read (another architecture): try every N stops */
const TRY_EVERY = 16;

export type HoldResult<T> =
  /** still stopped (at a system call's entry or exit): `resume` detaches it, once, from this same thread */
  | { state: 'attached'; value: T; stops: number; heldMs: number; resume: () => void }
  | { state: 'gone' }
  /** the hold could not start (ptrace refused: another tracer, no permission); `release` was not called */
  | { state: 'refused'; why: string }
  /** `timeoutMs` passed without a try succeeding: detached, the program runs on */
  | { state: 'timeout'; stops: number };

/**
 * Seize `pid` (waiting at the exec gate), call `release` (which lets it exec: it must have
 * written its byte when it returns true), then step it through its system calls until
 * `tryAttach` returns a value (or throws: the error ends the hold and is rethrown, the
 * tracee detached).
 *
 * Synchronous from the seize to the last stop, on purpose: Node's child handling (libuv's
 * waitpid after a SIGCHLD) would take a ptrace stop it found pending for the child's exit,
 * so no event-loop turn may happen while a stop is unconsumed. After an attach the tracee
 * is left stopped, its stop consumed: the caller resumes it once everything else is ready
 * (the tools beside the sampler). Stopped, it makes no new stop for Node to see (a signal
 * waits until it resumes; SIGKILL ends it, an exit Node reaps as usual), and if pylens
 * dies the kernel detaches it.
 */
export function holdUntilAttached<T>(
  sys: Syscalls,
  pid: number,
  release: () => boolean,
  tryAttach: () => T | undefined,
  timeoutMs = 5000,
): HoldResult<T> {
  const seized = sys.seizeWith(pid, PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACEEXEC);
  if (seized !== 0) return { state: 'refused', why: `PTRACE_SEIZE of process ${pid} failed (errno ${seized})` };
  if (!release()) {
    // the byte waits for the event loop: stop the shell where it waits, and let it be
    sys.interrupt(pid);
    const s = sys.waitTraced(pid);
    if (s.state === 'gone') return { state: 'gone' };
    sys.detach(pid, s.event === PTRACE_EVENT_STOP ? 0 : s.signal);
    return { state: 'refused', why: 'the start gate could not be opened at once' };
  }
  const t0 = performance.now();
  let stops = 0;
  let execed = false;
  let entry = false;
  let deliver = 0;
  let otherOpens = 0;
  const detach = () => sys.detach(pid, deliver);
  for (;;) {
    const s = sys.waitTraced(pid);
    if (s.state === 'gone') return { state: 'gone' };
    stops++;
    deliver = 0;
    let tryNow = false;
    if (s.event === PTRACE_EVENT_EXEC) {
      // inside execve: the next syscall stop is its exit
      execed = true;
      entry = true;
    } else if (s.signal === (SIGTRAP | 0x80)) {
      entry = !entry;
      if (execed && entry) {
        const nr = sys.syscallNumber(pid);
        if (nr < 0) tryNow = stops % TRY_EVERY === 0;
        else if (nr === OPEN || nr === OPENAT) tryNow = opensPython(sys, pid, nr === OPEN ? 0 : 1) || ++otherOpens % OTHER_OPENS_EVERY === 0;
      }
    } else if (s.event !== PTRACE_EVENT_STOP) {
      // a signal on its way to the tracee: delivered when it is resumed
      deliver = s.signal;
    }
    if (tryNow) {
      let value: T | undefined;
      try {
        value = tryAttach();
      } catch (e) {
        detach();
        throw e;
      }
      if (value !== undefined) {
        let resumed = false;
        const resume = () => {
          if (resumed) return;
          resumed = true;
          detach();
        };
        return { state: 'attached', value, stops, heldMs: performance.now() - t0, resume };
      }
    }
    if (performance.now() - t0 > timeoutMs) {
      detach();
      return { state: 'timeout', stops };
    }
    if (sys.resumeToSyscall(pid, deliver) !== 0) {
      // it ended between the stop and the resume
      return { state: 'gone' };
    }
  }
}

/** Does the open the tracee stopped at name a Python file (`.py`, `.pyc`)? true also when the path cannot be read. */
function opensPython(sys: Syscalls, pid: number, arg: 0 | 1): boolean {
  const at = sys.syscallArg(pid, arg);
  if (at < 0) return true;
  let n: number;
  try {
    // a path within a page (the kernel stops at an unmapped one): up to its end, at most 256 bytes
    n = sys.read(pid, at, Math.min(256, 4096 - (at % 4096)));
  } catch {
    return true;
  }
  const b = sys.scratchBytes;
  let end = 0;
  while (end < n && b[end] !== 0) end++;
  if (end === n && n === 256) return true; // longer than read: look at it anyway
  const dot = end >= 4 && b[end - 4] === 0x2e ? end - 4 : end >= 3 && b[end - 3] === 0x2e ? end - 3 : -1;
  if (dot < 0) return false;
  const ext = String.fromCharCode(...b.subarray(dot, end));
  return ext === '.py' || ext === '.pyc';
}
