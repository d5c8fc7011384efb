/**
 * `pylens doctor [--json] [-p PID]`: for each lens, ready / degraded / unavailable, why, and
 * the exact fix (capture/doctor.ts probes; render/doctor.ts prints). With -p, whether that
 * process can be sampled and what each lens would see of it; exit 1 when it cannot be.
 */
import { runDoctor } from '../capture/doctor.ts';
import { PermissionError, ProcessGoneError } from '../capture/sampler/memory.ts';
import { doctorJson, renderDoctorText } from '../render/doctor.ts';
import { UsageError, type CommandSpec, type Parsed } from './args.ts';
import { CliError, EXIT_FAILURE, EXIT_OK } from './errors.ts';

export const doctorSpec: CommandSpec = {
  name: 'doctor',
  summary: 'What each lens (sampler, perf, eBPF, interpreter hooks) can do on this machine, why not, and the exact fix; with -p, whether that process can be sampled.',
  usage: 'pylens doctor [-p PID] [--json]',
  positionals: { min: 0, max: 0 },
  options: [
    { name: 'pid', short: 'p', type: 'number', value: 'PID', help: 'also check this process: can it be sampled, its CPython, what each lens would see' },
    { name: 'json', type: 'boolean', help: 'the report as JSON on stdout' },
  ],
  examples: ['pylens doctor', 'pylens doctor -p 4242', 'pylens doctor --json > doctor.json'],
};

export async function runDoctorCommand(args: Parsed): Promise<number> {
  const pid = args.options.pid as number | undefined;
  if (pid !== undefined && !(Number.isInteger(pid) && pid > 0)) throw new UsageError('doctor', `-p needs a process id (a whole number > 0), got ${pid}`);
  let report;
  try {
    report = await runDoctor(pid !== undefined ? { pid } : {});
  } catch (e) {
    if (e instanceof ProcessGoneError) throw new CliError(`no process ${pid} here (it has exited, or never existed${e.message.includes('PID namespace') ? ", or it is outside this container's PID namespace" : ''})`, e.message.includes('PID namespace') ? "run pylens in the target's PID namespace: `nsenter -t HOSTPID -p -m pylens doctor -p PID` from the host, `docker run --pid=container:APP`, or `shareProcessNamespace: true`" : 'check the PID with `ps -p PID`');
    if (e instanceof PermissionError) throw new CliError(e.message, 'see the fix above');
    throw e;
  }
  process.stdout.write(args.options.json ? JSON.stringify(doctorJson(report), null, 2) + '\n' : renderDoctorText(report));
  return report.target && report.target.status === 'unavailable' ? EXIT_FAILURE : EXIT_OK;
}
