import pino, { type Logger } from 'pino';
import type { LoggerService } from '@nestjs/common';
import type { Config } from '../config/config';
import { requestContext } from './request-context';

/** Secrets never reach a log line, whatever a caller passes. */
const REDACT = ['req.headers.authorization', 'req.headers["racksmith-signature"]', '*.password', '*.token', '*.secret'];

export function createLogger(config: Pick<Config, 'log'>, destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level: config.log.level,
    base: { pid: process.pid },
    redact: REDACT,
    // Every line written inside a request carries its id.
    // (Fastify's request loggers already carry it as a binding: not twice.)
    mixin(_obj: object, _level: number, logger?: Logger) {
      const reqId = requestContext.requestId();
      return reqId && !logger?.bindings().reqId ? { reqId } : {};
    },
  };
  if (destination) return pino(options, destination);
  if (config.log.format === 'pretty') {
    return pino({ ...options, transport: { target: 'pino-pretty', options: { destination: 2 } } });
  }
  return pino(options);
}

/** Nest's logger interface on top of pino, so framework and app lines share one stream. */
export class NestPinoLogger implements LoggerService {
  constructor(private readonly logger: Logger) {}
  private write(level: 'info' | 'error' | 'warn' | 'debug' | 'trace', message: unknown, params: unknown[]) {
    const context = typeof params[params.length - 1] === 'string' ? (params.pop() as string) : undefined;
    const fields = context ? { context } : {};
    if (message instanceof Error) this.logger[level]({ ...fields, err: message }, message.message);
    else if (typeof message === 'object' && message !== null) this.logger[level]({ ...fields, ...(message as object) });
    else this.logger[level](fields, String(message), ...params);
  }
  // Nest's own chatter (modules loaded, routes mapped) is debug; racksmith logs through pino directly.
  log(message: unknown, ...params: unknown[]) { this.write('debug', message, params); }
  error(message: unknown, ...params: unknown[]) { this.write('error', message, params); }
  warn(message: unknown, ...params: unknown[]) { this.write('warn', message, params); }
  debug(message: unknown, ...params: unknown[]) { this.write('debug', message, params); }
  verbose(message: unknown, ...params: unknown[]) { this.write('trace', message, params); }
}
