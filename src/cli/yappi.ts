/**
 * `pylens yappi` (issue 6) — placeholder while it is being built; replaced by its owner.
 */
import type { CommandSpec, Parsed } from './args.ts';
import { CliError } from './errors.ts';

export const yappiSpec: CommandSpec = {
  name: 'yappi',
  summary: '(being built)',
  usage: 'pylens yappi [options] -- python script.py [args…]',
  positionals: { min: 0, max: 0 },
  options: [],
  examples: [],
  rest: true,
};

export async function runYappi(_args: Parsed): Promise<number> {
  throw new CliError('pylens yappi is not built yet', 'wait for issue 6');
}
