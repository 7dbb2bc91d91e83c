import { Module } from '@nestjs/common';
import { CUSTOMER_AUTH } from '../auth/customer-auth';
import { CustomerRepository } from './customer.repository';
import { CustomersService } from './customers.service';

/** Customers, their tokens and login links: what the auth guard needs, with nothing that needs auth. */
@Module({
  providers: [CustomerRepository, CustomersService, { provide: CUSTOMER_AUTH, useExisting: CustomersService }],
  exports: [CustomerRepository, CustomersService, CUSTOMER_AUTH],
})
export class CustomerAccountsModule {}
