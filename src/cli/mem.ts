/**
 * `pylens mem` (issue 6) — placeholder while it is being built; replaced by its owner.
 */
import type { CommandSpec, Parsed } from './args.ts';
import { CliError } from './errors.ts';

export const memSpec: CommandSpec = {
  name: 'mem',
  summary: '(being built)',
  usage: 'pylens mem [options] -- python script.py [args…]',
  positionals: { min: 0, max: 0 },
  options: [],
  examples: [],
  rest: true,
};

export async function runMem(_args: Parsed): Promise<number> {
  throw new CliError('pylens mem is not built yet', 'wait for issue 6');
}
