/**
 * `pylens count` (issue 6) — placeholder while it is being built; replaced by its owner.
 */
import type { CommandSpec, Parsed } from './args.ts';
import { CliError } from './errors.ts';

export const countSpec: CommandSpec = {
  name: 'count',
  summary: '(being built)',
  usage: 'pylens count [options] -- python script.py [args…]',
  positionals: { min: 0, max: 0 },
  options: [],
  examples: [],
  rest: true,
};

export async function runCount(_args: Parsed): Promise<number> {
  throw new CliError('pylens count is not built yet', 'wait for issue 6');
}
