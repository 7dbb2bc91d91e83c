/** Injection tokens for values of the runtime that are not classes. */
export const LOGGER = Symbol('LOGGER');
export const DATABASE_URL = Symbol('DATABASE_URL');
