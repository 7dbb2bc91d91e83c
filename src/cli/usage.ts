/** A mistake in how a command was called: exit code 2, like bad configuration. */
export class UsageError extends Error {}
