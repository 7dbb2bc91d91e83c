'use strict';
// The reference for bench/webhook.js: a plain Fastify endpoint that stores each posted JSON body
// as one row (one INSERT, autocommit), on the same PostgreSQL, with the same pool size.
const { Pool } = require('pg');
const pool = new Pool({ connectionString: process.env.DATABASE_URL, max: 10 });
const fastify = require('fastify')({ logger: false });
fastify.post('/hook', async (req, reply) => {
  await pool.query('INSERT INTO ref_events (id, payload) VALUES ($1, $2)', [req.body.id, req.body]);
  return reply.code(202).send({ received: true });
});
pool
  .query('CREATE TABLE IF NOT EXISTS ref_events (id text PRIMARY KEY, payload jsonb NOT NULL, received_at timestamptz NOT NULL DEFAULT now())')
  .then(() => fastify.listen({ host: '127.0.0.1', port: Number(process.env.PORT) }))
  .then(() => console.log('ready'));
