// PLACEHOLDER: being written now; replaced before this lands.
import { NOT_MINE, type Exporter, type Importer } from './types.ts';

export const pstatsImporter: Importer = { id: 'pstats', extensions: ['.pstats', '.prof', '.cprofile'], detect: () => false, parse: () => NOT_MINE };
