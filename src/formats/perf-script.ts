// PLACEHOLDER: being written now; replaced before this lands.
import { NOT_MINE, type Exporter, type Importer } from './types.ts';

export const perfScriptImporter: Importer = { id: 'perf-script', extensions: ['.perf', '.perf-script', '.perf.txt'], detect: () => false, parse: () => NOT_MINE };
