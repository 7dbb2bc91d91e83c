import { randomUUID } from 'node:crypto';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { cleanupOpenApiDoc } from 'nestjs-zod';
import { LogController, type FastifyRequest } from 'fastify';
import { version } from '../package.json';
import { AppModule } from './app.module';
import { ErrorFilter } from './common/http/error.filter';
import { ValidationPipe } from './common/http/validation';
import { NestPinoLogger } from './common/logger';
import { requestContext, type RequestContext } from './common/request-context';
import { MetricsService } from './modules/metrics/metrics.service';
import { registerConsoleWeb } from './modules/console/console-web';
import { registerBootWeb } from './modules/boot/boot-web';
import { registerBillingWeb } from './modules/billing/billing-web';
import type { Runtime } from './runtime';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
/** An install's token in a callback (?token=) or template URL (/boot/templates/<job>/<token>/) is not logged. */
export function redactUrl(url: string): string {
  return url.replace(/([?&]token=)[^&]+/g, '$1[redacted]').replace(/^(\/boot\/templates\/[^/]+\/)[^/]+/, '$1[redacted]');
}

const QUIET_ROUTES = new Set(['/health', '/metrics']);
const CTX = Symbol('racksmith.ctx');
type WithCtx = FastifyRequest & { [CTX]?: RequestContext };

/** The HTTP API: routes, conventions (errors, request ids, metrics, OpenAPI), not yet listening. */
export async function createHttpApp(rt: Runtime): Promise<NestFastifyApplication> {
  const adapter = new FastifyAdapter({
    loggerInstance: rt.log,
    bodyLimit: rt.config.http.bodyLimit,
    trustProxy: rt.config.http.trustProxy,
    // Honour a caller's X-Request-Id (so a billing retry can be traced end to end), else make one.
    genReqId: (req: { headers: Record<string, string | string[] | undefined> }) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    forceCloseConnections: 'idle',
    // One line per request, written in onResponse below, instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
  });
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.register(rt), adapter, {
    logger: new NestPinoLogger(rt.log),
    abortOnError: false,
    // Fastify's own JSON parser only: the API speaks JSON, anything else is 415.
    bodyParser: false,
  });
  const fastify = app.getHttpAdapter().getInstance();
  fastify.removeContentTypeParser('text/plain');

  // The request context (id, later the actor) follows the request through async code. Body
  // parsing runs on socket callbacks and loses it, so it is entered again before the handler.
  fastify.addHook('onRequest', (req: WithCtx, reply, done) => {
    void reply.header('x-request-id', req.id);
    const ctx: RequestContext = { requestId: req.id, source: 'api' };
    req[CTX] = ctx;
    requestContext.run(ctx, done);
  });
  fastify.addHook('preHandler', (req: WithCtx, _reply, done) => {
    requestContext.run(req[CTX] ?? { requestId: req.id, source: 'api' }, done);
  });

  // While shutting down, answer what is in flight with "Connection: close" so keep-alive
  // sockets end with their last response instead of holding the drain open.
  let closing = false;
  fastify.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  fastify.addHook('onSend', (_req, reply, payload, done) => {
    if (closing) void reply.header('connection', 'close');
    done(null, payload);
  });

  const metrics = app.get(MetricsService);
  fastify.addHook('onResponse', (req: WithCtx, reply, done) => {
    const route = req.routeOptions.url ?? 'unmatched';
    metrics.httpDuration.observe({ method: req.method, route, status: String(reply.statusCode) }, reply.elapsedTime / 1000);
    // Probes (/health, /metrics) every few seconds would drown the log: debug for them.
    const level = QUIET_ROUTES.has(route) ? 'debug' : reply.statusCode >= 500 ? 'error' : 'info';
    req.log[level](
      // Installer tokens travel in URLs: they never reach the log.
      { method: req.method, url: redactUrl(req.url), status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10, actor: req[CTX]?.actor?.name },
      'request',
    );
    done();
  });

  await registerConsoleWeb(app);
  // Installers post their callbacks as forms (busybox and d-i wget send one): accepted there only;
  // everywhere else the API takes JSON and answers a form with 415.
  fastify.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (req, body, done) => {
    if (!req.url.startsWith('/api/v1/install-callbacks/')) return done(Object.assign(new Error('Unsupported Media Type: application/x-www-form-urlencoded'), { statusCode: 415 }), undefined);
    done(null, Object.fromEntries(new URLSearchParams(String(body))));
  });
  await registerBootWeb(app);
  await registerBillingWeb(app, rt.config.http.bodyLimit);
  app.setGlobalPrefix('api/v1', { exclude: ['health', 'metrics'] });
  app.useGlobalFilters(new ErrorFilter(rt.log, rt.config.http.bodyLimit));
  app.useGlobalPipes(new ValidationPipe());

  const doc = SwaggerModule.createDocument(
    app,
    new DocumentBuilder()
      .setTitle('racksmith')
      .setDescription(
        'Provisioning API. Authenticate with `Authorization: Bearer <token>`. Errors are ' +
          '`{"error":{"code","message","field"}}`; lists are paginated with `limit` and `cursor` ' +
          '(pass back `nextCursor`). Every response carries `X-Request-Id`.',
      )
      .setVersion(version)
      .addBearerAuth()
      .build(),
  );
  SwaggerModule.setup('docs', app, cleanupOpenApiDoc(doc), { jsonDocumentUrl: 'docs/json', yamlDocumentUrl: 'docs/yaml' });
  return app;
}
