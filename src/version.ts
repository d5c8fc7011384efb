/** The pylens version, kept in step with package.json (a test checks they agree). */
export const PYLENS_VERSION = '0.1.0';
