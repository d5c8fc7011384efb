// PLACEHOLDER: being written now; replaced before this lands.
import { NOT_MINE, type Exporter, type Importer } from './types.ts';

export const austinImporter: Importer = { id: 'austin', extensions: ['.austin'], detect: () => false, parse: () => NOT_MINE };
