import { Module } from '@nestjs/common';
import { BootAgentsRepository } from './boot-agents.repository';
import { BootAgents } from './boot-agents.service';

/** Which sites have network boot (kept apart from BootModule, which needs the servers module). */
@Module({
  providers: [BootAgentsRepository, BootAgents],
  exports: [BootAgents],
})
export class BootAgentsModule {}
