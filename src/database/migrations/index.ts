import { Foundation1732460000000 } from './1732460000000-foundation';

/** Every migration, in order. Schema changes only ever happen here. */
export const MIGRATIONS = [Foundation1732460000000];
