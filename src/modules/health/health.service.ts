import { Inject, Injectable } from '@nestjs/common';
import { AppConfig, type Config } from '../../config/config';
import { Database } from '../../database/database';

export type CheckResult = { status: 'ok' | 'off' | 'failing'; detail?: string; latencyMs?: number };
/** A named check; `critical` checks make /health answer 503 when failing. */
export interface HealthCheck {
  name: string;
  critical: boolean;
  run(): Promise<CheckResult>;
}

const startedAt = Date.now();

@Injectable()
export class HealthService {
  private readonly checks: HealthCheck[] = [];

  constructor(
    db: Database,
    @Inject(AppConfig) private readonly config: Config,
  ) {
    this.register({
      name: 'database',
      critical: true,
      async run() {
        const t = Date.now();
        try {
          await db.ping();
          return { status: 'ok', latencyMs: Date.now() - t };
        } catch (err) {
          return { status: 'failing', detail: (err as Error).message };
        }
      },
    });
  }

  /** Later capabilities (boot services, BMC sync, ...) add their own checks. */
  register(check: HealthCheck): void {
    this.checks.push(check);
  }

  async report() {
    const results = await Promise.all(this.checks.map(async (c) => [c, await c.run()] as const));
    const healthy = results.every(([c, r]) => !c.critical || r.status !== 'failing');
    return {
      healthy,
      body: {
        status: healthy ? 'ok' : 'failing',
        role: this.config.role,
        site: this.config.site ?? null,
        uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
        checks: Object.fromEntries(results.map(([c, r]) => [c.name, r])),
      },
    };
  }
}
