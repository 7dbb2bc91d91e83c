import { Foundation1732460000000 } from './1732460000000-foundation';
import { Inventory1732470000000 } from './1732470000000-inventory';
import { Colocation1732480000000 } from './1732480000000-colocation';

/** Every migration, in order. Schema changes only ever happen here. */
export const MIGRATIONS = [Foundation1732460000000, Inventory1732470000000, Colocation1732480000000];
