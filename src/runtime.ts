import type { Logger } from 'pino';
import type { Config } from './config/config';
import { connectAndMigrate, createDataSource } from './database/data-source';
import { Database } from './database/database';
import { EmbeddedPostgres } from './database/embedded-postgres';
import { loadSecretKey, SecretBox } from './common/secret-box';

/** What every racksmith command stands on: config, logger, an up-to-date database. */
export interface Runtime {
  config: Config;
  log: Logger;
  db: Database;
  /** Where the database is (embedded or configured), for libraries that connect on their own. */
  databaseUrl: string;
  secrets: SecretBox;
  embedded?: EmbeddedPostgres;
  close(): Promise<void>;
}

/**
 * `adoptEmbedded`: see EmbeddedPostgres.start (serve adopts, CLI commands do not).
 * `background`: a second pool (`database.backgroundPoolSize`) for job tasks, heartbeats, the
 * reaper and the schedulers (serve); CLI commands have none.
 */
export async function openRuntime(config: Config, log: Logger, opts: { adoptEmbedded?: boolean; background?: boolean } = {}): Promise<Runtime> {
  let embedded: EmbeddedPostgres | undefined;
  let url = config.database.url;
  if (!url) {
    embedded = new EmbeddedPostgres(config.dataDir, config.database.embeddedPort, log);
    url = await embedded.start({ adopt: opts.adoptEmbedded });
  }
  const ds = createDataSource({ url, poolSize: config.database.poolSize, connectTimeoutSec: config.database.connectTimeout });
  try {
    await connectAndMigrate(ds, url, config.database.connectTimeout, log);
  } catch (err) {
    await embedded?.stop().catch(() => undefined);
    throw err;
  }
  let background: ReturnType<typeof createDataSource> | undefined;
  if (opts.background) {
    background = createDataSource({ url, poolSize: config.database.backgroundPoolSize, connectTimeoutSec: config.database.connectTimeout, applicationName: 'racksmith-background' });
    try {
      await background.initialize();
    } catch (err) {
      await ds.destroy().catch(() => undefined);
      await embedded?.stop().catch(() => undefined);
      throw err;
    }
  }
  const db = new Database(ds, background);
  return {
    config,
    log,
    db,
    databaseUrl: url,
    secrets: new SecretBox(loadSecretKey(config.secrets.key, config.dataDir)),
    embedded,
    async close() {
      await db.close();
      await embedded?.stop();
    },
  };
}
