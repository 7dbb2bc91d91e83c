/** API token roles, from most to least powerful. */
export const ROLE_NAMES = ['admin', 'engineer', 'support', 'billing', 'readonly'] as const;
export type Role = (typeof ROLE_NAMES)[number];

/** Roles that may read general operational state (inventory, jobs, audit). */
export const READ_ROLES: Role[] = ['admin', 'engineer', 'support', 'readonly'];
