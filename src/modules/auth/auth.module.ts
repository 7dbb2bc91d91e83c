import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { AuthGuard } from './auth.guard';
import { TokenRepository } from './token.repository';
import { TokenService } from './token.service';
import { TokensController } from './tokens.controller';
import { CustomerAccountsModule } from '../customers/customer-accounts.module';

@Module({
  imports: [CustomerAccountsModule],
  controllers: [TokensController],
  providers: [TokenRepository, TokenService, { provide: APP_GUARD, useClass: AuthGuard }],
  exports: [TokenService],
})
export class AuthModule {}
