/**
 * Stopping one thread of the target for the length of one stack read, with ptrace
 * (syscalls.ts): PTRACE_SEIZE, PTRACE_INTERRUPT, wait for the stop, read, PTRACE_DETACH.
 * Nothing reaches the target or its parent: SEIZE sends no signal, the interrupt stop is
 * reported to the tracer only, a signal that arrives meanwhile is delivered at detach, and a
 * thread interrupted inside a system call resumes it (the kernel restarts it).
 *
 * Used two ways (session.ts): `--blocking` stops every running thread for each of its
 * samples (exact stacks, at the cost printed in the profile); otherwise a thread is stopped
 * only when every lock-free read of its stack was torn, within a budget of the target's
 * time (default 1 %), so ordinary samples cost the target nothing.
 *
 * If pylens dies while a thread is stopped, the kernel detaches it and it runs on.
 */
import { ERRNO, type Syscalls } from './syscalls.ts';

export interface PauseStats {
  /** threads stopped and resumed */
  pauses: number;
  /** total time threads were held stopped, ns (from the seize to the detach) */
  pausedNs: number;
  /** attempts that could not stop the thread (already traced, not permitted, gone, slow to stop) */
  failures: number;
  /** why the last failure happened */
  lastFailure?: string;
}

export class ThreadPauser {
  private sys: Syscalls;
  readonly stats: PauseStats = { pauses: 0, pausedNs: 0, failures: 0 };
  /** set when pausing cannot work for this target (someone else traces it; not permitted) */
  disabled: string | undefined;
  /** threads seized that had not stopped when we gave up waiting: detached once they stop */
  private pending = new Set<number>();

  constructor(sys: Syscalls) {
    this.sys = sys;
  }

  private fail(why: string): undefined {
    this.stats.failures++;
    this.stats.lastFailure = why;
    return undefined;
  }

  /**
   * Stop thread `tid`. Returns the function that resumes it (call it once, as soon as the
   * read is done), or undefined when the thread could not be stopped.
   */
  pause(tid: number): (() => void) | undefined {
    if (this.disabled !== undefined || this.pending.has(tid)) return undefined;
    const t0 = performance.now();
    const seized = this.sys.seize(tid);
    if (seized !== 0) {
      if (seized === ERRNO.EPERM) this.disabled = 'ptrace refused (EPERM): the target is traced by another tool (a debugger, strace, another profiler in blocking mode) or ptrace is not permitted';
      return this.fail(seized === ERRNO.ESRCH ? `thread ${tid} is gone` : `PTRACE_SEIZE of thread ${tid} failed (errno ${seized})`);
    }
    const intr = this.sys.interrupt(tid);
    if (intr !== 0) {
      // seized but not interrupted (it exited meanwhile): nothing will stop it, and a
      // running tracee cannot be detached; the kernel forgets it when it is gone
      this.pending.add(tid);
      return this.fail(`PTRACE_INTERRUPT of thread ${tid} failed (errno ${intr})`);
    }
    // The interrupt stops a running thread within tens of µs, and one asleep in a system
    // call at once (the call is restarted when it resumes); only an uninterruptible sleep
    // (disk I/O, a page fault) delays it, until that ends. Callers stop running threads only.
    const s = this.sys.pollStop(tid, true);
    if (s.state === 'gone') return this.fail(`thread ${tid} ended while being stopped`);
    if (s.state === 'running') {
      this.pending.add(tid);
      return this.fail(`thread ${tid} did not report its stop`);
    }
    const signal = s.signal;
    let resumed = false;
    return () => {
      if (resumed) return;
      resumed = true;
      this.sys.detach(tid, signal);
      this.stats.pauses++;
      this.stats.pausedNs += (performance.now() - t0) * 1e6;
    };
  }

  /** detach threads that stopped after `pause` gave up on them; call once per tick */
  settle(): void {
    for (const tid of this.pending) {
      const s = this.sys.pollStop(tid);
      if (s.state === 'running') continue;
      if (s.state === 'stopped') this.sys.detach(tid, s.signal);
      this.pending.delete(tid);
    }
  }

  /** at the end: threads still pending are detached by the kernel when pylens exits */
  close(): void {
    this.settle();
  }
}
