/**
 * The floor program's loop in Node (bench/sampler-floor.ts): wake at absolute deadlines
 * (clock_nanosleep TIMER_ABSTIME through koffi, as the sampler does), then 6 reads of 512
 * bytes of the target — one process_vm_readv of 6 ranges — and nothing else. What any
 * sampler whose loop runs in Node pays before it walks a single frame.
 *
 *   node bench/floor/node-floor.ts PID RATE_HZ SECONDS ADDRESS
 */
import { syscalls } from '../../src/capture/sampler/syscalls.ts';
import { monotonicOffsetNs } from '../../src/capture/sampler/sampler.ts';

const [pidS, rateS, secsS, addrS] = process.argv.slice(2);
if (addrS === undefined) {
  console.error('usage: node-floor.ts PID RATE_HZ SECONDS ADDRESS');
  process.exit(2);
}
const pid = Number(pidS);
const rate = Number(rateS);
const addr = Number(addrS);
const sys = syscalls();
if (!sys) throw new Error('koffi could not be loaded');
const addrs = Array.from({ length: 6 }, (_, k) => addr + 512 * k);
const lens = addrs.map(() => 512);
const period = 1e9 / rate;
const n = Math.round(Number(secsS) * rate);
let due = performance.now() * 1e6 + monotonicOffsetNs();
for (let i = 0; i < n; i++) {
  due += period;
  sys.sleepUntilMonotonic(due);
  sys.readv(pid, addrs, lens, 6);
}
