import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyInstance } from 'fastify';
import { toErrorResponse } from '../../common/http/error.filter';
import { BillingInbox } from './billing-inbox.service';

/**
 * `POST /webhooks/billing`: the billing system's events. A route of its own (not the API's
 * controllers): the signature covers the raw bytes, so this route reads the body as bytes,
 * and it needs no API token (the signature is the authentication).
 */
export async function registerBillingWeb(app: NestFastifyApplication, bodyLimit: number): Promise<void> {
  const fastify = app.getHttpAdapter().getInstance() as unknown as FastifyInstance;
  const inbox = app.get(BillingInbox);
  await fastify.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit }, (_req, body, done) => done(null, body));
    scope.setErrorHandler((err, req, reply) => {
      const { status, body } = toErrorResponse(err, req, bodyLimit);
      if (status >= 500) req.log.error({ err }, 'billing webhook failed');
      void reply.status(status).header('content-type', 'application/json; charset=utf-8').send(body);
    });
    scope.post('/webhooks/billing', async (req, reply) => {
      const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const received = await inbox.receive(body, req.headers, { requestId: req.id, ip: req.ip });
      return reply.code(202).send(received);
    });
  });
}
