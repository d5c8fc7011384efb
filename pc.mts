import { processCpuNs } from '/work/main/src/capture/perf/tool.ts';
const pid = Number(process.argv[2]);
const a = processCpuNs(pid); await new Promise((r) => setTimeout(r, 3000)); const b = processCpuNs(pid);
console.log(a, b);
