import { Injectable, type OnApplicationShutdown } from '@nestjs/common';

/** setTimeout's longest delay (about 24.8 days); a later expiry is re-armed when it fires. */
const MAX_DELAY_MS = 2 ** 31 - 1;

/**
 * One timer per live grant, so that a grant ends at its `expiresAt` rather than at the next
 * sweep. The process that revokes (roles all and agent) sets the handler; elsewhere `arm` does
 * nothing and that process's sweep arms the grant when it comes near (ConsoleReconciler).
 * The handler checks the grant again: a timer is a wake-up, never the decision.
 */
@Injectable()
export class GrantExpiry implements OnApplicationShutdown {
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private handler: ((grantId: string) => void) | undefined;

  onDue(handler: (grantId: string) => void): void {
    this.handler = handler;
  }

  /** (Re)arms the grant's timer for `expiresAt`; a timer already set for that moment is kept. */
  arm(grantId: string, expiresAt: Date): void {
    const handler = this.handler;
    if (!handler) return;
    const at = expiresAt.getTime();
    if (this.timers.get(grantId)?.at === at) return;
    this.clear(grantId);
    const timer = setTimeout(
      () => {
        this.timers.delete(grantId);
        handler(grantId);
      },
      Math.min(Math.max(0, at - Date.now()), MAX_DELAY_MS),
    );
    timer.unref();
    this.timers.set(grantId, { at, timer });
  }

  clear(grantId: string): void {
    const t = this.timers.get(grantId);
    if (t) clearTimeout(t.timer);
    this.timers.delete(grantId);
  }

  onApplicationShutdown(): void {
    for (const id of [...this.timers.keys()]) this.clear(id);
    this.handler = undefined;
  }
}
