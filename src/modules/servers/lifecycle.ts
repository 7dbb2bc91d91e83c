/**
 * The server lifecycle (DESIGN.md): the states and the moves between them. This table is the
 * one source: the service checks it, and the migration's trigger was written from it (a test
 * keeps the two equal).
 */
export const LIFECYCLE_STATES = ['new', 'inspecting', 'available', 'reserved', 'deploying', 'active', 'suspended', 'wiping', 'failed', 'retired'] as const;
export type LifecycleState = (typeof LIFECYCLE_STATES)[number];

export const TRANSITIONS: Record<LifecycleState, LifecycleState[]> = {
  new: ['inspecting', 'available', 'retired'],
  inspecting: ['available', 'failed'],
  available: ['reserved', 'deploying', 'inspecting', 'wiping', 'retired'],
  reserved: ['deploying', 'available', 'failed'],
  deploying: ['active', 'failed'],
  active: ['suspended', 'deploying', 'wiping'],
  suspended: ['active', 'wiping'],
  wiping: ['available', 'failed'],
  failed: ['new', 'inspecting', 'available', 'deploying', 'wiping', 'retired'],
  retired: ['new'],
};

export function canMove(from: LifecycleState, to: LifecycleState): boolean {
  return TRANSITIONS[from].includes(to);
}

/** The SQL list of legal "from>to" pairs, for the database's own check. */
export function transitionPairs(): string[] {
  return Object.entries(TRANSITIONS).flatMap(([from, tos]) => tos.map((to) => `${from}>${to}`));
}
